// Emulated replacements of lightning.cu's inline-PTX helpers: ldmatrix (.x4, plain and .trans) and
// mma.sync m16n8k16 bf16 exchange the 32 lanes' registers through WarpExchange with a barrier on each side,
// following the fragment layouts of the PTX ISA; products are summed in double.
static inline unsigned short emu_f2bf(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ u32 pack_bf16(float lo, float hi) { return (u32)emu_f2bf(lo) | ((u32)emu_f2bf(hi) << 16); }
__device__ __forceinline__ float silu_fast(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ void lp_barrier()
{
    __syncthreads();   // checks that barrier 1 is complete (EmuBlockDone)
}
// Named barrier 1 (bar.arrive / bar.sync 1, 256): arrivals that do not wait, completed by the waiters.
__device__ __forceinline__ void lp_scores_arrive() { emu_cta->namedPending++; auto token = emu_cta->namedBarrier->arrive(); (void)token; }
__device__ __forceinline__ void lp_scores_wait() { emu_cta->namedPending++; emu_cta->namedBarrier->arrive_and_wait(); }
static inline void ldsm(u32* r, const void* p, bool trans)
{
    WarpExchange& w = emu_cta->warps[emu_warp];
    int lane = emu_lane;
    w.addr[lane] = p;
    w.bar->arrive_and_wait();
    for (int i = 0; i < 4; i++)
    {
        if (!trans)
        {
            const bf16* row = (const bf16*)w.addr[8 * i + lane / 4];
            r[i] = (u32)row[2 * (lane % 4)] | ((u32)row[2 * (lane % 4) + 1] << 16);
        }
        else
        {
            const bf16* r0 = (const bf16*)w.addr[8 * i + 2 * (lane % 4)];
            const bf16* r1 = (const bf16*)w.addr[8 * i + 2 * (lane % 4) + 1];
            r[i] = (u32)r0[lane / 4] | ((u32)r1[lane / 4] << 16);
        }
    }
    w.bar->arrive_and_wait();
}
__device__ __forceinline__ void ldsm_x4(u32* r, const void* p) { ldsm(r, p, false); }
__device__ __forceinline__ void ldsm_x4_t(u32* r, const void* p) { ldsm(r, p, true); }
static inline float lo16(u32 v) { return __uint_as_float(v << 16); }
static inline float hi16(u32 v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ void mma_bf16(float* c, const u32* a, u32 b0, u32 b1)
{
    WarpExchange& w = emu_cta->warps[emu_warp];
    int lane = emu_lane;
    for (int i = 0; i < 4; i++) { w.a[lane][i] = a[i]; w.c[lane][i] = c[i]; }
    w.b[lane][0] = b0; w.b[lane][1] = b1;
    w.bar->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++)
    {
        int g = l / 4, t = l % 4;
        A[g][2 * t] = lo16(w.a[l][0]); A[g][2 * t + 1] = hi16(w.a[l][0]);
        A[g + 8][2 * t] = lo16(w.a[l][1]); A[g + 8][2 * t + 1] = hi16(w.a[l][1]);
        A[g][2 * t + 8] = lo16(w.a[l][2]); A[g][2 * t + 9] = hi16(w.a[l][2]);
        A[g + 8][2 * t + 8] = lo16(w.a[l][3]); A[g + 8][2 * t + 9] = hi16(w.a[l][3]);
        B[2 * t][g] = lo16(w.b[l][0]); B[2 * t + 1][g] = hi16(w.b[l][0]);
        B[2 * t + 8][g] = lo16(w.b[l][1]); B[2 * t + 9][g] = hi16(w.b[l][1]);
    }
    int g = lane / 4, t = lane % 4;
    float out[4];
    for (int e = 0; e < 4; e++)
    {
        int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        double s = w.c[lane][e];
        for (int k = 0; k < 16; k++) s += (double)A[row][k] * B[k][col];
        out[e] = (float)s;
    }
    w.bar->arrive_and_wait();
    for (int e = 0; e < 4; e++) c[e] = out[e];
}

// ---------------------------------------------------------------------------------------------------------------
// Hopper primitives of lightning_wgmma. A MODEL of the PTX ISA as read for this project (not the hardware): every
// rule below is what the kernel is checked against, so a misreading here would hide the same misreading there.

static inline unsigned emu_smem_offset(const void* p, unsigned bytes, const char* what)
{
    const unsigned char* c = (const unsigned char*)p;
    if (c < emu_smem || c + bytes > emu_smem + EMU_SMEM_BYTES)
    { fprintf(stderr, "%s: address %p is not in shared memory\n", what, p); abort(); }
    return (unsigned)(c - emu_smem);
}
// Shared-memory byte address = offset into emu_smem (the descriptors and swizzles work on these).
__device__ __forceinline__ u32 smem_addr(const void* p) { return emu_smem_offset(p, 0, "smem_addr"); }

// Schedule perturbation: the warpgroups whose bit is set in emu_slow_warpgroups sleep before each wgmma issue (2 ms)
// and after each mbar_wait (20 ms: a consumer released by a barrier is late to publish what it produces next), so
// that the others run ahead of them (a race that the natural schedule of the emulator hides, e.g. a producer
// overwriting a stage still being read, or a consumer reading a tile not yet republished, then shows up as wrong
// results or a guard's abort).
unsigned emu_slow_warpgroups, emu_slow_ranks = ~0u;   // ... in the CTAs of these cluster ranks only
static inline void emu_maybe_slow(unsigned us)
{
    if ((emu_slow_warpgroups >> (threadIdx.x / 128) & 1) && (emu_slow_ranks >> emu_cta->rank & 1))
        std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// mbarrier: a side table per CTA indexed by the barrier's offset / 8 (EmuMbarrier: completed phases, pending arrivals,
// transaction count); the barrier's 8 shared bytes are zeroed by mbar_init and must stay so (checked at each use).
// Updates take the barrier's lock; a phase completes when no arrival is pending AND the tx-count is 0 (PTX ISA:
// expect_tx adds, complete_tx subtracts, and a complete_tx may come first, leaving the count negative for a while).
// The update that completes a phase lands the cp.async copies attached to it, then publishes the new state.
// Phase bit = completed phases & 1.
std::atomic<long> emu_unfenced_reads;
thread_local std::vector<unsigned> emu_my_unfenced;   // rows this thread wrote by stmatrix and has not fenced

// The cluster of the current launch (clusters run one after another; a plain launch runs clusters of one CTA, as the
// hardware's implicit 1x1x1 cluster). Bulk copies in flight wait here until they land (see bulk_multicast).
// A bulk copy in flight to CTA `cta`: the bytes read at issue; srcCta >= 0: the source is shared memory of that CTA at
// srcOff (bulk_copy_to_cta), which must still hold the same bytes when the copy lands.
struct EmuBulk { unsigned cta, dst, bar; int srcCta; unsigned srcOff; std::vector<unsigned char> data; std::chrono::steady_clock::time_point due; };
struct EmuCluster
{
    unsigned size = 1, shared = 0;       // CTAs; the launch's dynamic shared memory (0: not checked)
    std::barrier<>* sync = nullptr;      // cluster_sync: all threads of the cluster (exited threads drop out)
    std::mutex lock;                     // inFlight, rng, the CTAs' exits
    std::vector<EmuBulk> inFlight;
    std::atomic<unsigned> inFlightCount{0};
    std::mt19937 rng;
    std::atomic<u64> progress{0};        // arrivals and landings anywhere in the cluster (deadlock guard)
};
EmuCluster emu_cluster;
int emu_deadlock_seconds = 10;
thread_local std::vector<EmuCopy> emu_copies;   // this thread's cp.async not yet attached to a barrier arrival
static inline void emu_mbar_reset(EmuCta& cta) { for (auto& b : cta.mbars) { b.state = 0; b.count = 0; b.tx = 0; b.copies.clear(); } }
// The barrier at CTA-relative offset `off` of `cta`: initialised (unless this is mbar_init) and its 8 bytes intact.
static inline EmuMbarrier& emu_mbar_at(EmuCta& cta, unsigned off, const char* what)
{
    if (off % 8 || off + 8 > EMU_SMEM_BYTES) { fprintf(stderr, "%s: barrier at offset %u is not 8-byte aligned or not in shared memory\n", what, off); abort(); }
    EmuMbarrier& b = cta.mbars[off / 8];
    if (strcmp(what, "mbar_init"))
    {
        if (b.count == 0) { fprintf(stderr, "%s: barrier at offset %u of CTA rank %u used before mbar_init\n", what, off, cta.rank); abort(); }
        u64 bytes; memcpy(&bytes, cta.smem + off, 8);
        if (bytes != 0) { fprintf(stderr, "%s: the 8 bytes of the barrier at offset %u of CTA rank %u were overwritten\n", what, off, cta.rank); abort(); }
    }
    return b;
}
static inline EmuMbarrier& emu_mbar(const u64* bar, const char* what) { return emu_mbar_at(*emu_cta, emu_smem_offset(bar, 8, what), what); }
__device__ __forceinline__ void mbar_init(u64* bar, u32 count)
{
    EmuMbarrier& b = emu_mbar(bar, "mbar_init");
    if (count == 0 || count >= (1u << 20)) { fprintf(stderr, "mbar_init: count %u out of range\n", count); abort(); }
    std::lock_guard<std::mutex> lock(b.lock);
    b.count = count; b.state = count; b.tx = 0; b.copies.clear();
    memset(bar, 0, 8);   // the barrier object occupies its 8 bytes (zeros here; checked by every later use)
}
// Under b.lock: tx-count += tx, then `arrivals` arrivals; completes the phase if nothing is pending any more.
static inline void emu_mbar_update(EmuCta& cta, EmuMbarrier& b, unsigned off, long long tx, unsigned arrivals, const char* what)
{
    b.tx += tx;
    if (b.tx <= -(1ll << 20) || b.tx >= (1ll << 20))
    { fprintf(stderr, "%s: barrier at offset %u of CTA rank %u: tx-count %lld out of range\n", what, off, cta.rank, (long long)b.tx); abort(); }
    u64 s = b.state;
    if (arrivals)
    {
        if ((unsigned)s < arrivals)
        { fprintf(stderr, "%s: barrier at offset %u of CTA rank %u: arrival with no arrival pending (the phase waits for %lld transaction bytes)\n",
            what, off, cta.rank, (long long)b.tx); abort(); }
        s -= arrivals;
        b.state = s;
    }
    if ((unsigned)s == 0 && b.tx == 0)
    {
        for (auto& c : b.copies) { memcpy(c.dst, c.bytes, 16); cta.unfenced[(c.dst - cta.smem) / 16] = 0; }
        b.copies.clear();
        b.state = (((s >> 32) + 1) << 32) | b.count;
    }
}
static inline void emu_arrive(u64* bar, bool withCopies, long long tx = 0, const char* what = nullptr)
{
    if (!what) what = withCopies ? "cp_async_mbar_arrive" : "mbar_arrive";
    EmuMbarrier& b = emu_mbar(bar, what);
    {
        std::lock_guard<std::mutex> lock(b.lock);
        if (withCopies) { b.copies.insert(b.copies.end(), emu_copies.begin(), emu_copies.end()); emu_copies.clear(); }
        emu_mbar_update(*emu_cta, b, smem_addr(bar), tx, 1, what);
    }
    emu_cluster.progress++;
}
__device__ __forceinline__ void mbar_arrive(u64* bar) { emu_arrive(bar, false); }
// mbarrier.arrive.expect_tx: tx-count += bytes, then one arrival (one atomic step).
__device__ __forceinline__ void mbar_arrive_expect_tx(u64* bar, u32 bytes) { emu_arrive(bar, false, bytes, "mbar_arrive_expect_tx"); }

// Lands one bulk copy: its bytes appear in the destination CTA's shared memory and complete_tx(bytes) runs on the
// destination barrier, under the barrier's lock (a waiter released by that phase sees the bytes). Caller holds
// emu_cluster.lock (so that a CTA's exit check never misses a copy that is being landed).
static inline void emu_land(EmuBulk& c)
{
    EmuCta& cta = emu_ctas[c.cta];
    if (c.srcCta >= 0 && memcmp(emu_ctas[c.srcCta].smem + c.srcOff, c.data.data(), c.data.size()))
    { fprintf(stderr, "bulk_copy_to_cta: the source (offset %u of CTA rank %d, %zu bytes) changed before the copy into CTA rank %u landed\n",
        c.srcOff, c.srcCta, c.data.size(), c.cta); abort(); }
    EmuMbarrier& b = emu_mbar_at(cta, c.bar, "bulk copy (complete_tx at landing)");
    std::lock_guard<std::mutex> lock(b.lock);
    memcpy(cta.smem + c.dst, c.data.data(), c.data.size());
    for (unsigned i = c.dst / 16; i < (c.dst + c.data.size()) / 16; i++) cta.unfenced[i] = 0;
    emu_mbar_update(cta, b, c.bar, -(long long)c.data.size(), 0, "bulk copy (complete_tx at landing)");
    emu_cluster.progress++;
}
// Lands the copies whose (random) landing time has come; every waiting thread calls this while it spins.
static inline void emu_land_due()
{
    if (emu_cluster.inFlightCount == 0) return;
    std::lock_guard<std::mutex> lock(emu_cluster.lock);
    auto now = std::chrono::steady_clock::now();
    auto& f = emu_cluster.inFlight;
    for (size_t i = 0; i < f.size();)
        if (f[i].due <= now) { emu_land(f[i]); f.erase(f.begin() + i); }
        else i++;
    emu_cluster.inFlightCount = f.size();
}

// Returns once the phase with parity P has completed: blocks while the current phase bit == P. A waiter that sees
// two or more completions since it started waiting aborts: the arrivals ran a phase ahead of it, a race on hardware
// (it would see its parity again and hang, or pass a phase it never waited for).
void (*emu_mbar_wait_hook)(u64* bar);   // test hook: runs once a waiter has read its start phase
__device__ __forceinline__ void mbar_wait(u64* bar, u32 parity)
{
    EmuMbarrier& b = emu_mbar(bar, "mbar_wait");
    u64 start = b.state >> 32;
    if ((start & 1) != (parity & 1)) { emu_maybe_slow(20000); return; }
    if (emu_mbar_wait_hook) emu_mbar_wait_hook(bar);
    u64 seen = emu_cluster.progress;
    auto since = std::chrono::steady_clock::now();
    for (unsigned spin = 0;; spin++)
    {
        u64 done = b.state >> 32;
        if (done >= start + 2)
        { fprintf(stderr, "mbar_wait: barrier at offset %u completed %llu phases while a waiter on parity %u waited\n",
            smem_addr(bar), done - start, parity); abort(); }
        if (done != start) { emu_maybe_slow(20000); return; }
        emu_land_due();
        // clusters run up to 8 x 384 threads on a few cores: long waiters sleep rather than spin
        if (emu_cluster.size > 1 && spin > 256) std::this_thread::sleep_for(std::chrono::microseconds(50));
        else std::this_thread::yield();
        if (spin % 256 == 0)
        {
            auto now = std::chrono::steady_clock::now();
            if (emu_cluster.progress != seen) { seen = emu_cluster.progress; since = now; }
            else if (now - since > std::chrono::seconds(emu_deadlock_seconds))
            { fprintf(stderr, "mbar_wait: deadlock: thread %u of CTA rank %u waits on barrier at offset %u for parity %u (%u of %u arrivals pending, tx-count %lld, %llu phases done), no arrival in this cluster for %d s\n",
                threadIdx.x, emu_cta->rank, smem_addr(bar), parity, (unsigned)b.state, (unsigned)b.count, (long long)b.tx, start, emu_deadlock_seconds); abort(); }
        }
    }
}
// mbarrier.try_wait.parity.acquire.cluster: the same wait (the model has no weaker ordering to strengthen).
__device__ __forceinline__ void mbar_wait_cluster(u64* bar, u32 parity) { mbar_wait(bar, parity); }
// cp.async.cg 16 bytes: the source is read at issue, the destination is poisoned (0xff: bf16 NaN) at issue and
// written only when the barrier phase that the copy's cp_async_mbar_arrive belongs to completes, the latest moment
// the hardware allows. So a read of the destination before waiting on that phase, or a copy into a buffer that is
// still being read, shows up as NaN instead of passing by luck of timing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid)
{
    unsigned off = emu_smem_offset(dst, 16, "cp_async16");
    if (off % 16) { fprintf(stderr, "cp_async16: destination offset %u is not 16-byte aligned\n", off); abort(); }
    EmuCopy c; c.dst = (unsigned char*)dst;
    if (valid) memcpy(c.bytes, src, 16); else memset(c.bytes, 0, 16);
    memset(dst, 0xff, 16);
    emu_copies.push_back(c);
}
// One arrival once this thread's earlier cp.async are done (.noinc: the arrival counts against the expected count).
__device__ __forceinline__ void cp_async_mbar_arrive(u64* bar) { emu_arrive(bar, true); }

// ---------------------------------------------------------------------------------------------------------------
// Clusters (PTX ISA: %cluster_ctarank, barrier.cluster, mapa + mbarrier.arrive.shared::cluster, cp.async.bulk
// .multicast::cluster). The CTAs of a cluster run concurrently, each with its own EmuCta.
__device__ __forceinline__ u32 cluster_rank() { return emu_cta->rank; }
// barrier.cluster.arrive.release + wait.acquire: every non-exited thread of every CTA of the cluster.
__device__ __forceinline__ void cluster_sync() { emu_cluster.sync->arrive_and_wait(); }
__device__ __forceinline__ void fence_mbar_init() {}
static inline EmuCta& emu_peer(u32 rank, const char* what)
{
    if (rank >= emu_cluster.size) { fprintf(stderr, "%s: CTA rank %u outside the cluster of %u CTAs\n", what, rank, emu_cluster.size); abort(); }
    EmuCta& t = emu_ctas[rank];
    if (t.exited) { fprintf(stderr, "%s: CTA rank %u (from rank %u) has already exited\n", what, rank, emu_cta->rank); abort(); }
    return t;
}
// One arrival (release, cluster scope) on the barrier at bar's CTA-relative offset in CTA `cta` of the cluster.
__device__ __forceinline__ void mbar_arrive_remote(u64* bar, u32 cta)
{
    const char* what = "mbar_arrive_remote";
    unsigned off = emu_smem_offset(bar, 8, what);
    EmuCta& t = emu_peer(cta, what);
    EmuMbarrier& b = emu_mbar_at(t, off, what);
    {
        std::lock_guard<std::mutex> lock(b.lock);
        emu_mbar_update(t, b, off, 0, 1, what);
    }
    emu_cluster.progress++;
}
// Bulk copies (cp.async.bulk ... mbarrier::complete_tx::bytes) into the CTAs of `mask`, at dst's CTA-relative offset,
// each completing complete_tx(bytes) on its own barrier at bar's offset. The source is read at issue; each destination
// is poisoned (0xff) at issue and written when the copy lands: 1 in 4 at issue, the others after a random 0-500 us
// (landed by whichever thread of the cluster spins in a wait next), so bytes may land before or after the receiver's
// arrive.expect_tx, and a reader that did not wait on the barrier sees NaN. srcCta >= 0: the source is this CTA's
// shared memory at srcOff (checked unchanged at landing; stmatrix rows there not yet fenced count as unfenced reads).
static inline void emu_bulk_issue(const char* what, void* dst, const void* src, int srcCta, u32 bytes, u64* bar, u32 mask)
{
    if (bytes == 0 || bytes % 16) { fprintf(stderr, "%s: size %u is not a positive multiple of 16\n", what, bytes); abort(); }
    unsigned off = emu_smem_offset(dst, bytes, what), barOff = emu_smem_offset(bar, 8, what);
    if (off % 16 || (uintptr_t)src % 16) { fprintf(stderr, "%s: destination offset %u or source %p not 16-byte aligned\n", what, off, src); abort(); }
    auto inDynamic = [](unsigned at, unsigned n) { return !emu_cluster.shared || (at >= EMU_DYN_OFFSET && at + n <= EMU_DYN_OFFSET + emu_cluster.shared); };
    if (!inDynamic(off, bytes))
    { fprintf(stderr, "%s: %u bytes at byte %d of the dynamic shared memory overrun its %u bytes\n", what, bytes, (int)off - EMU_DYN_OFFSET, emu_cluster.shared); abort(); }
    if (barOff + 8 > off && barOff < off + bytes) { fprintf(stderr, "%s: the copy [%u, %u) overwrites its own barrier at %u\n", what, off, off + bytes, barOff); abort(); }
    if (mask == 0 || mask >> emu_cluster.size) { fprintf(stderr, "%s: mask %#x names a CTA rank outside the cluster of %u CTAs\n", what, mask, emu_cluster.size); abort(); }
    unsigned srcOff = 0;
    if (srcCta >= 0)
    {
        srcOff = emu_smem_offset(src, bytes, what);
        if (!inDynamic(srcOff, bytes))
        { fprintf(stderr, "%s: source of %u bytes at byte %d is outside the dynamic shared memory (%u bytes)\n", what, bytes, (int)srcOff - EMU_DYN_OFFSET, emu_cluster.shared); abort(); }
        for (unsigned i = srcOff / 16; i < (srcOff + bytes) / 16; i++) if (emu_cta->unfenced[i]) emu_unfenced_reads++;
    }
    std::vector<unsigned char> data((const unsigned char*)src, (const unsigned char*)src + bytes);
    {
        std::lock_guard<std::mutex> lock(emu_cluster.lock);
        for (unsigned r = 0; r < emu_cluster.size; r++)
        {
            if (!(mask >> r & 1)) continue;
            EmuCta& t = emu_peer(r, what);
            emu_mbar_at(t, barOff, what);
            if (srcCta == (int)r && srcOff < off + bytes && off < srcOff + bytes)
            { fprintf(stderr, "%s: source and destination overlap in CTA rank %u\n", what, r); abort(); }
            memset(t.smem + off, 0xff, bytes);
            unsigned delay = emu_cluster.rng() % 4 == 0 ? 0 : emu_cluster.rng() % 500;
            emu_cluster.inFlight.push_back({ r, off, barOff, srcCta, srcOff, data, std::chrono::steady_clock::now() + std::chrono::microseconds(delay) });
        }
        emu_cluster.inFlightCount = emu_cluster.inFlight.size();
    }
    emu_land_due();
}
// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster: global src to every CTA of mask.
__device__ __forceinline__ void bulk_multicast(void* dst, const void* src, u32 bytes, u64* bar, u32 mask)
{
    emu_bulk_issue("bulk_multicast", dst, src, -1, bytes, bar, mask);
}
// cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes (mapa of dst and bar to CTA `cta`): this CTA's
// shared memory at src to CTA `cta`. The source must hold its bytes until the copy has landed (the issuer learns that
// only through the receiver), so a source rewritten before the landing aborts.
__device__ __forceinline__ void bulk_copy_to_cta(void* dst, const void* src, u32 bytes, u64* bar, u32 cta)
{
    if (cta >= emu_cluster.size) { fprintf(stderr, "bulk_copy_to_cta: CTA rank %u outside the cluster of %u CTAs\n", cta, emu_cluster.size); abort(); }
    emu_bulk_issue("bulk_copy_to_cta", dst, src, (int)emu_cta->rank, bytes, bar, 1u << cta);
}
// Run by the last thread of a CTA to end: nothing may still be in flight towards it, and no barrier of it may still
// expect transaction bytes (bytes never landed, or an expect_tx never matched); after this a peer's remote arrive or
// multicast into it aborts (emu_peer).
static inline void emu_cta_exit(EmuCta& cta)
{
    std::lock_guard<std::mutex> lock(emu_cluster.lock);
    for (auto& c : emu_cluster.inFlight)
    {
        if (c.cta == cta.rank)
        { fprintf(stderr, "CTA rank %u exits while a bulk copy into it (offset %u, %zu bytes, barrier %u) is in flight\n", cta.rank, c.dst, c.data.size(), c.bar); abort(); }
        if (c.srcCta == (int)cta.rank)
        { fprintf(stderr, "CTA rank %u exits while a bulk copy out of its shared memory (offset %u, %zu bytes, to CTA rank %u) is in flight\n", cta.rank, c.srcOff, c.data.size(), c.cta); abort(); }
    }
    for (unsigned i = 0; i < EMU_SMEM_BYTES / 8; i++)
        if (cta.mbars[i].count && cta.mbars[i].tx != 0)
        { fprintf(stderr, "CTA rank %u exits with tx-count %lld on its barrier at offset %u\n", cta.rank, (long long)cta.mbars[i].tx, 8 * i); abort(); }
    cta.exited = true;
}
// Proxy fence model (stmatrix only: plain C++ stores are not tracked): a 16-byte row written by stmatrix is
// "unfenced" until its writer runs fence_async_smem; a wgmma that reads an unfenced row through a descriptor counts
// one violation (the async proxy may not see the write). Counted, reported by emu_launch, fails lightning_check.
static inline void emu_fence_reset(EmuCta& cta) { for (auto& u : cta.unfenced) u = 0; }
__device__ __forceinline__ void fence_async_smem()
{
    for (unsigned chunk : emu_my_unfenced) emu_cta->unfenced[chunk] = 0;
    emu_my_unfenced.clear();
}
__device__ __forceinline__ void reg_fence(float&) {}
__device__ __forceinline__ void setmaxnreg_inc(u32) {}
__device__ __forceinline__ void setmaxnreg_dec(u32) {}

// stmatrix .x4 (inverse of ldmatrix): lane l gives the address of row l % 8 of matrix l / 8 and writes that row;
// register i of lane 4 rr + cc / 2 holds element (rr, cc) of matrix i (half cc % 2). .trans writes the transpose:
// destination (rr, cc) = fragment element (cc, rr).
static inline void stsm(void* p, u32 r0, u32 r1, u32 r2, u32 r3, bool trans)
{
    WarpExchange& w = emu_cta->warps[emu_warp];
    int lane = emu_lane;
    unsigned off = emu_smem_offset(p, 16, "stmatrix");
    if (off % 16) { fprintf(stderr, "stmatrix: row address offset %u is not 16-byte aligned\n", off); abort(); }
    emu_cta->unfenced[off / 16] = 1;
    emu_my_unfenced.push_back(off / 16);
    w.addr[lane] = p;
    w.a[lane][0] = r0; w.a[lane][1] = r1; w.a[lane][2] = r2; w.a[lane][3] = r3;
    w.bar->arrive_and_wait();
    int i = lane / 8, rr = lane % 8;
    bf16* row = (bf16*)w.addr[lane];
    for (int cc = 0; cc < 8; cc++)
    {
        u32 v = trans ? w.a[4 * cc + rr / 2][i] : w.a[4 * rr + cc / 2][i];
        int half = trans ? rr % 2 : cc % 2;
        row[cc] = (bf16)(half ? v >> 16 : v & 0xffff);
    }
    w.bar->arrive_and_wait();
}
__device__ __forceinline__ void stsm_x4(void* p, u32 r0, u32 r1, u32 r2, u32 r3) { stsm(p, r0, r1, r2, r3, false); }
__device__ __forceinline__ void stsm_x4_t(void* p, u32 r0, u32 r1, u32 r2, u32 r3) { stsm(p, r0, r1, r2, r3, true); }

// bar.sync id, count: one std::barrier per id, created by its first user with that count (all users must agree).
// Id 0 is __syncthreads' barrier, allowed only with the whole block.
static inline void emu_named_reset(EmuCta& cta)
{
    for (int i = 0; i < 16; i++) { delete cta.namedIds[i]; cta.namedIds[i] = nullptr; cta.namedCounts[i] = 0; }
}
__device__ __forceinline__ void named_sync(u32 id, u32 count)
{
    if (id == 0 && count == blockDim.x) { __syncthreads(); return; }
    if (id == 0 || id > 15 || count == 0 || count % 32 || count > blockDim.x)
    { fprintf(stderr, "named_sync(%u, %u): invalid id or count (block of %u)\n", id, count, blockDim.x); abort(); }
    std::barrier<>* b;
    {
        EmuCta& cta = *emu_cta;
        std::lock_guard<std::mutex> lock(cta.namedLock);
        if (!cta.namedIds[id]) { cta.namedIds[id] = new std::barrier<>(count); cta.namedCounts[id] = count; }
        else if (cta.namedCounts[id] != count)
        { fprintf(stderr, "named_sync(%u, %u): barrier %u is in use with count %u\n", id, count, id, cta.namedCounts[id]); abort(); }
        b = cta.namedIds[id];
    }
    b->arrive_and_wait();
}

// wgmma m64nNk16 (f32 += bf16 x bf16), warpgroup collective over threads 128 wg .. 128 wg + 127. Operands are read
// and the product computed at issue, but the result reaches the thread's accumulator registers only at the
// wg_wait that retires its commit group: a kernel that reads its accumulators before waiting sees stale values.
// A later wgmma on the same accumulator (before the wait) chains onto the pending result, as the hardware's
// in-order accumulation does.
thread_local int emu_warpgroup;
struct EmuWgmmaResult { float* d; int n; float v[64]; u64 descA, descB; int rows; u64 operandHash; };
thread_local std::vector<EmuWgmmaResult> emu_wg_open;                    // issued, not yet committed
thread_local std::vector<std::vector<EmuWgmmaResult>> emu_wg_committed;  // oldest first

// Element (r, k) of an operand (K-major, 128-byte swizzle): logical L = start + (r / 8) SBO + (r % 8) 128 + 2 k,
// physical P = L ^ (((L >> 7) & 7) << 4).
static inline float emu_desc_load(u64 desc, int r, int k, bool checkFence = false)
{
    unsigned start = (unsigned)(desc & 0x3fff) << 4, sbo = (unsigned)((desc >> 32) & 0x3fff) << 4;
    unsigned L = start + (r / 8) * sbo + (r % 8) * 128 + 2 * k;
    unsigned P = L ^ (((L >> 7) & 7) << 4);
    if (P + 2 > EMU_SMEM_BYTES) { fprintf(stderr, "wgmma: descriptor %016llx reads past shared memory (row %d)\n", desc, r); abort(); }
    if (checkFence && emu_cta->unfenced[P / 16]) emu_unfenced_reads++;
    return lo16(*(const bf16*)(emu_smem + P));
}
static inline void emu_desc_check(u64 desc, const char* which)
{
    if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0)
    { fprintf(stderr, "wgmma: descriptor %s %016llx: only the 128-byte swizzle with base offset 0 is modelled\n", which, desc); abort(); }
}
// Hash of the shared-memory operand elements this thread reads (its two A rows, its B rows): recomputed at the
// wait, so that a kernel that overwrites an operand tile between the issue and the wait (a race on hardware, where
// the operands are read at some point in between) aborts instead of passing because the model read early.
static inline u64 emu_operand_hash(u64 descA, u64 descB, int n)
{
    int t = threadIdx.x % 128, warp = t / 32, g = (t % 32) / 4;
    u64 h = 1469598103934665603ull;
    auto mix = [&](float v) { h = (h ^ __float_as_uint(v)) * 1099511628211ull; };
    if (descA) for (int hh = 0; hh < 2; hh++) for (int k = 0; k < 16; k++) mix(emu_desc_load(descA, 16 * warp + g + 8 * hh, k));
    for (int r = 2 * (t % 4); r < n; r += (r % 2) ? 7 : 1) for (int k = 0; k < 16; k++) mix(emu_desc_load(descB, r, k));
    return h;
}
static inline void wgmma(float* d, int n, u64 descA, const u32* a, u64 descB, u32 accumulate)
{
    emu_maybe_slow(2000);
    WarpgroupExchange& x = emu_cta->warpgroups[emu_warpgroup];
    int t = threadIdx.x % 128, warp = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
    x.descA[t] = descA; x.descB[t] = descB; x.accumulate[t] = accumulate;
    if (a) for (int i = 0; i < 4; i++) x.a[t][i] = a[i];
    x.bar->arrive_and_wait();
    if (x.descB[0] != descB || (!a && x.descA[0] != descA) || (x.accumulate[0] != 0) != (accumulate != 0))
    { fprintf(stderr, "wgmma: thread %u disagrees with its warpgroup's thread 0 on descriptors or accumulate\n", threadIdx.x); abort(); }
    emu_desc_check(descB, "B");
    if (!a) emu_desc_check(descA, "A");
    float A[2][16], B[128][16];
    for (int h = 0; h < 2; h++)
    {
        int m = 16 * warp + g + 8 * h;
        for (int k = 0; k < 16; k++)
            if (!a) A[h][k] = emu_desc_load(descA, m, k, true);
            else
            {   // a[h] holds columns 2q, 2q+1; a[2+h] columns 2q+8, 2q+9 of row m, from lane 4g+q' of this warp
                int src = 32 * warp + 4 * g + (k % 8) / 2;
                u32 v = x.a[src][h + 2 * (k / 8)];
                A[h][k] = k % 2 ? hi16(v) : lo16(v);
            }
    }
    // only this thread's columns 8i + 2q, 8i + 2q + 1 (the warpgroup's threads together read every row)
    for (int r = 2 * q; r < n; r += (r % 2) ? 7 : 1) for (int k = 0; k < 16; k++) B[r][k] = emu_desc_load(descB, r, k, true);
    x.bar->arrive_and_wait();
    // The accumulator this product adds to: the newest pending result for d, else the registers.
    const float* prev = d;
    for (auto& e : emu_wg_open) if (e.d == d) prev = e.v;
    if (prev == d)
        for (auto it = emu_wg_committed.rbegin(); it != emu_wg_committed.rend() && prev == d; ++it)
            for (auto e = it->rbegin(); e != it->rend(); ++e) if (e->d == d) { prev = e->v; break; }
    EmuWgmmaResult r; r.d = d; r.n = n / 2; r.descA = a ? 0 : descA; r.descB = descB; r.rows = n;
    r.operandHash = emu_operand_hash(r.descA, descB, n);
    for (int i = 0; i < n / 8; i++)
        for (int e = 0; e < 4; e++)
        {
            int h = e / 2, col = 8 * i + 2 * q + e % 2;
            double s = accumulate ? prev[4 * i + e] : 0.0;
            for (int k = 0; k < 16; k++) s += (double)A[h][k] * B[col][k];
            r.v[4 * i + e] = (float)s;
        }
    emu_wg_open.push_back(r);
}
__device__ __forceinline__ void wgmma_n64_ss(float* d, u64 descA, u64 descB, u32 accumulate) { wgmma(d, 64, descA, nullptr, descB, accumulate); }
__device__ __forceinline__ void wgmma_n128_ss(float* d, u64 descA, u64 descB, u32 accumulate) { wgmma(d, 128, descA, nullptr, descB, accumulate); }
__device__ __forceinline__ void wgmma_n128_rs(float* d, const u32* a, u64 descB, u32 accumulate) { wgmma(d, 128, 0, a, descB, accumulate); }
__device__ __forceinline__ void wgmma_n64_rs(float* d, const u32* a, u64 descB, u32 accumulate) { wgmma(d, 64, 0, a, descB, accumulate); }
__device__ __forceinline__ void wgmma_n16_ss(float* d, u64 descA, u64 descB, u32 accumulate) { wgmma(d, 16, descA, nullptr, descB, accumulate); }
__device__ __forceinline__ void wgmma_n16_rs(float* d, const u32* a, u64 descB, u32 accumulate) { wgmma(d, 16, 0, a, descB, accumulate); }
__device__ __forceinline__ void wgmma_n32_ss(float* d, u64 descA, u64 descB, u32 accumulate) { wgmma(d, 32, descA, nullptr, descB, accumulate); }
__device__ __forceinline__ void wgmma_n32_rs(float* d, const u32* a, u64 descB, u32 accumulate) { wgmma(d, 32, 0, a, descB, accumulate); }
__device__ __forceinline__ void wg_fence() {}
__device__ __forceinline__ void wg_commit() { emu_wg_committed.push_back(std::move(emu_wg_open)); emu_wg_open.clear(); }
static inline void emu_wg_wait(size_t keep)
{
    while (emu_wg_committed.size() > keep)
    {
        for (auto& e : emu_wg_committed.front())
        {
            if (emu_operand_hash(e.descA, e.descB, e.rows) != e.operandHash)
            { fprintf(stderr, "wgmma: thread %u: an operand (descriptors A %016llx, B %016llx) changed in shared memory before the wait that retires it\n",
                threadIdx.x, e.descA, e.descB); abort(); }
            memcpy(e.d, e.v, e.n * sizeof(float));
        }
        emu_wg_committed.erase(emu_wg_committed.begin());
    }
}
__device__ __forceinline__ void wg_wait0() { emu_wg_wait(0); }
__device__ __forceinline__ void wg_wait1() { emu_wg_wait(1); }
// Called when a thread's kernel body returns: a cp.async never attached to a barrier, a wgmma never committed or
// never waited for, is a kernel bug.
static inline void emu_thread_end()
{
    if (!emu_copies.empty())
    { fprintf(stderr, "thread %u ends with %zu cp.async never attached to a barrier (cp_async_mbar_arrive)\n", threadIdx.x, emu_copies.size()); abort(); }
    if (!emu_wg_open.empty() || !emu_wg_committed.empty())
    { fprintf(stderr, "thread %u ends with %zu uncommitted wgmma and %zu commit groups not waited for\n",
        threadIdx.x, emu_wg_open.size(), emu_wg_committed.size()); abort(); }
}
