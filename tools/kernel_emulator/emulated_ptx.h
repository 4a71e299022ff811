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
__device__ __forceinline__ void lp_scores_arrive() { emu_named_pending++; auto token = emu_named_barrier->arrive(); (void)token; }
__device__ __forceinline__ void lp_scores_wait() { emu_named_pending++; emu_named_barrier->arrive_and_wait(); }
static inline void ldsm(u32* r, const void* p, bool trans)
{
    WarpExchange& w = emu_warps[emu_warp];
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
    WarpExchange& w = emu_warps[emu_warp];
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
    if (c < emu_smem || c + bytes > emu_smem + sizeof emu_smem)
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
unsigned emu_slow_warpgroups;
static inline void emu_maybe_slow(unsigned us)
{
    if (emu_slow_warpgroups >> (threadIdx.x / 128) & 1) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// mbarrier: (pending arrivals, phase) in a side table indexed by the barrier's offset / 8; the barrier's 8 shared
// bytes are zeroed by mbar_init and must stay so (checked at each use). state = completed phases << 32 | pending arrivals; arrivals take the barrier's lock, and
// the one that completes a phase first lands the cp.async copies attached to it, then publishes the new state.
// Phase bit = completed phases & 1.
// Rows written by stmatrix and not yet fenced (see fence_async_smem), per 16 bytes.
std::atomic<unsigned char> emu_unfenced[sizeof emu_smem / 16];
std::atomic<long> emu_unfenced_reads;
thread_local std::vector<unsigned> emu_my_unfenced;
struct EmuCopy { unsigned char* dst; unsigned char bytes[16]; };
struct EmuMbarrier { std::atomic<u64> state; std::atomic<unsigned> count; std::mutex lock; std::vector<EmuCopy> copies; };
EmuMbarrier emu_mbars[sizeof emu_smem / 8];
std::atomic<u64> emu_mbar_progress;   // arrivals in this CTA (deadlock guard: a waiter aborts after this long without any)
int emu_deadlock_seconds = 10;
thread_local std::vector<EmuCopy> emu_copies;   // this thread's cp.async not yet attached to a barrier arrival
static inline void emu_mbar_reset() { for (auto& b : emu_mbars) { b.state = 0; b.count = 0; b.copies.clear(); } emu_mbar_progress = 0; }
static inline EmuMbarrier& emu_mbar(const u64* bar, const char* what)
{
    unsigned off = emu_smem_offset(bar, 8, what);
    if (off % 8) { fprintf(stderr, "%s: barrier at offset %u is not 8-byte aligned\n", what, off); abort(); }
    EmuMbarrier& b = emu_mbars[off / 8];
    if (strcmp(what, "mbar_init"))
    {
        if (b.count == 0) { fprintf(stderr, "%s: barrier at offset %u used before mbar_init\n", what, off); abort(); }
        u64 bytes; memcpy(&bytes, bar, 8);
        if (bytes != 0) { fprintf(stderr, "%s: the 8 bytes of the barrier at offset %u were overwritten\n", what, off); abort(); }
    }
    return b;
}
__device__ __forceinline__ void mbar_init(u64* bar, u32 count)
{
    EmuMbarrier& b = emu_mbar(bar, "mbar_init");
    if (count == 0 || count >= (1u << 20)) { fprintf(stderr, "mbar_init: count %u out of range\n", count); abort(); }
    std::lock_guard<std::mutex> lock(b.lock);
    b.count = count; b.state = count; b.copies.clear();
    memset(bar, 0, 8);   // the barrier object occupies its 8 bytes (zeros here; checked by every later use)
}
static inline void emu_arrive(u64* bar, bool withCopies)
{
    EmuMbarrier& b = emu_mbar(bar, withCopies ? "cp_async_mbar_arrive" : "mbar_arrive");
    {
        std::lock_guard<std::mutex> lock(b.lock);
        if (withCopies) { b.copies.insert(b.copies.end(), emu_copies.begin(), emu_copies.end()); emu_copies.clear(); }
        u64 s = b.state;
        if ((unsigned)s == 1)
        {
            for (auto& c : b.copies) { memcpy(c.dst, c.bytes, 16); emu_unfenced[(c.dst - emu_smem) / 16] = 0; }
            b.copies.clear();
            b.state = (((s >> 32) + 1) << 32) | b.count;
        }
        else b.state = s - 1;
    }
    emu_mbar_progress++;
}
__device__ __forceinline__ void mbar_arrive(u64* bar) { emu_arrive(bar, false); }
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
    u64 seen = emu_mbar_progress;
    auto since = std::chrono::steady_clock::now();
    for (unsigned spin = 0;; spin++)
    {
        u64 done = b.state >> 32;
        if (done >= start + 2)
        { fprintf(stderr, "mbar_wait: barrier at offset %u completed %llu phases while a waiter on parity %u waited\n",
            smem_addr(bar), done - start, parity); abort(); }
        if (done != start) { emu_maybe_slow(20000); return; }
        std::this_thread::yield();
        if (spin % 256 == 0)
        {
            auto now = std::chrono::steady_clock::now();
            if (emu_mbar_progress != seen) { seen = emu_mbar_progress; since = now; }
            else if (now - since > std::chrono::seconds(emu_deadlock_seconds))
            { fprintf(stderr, "mbar_wait: deadlock: thread %u waits on barrier at offset %u for parity %u (%u of %u arrivals pending, %llu phases done), no arrival in this CTA for %d s\n",
                threadIdx.x, smem_addr(bar), parity, (unsigned)b.state, (unsigned)b.count, start, emu_deadlock_seconds); abort(); }
        }
    }
}
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
// Proxy fence model (stmatrix only: plain C++ stores are not tracked): a 16-byte row written by stmatrix is
// "unfenced" until its writer runs fence_async_smem; a wgmma that reads an unfenced row through a descriptor counts
// one violation (the async proxy may not see the write). Counted, reported by emu_launch, fails lightning_check.
static inline void emu_fence_reset() { for (auto& u : emu_unfenced) u = 0; emu_my_unfenced.clear(); }
__device__ __forceinline__ void fence_async_smem()
{
    for (unsigned chunk : emu_my_unfenced) emu_unfenced[chunk] = 0;
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
    WarpExchange& w = emu_warps[emu_warp];
    int lane = emu_lane;
    unsigned off = emu_smem_offset(p, 16, "stmatrix");
    if (off % 16) { fprintf(stderr, "stmatrix: row address offset %u is not 16-byte aligned\n", off); abort(); }
    emu_unfenced[off / 16] = 1;
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
std::mutex emu_named_lock;
std::barrier<>* emu_named_ids[16];
unsigned emu_named_counts[16];
static inline void emu_named_reset() { for (int i = 0; i < 16; i++) { delete emu_named_ids[i]; emu_named_ids[i] = nullptr; emu_named_counts[i] = 0; } }
__device__ __forceinline__ void named_sync(u32 id, u32 count)
{
    if (id == 0 && count == blockDim.x) { __syncthreads(); return; }
    if (id == 0 || id > 15 || count == 0 || count % 32 || count > blockDim.x)
    { fprintf(stderr, "named_sync(%u, %u): invalid id or count (block of %u)\n", id, count, blockDim.x); abort(); }
    std::barrier<>* b;
    {
        std::lock_guard<std::mutex> lock(emu_named_lock);
        if (!emu_named_ids[id]) { emu_named_ids[id] = new std::barrier<>(count); emu_named_counts[id] = count; }
        else if (emu_named_counts[id] != count)
        { fprintf(stderr, "named_sync(%u, %u): barrier %u is in use with count %u\n", id, count, id, emu_named_counts[id]); abort(); }
        b = emu_named_ids[id];
    }
    b->arrive_and_wait();
}

// wgmma m64nNk16 (f32 += bf16 x bf16), warpgroup collective over threads 128 wg .. 128 wg + 127. Operands are read
// and the product computed at issue, but the result reaches the thread's accumulator registers only at the
// wg_wait that retires its commit group: a kernel that reads its accumulators before waiting sees stale values.
// A later wgmma on the same accumulator (before the wait) chains onto the pending result, as the hardware's
// in-order accumulation does.
struct WarpgroupExchange
{
    std::barrier<>* bar;
    u64 descA[128], descB[128];
    u32 a[128][4];
    u32 accumulate[128];
};
WarpgroupExchange emu_warpgroups[8];
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
    if (P + 2 > sizeof emu_smem) { fprintf(stderr, "wgmma: descriptor %016llx reads past shared memory (row %d)\n", desc, r); abort(); }
    if (checkFence && emu_unfenced[P / 16]) emu_unfenced_reads++;
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
    WarpgroupExchange& x = emu_warpgroups[emu_warpgroup];
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
