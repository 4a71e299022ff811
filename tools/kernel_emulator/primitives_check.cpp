// Self-test of the emulated Hopper primitives (emulated_ptx.h) against plain host code: wgmma (_ss, _rs, N = 64
// and 128) against a triple loop on tiles written with the 128-byte swizzle formula, the deferred accumulators
// (wait0 / wait1), stmatrix against ldmatrix, mbarrier phases with a cp.async ring, named barriers, and the
// guards that must abort (wrong parity, operand overwritten before the wait, wgmma never waited for).
#include "prelude.h"
#include "common.cuh"
#include "emulated_ptx.h"
#include "emu_launch.h"
#include <random>
#include <sys/wait.h>
#include <unistd.h>

static int failures = 0;
static void expect(bool ok, const char* what) { printf("  %-68s %s\n", what, ok ? "ok" : "FAILED"); failures += !ok; }
static float bf(bf16 v) { return lo16(v); }

// The kernel-side layout: element (r, c) of a [rows][64] bf16 tile at a 1024-aligned base.
static unsigned tileOffset(int r, int c) { return r * 128 + ((c / 8) ^ (r % 8)) * 16 + (c % 8) * 2; }
static u64 desc(unsigned addr) { return (u64)(addr >> 4) | ((u64)(1024 >> 4) << 32) | (1ull << 62); }

// A: [64][64] at 0, B: [2 warpgroups][128][64] at 8192 and 24576.
static const unsigned A_AT = 0, B_AT[2] = { 8192, 24576 };
static float Am[64][64], Bm[2][128][64];

static void fillTiles(unsigned seed)
{
    std::mt19937 rng(seed); std::uniform_real_distribution<float> U(-2.f, 2.f);
    for (int r = 0; r < 64; r++) for (int c = 0; c < 64; c++)
    { bf16 v = emu_f2bf(U(rng)); Am[r][c] = bf(v); memcpy(emu_smem + A_AT + tileOffset(r, c), &v, 2); }
    for (int w = 0; w < 2; w++) for (int r = 0; r < 128; r++) for (int c = 0; c < 64; c++)
    { bf16 v = emu_f2bf(U(rng)); Bm[w][r][c] = bf(v); memcpy(emu_smem + B_AT[w] + tileOffset(r, c), &v, 2); }
}

// Runs D = A Bᵀ over K = 64 (four k16 steps) on 256 threads (two warpgroups, each its own B) with wgmma of N = n
// (16, 32, 64 or 128), A from shared memory (_ss) or registers (_rs). Returns the worst error relative to the sum of
// |terms|; checks the deferral.
static void wgmmaSs(float* d, int n, u64 da, u64 db, u32 acc)
{
    if (n == 16) wgmma_n16_ss(d, da, db, acc); else if (n == 32) wgmma_n32_ss(d, da, db, acc);
    else if (n == 64) wgmma_n64_ss(d, da, db, acc); else wgmma_n128_ss(d, da, db, acc);
}
static void wgmmaRs(float* d, int n, const u32* a, u64 db, u32 acc)
{
    if (n == 16) wgmma_n16_rs(d, a, db, acc); else if (n == 32) wgmma_n32_rs(d, a, db, acc);
    else if (n == 64) wgmma_n64_rs(d, a, db, acc); else wgmma_n128_rs(d, a, db, acc);
}
static double wgmmaCase(int n, bool rs, bool& deferredOk)
{
    static float D[256][64];
    std::atomic<bool> stale{true};
    launch([&] {
        if (threadIdx.x == 0) fillTiles(11);
        __syncthreads();   // every thread filled the same tiles; the barrier orders the writes before the reads
        int t = threadIdx.x, wg = t / 128, tt = t % 128, warp = tt / 32, g = (tt % 32) / 4, q = tt % 4;
        float d[64];
        for (int i = 0; i < 64; i++) d[i] = -7.f;
        wg_fence();
        for (int s = 0; s < 4; s++)
        {
            u64 da = desc(A_AT + 32 * s), db = desc(B_AT[wg] + 32 * s);
            if (!rs) wgmmaSs(d, n, da, db, s > 0);
            else
            {
                u32 a[4];
                auto pk = [&](int r, int c) { return pack_bf16(Am[r][16 * s + c], Am[r][16 * s + c + 1]); };
                a[0] = pk(16 * warp + g, 2 * q); a[1] = pk(16 * warp + g + 8, 2 * q);
                a[2] = pk(16 * warp + g, 2 * q + 8); a[3] = pk(16 * warp + g + 8, 2 * q + 8);
                wgmmaRs(d, n, a, db, s > 0);
            }
        }
        wg_commit();
        for (int i = 0; i < n / 2; i++) if (d[i] != -7.f) stale = false;   // not retired yet: registers untouched
        wg_wait0();
        for (int i = n / 2; i < 64; i++) if (d[i] != -7.f) stale = false;   // registers past N/2 never written
        for (int i = 0; i < n / 2; i++) D[t][i] = d[i];
    }, 1, 1, 1, 256);
    deferredOk = stale;
    double worst = 0;
    for (int t = 0; t < 256; t++)
    {
        int wg = t / 128, tt = t % 128, warp = tt / 32, g = (tt % 32) / 4, q = tt % 4;
        for (int i = 0; i < n / 8; i++) for (int e = 0; e < 4; e++)
        {
            int m = 16 * warp + g + 8 * (e / 2), col = 8 * i + 2 * q + e % 2;
            double s = 0, mag = 0;
            for (int k = 0; k < 64; k++) { double x = (double)Am[m][k] * Bm[wg][col][k]; s += x; mag += std::fabs(x); }
            worst = std::max(worst, std::fabs(D[t][4 * i + e] - s) / (mag + 1e-30));
        }
    }
    return worst;
}

// wait1 retires all but the newest group: two groups on two accumulators, then wait1, wait0.
static bool waitOneCase()
{
    std::atomic<int> bad{0};
    launch([&] {
        if (threadIdx.x == 0) fillTiles(12);
        __syncthreads();
        float d1[64], d2[64];
        for (int i = 0; i < 64; i++) d1[i] = d2[i] = -7.f;
        wgmma_n128_ss(d1, desc(A_AT), desc(B_AT[0]), 0); wg_commit();
        wgmma_n128_ss(d2, desc(A_AT + 32), desc(B_AT[0] + 32), 0); wg_commit();
        wg_wait1();
        bool d1Done = false, d2Pending = true;
        for (int i = 0; i < 64; i++) { d1Done |= d1[i] != -7.f; d2Pending &= d2[i] == -7.f; }
        wg_wait0();
        bool d2Done = false;
        for (int i = 0; i < 64; i++) d2Done |= d2[i] != -7.f;
        if (!d1Done || !d2Pending || !d2Done) bad++;
    }, 1, 1, 1, 128);
    return bad == 0;
}

// stmatrix then ldmatrix round trips (plain, .trans), and stmatrix .trans read back plain = the transposed fragment.
static bool stmatrixCase()
{
    std::atomic<int> bad{0};
    launch([&] {
        int lane = emu_lane;
        std::mt19937 rng(100 + lane);
        u32 r[4], back[4];
        for (auto& v : r) v = rng() & 0x7fff7fffu;   // no NaN patterns
        // four 8x8 matrices, each row 16 bytes, rows 32 bytes apart (a 2x2 arrangement like the kernels' tiles)
        auto rowAddr = [](int l) { int i = l / 8, rr = l % 8; return emu_smem + 4096 + (i / 2) * 8 * 32 + rr * 32 + (i % 2) * 16; };
        stsm_x4(rowAddr(lane), r[0], r[1], r[2], r[3]);
        ldsm_x4(back, rowAddr(lane));
        for (int i = 0; i < 4; i++) if (back[i] != r[i]) bad++;
        __syncwarp();
        stsm_x4_t(rowAddr(lane), r[0], r[1], r[2], r[3]);
        ldsm_x4_t(back, rowAddr(lane));
        for (int i = 0; i < 4; i++) if (back[i] != r[i]) bad++;
        ldsm_x4(back, rowAddr(lane));
        // fragment of the transpose: element (g, 2q + h) of matrix i = original (2q + h, g) = lane 4 (2q + h) + g / 2
        static u32 all[32][4];
        for (int i = 0; i < 4; i++) all[lane][i] = r[i];
        __syncwarp();
        int g = lane / 4, q = lane % 4;
        for (int i = 0; i < 4; i++) for (int h = 0; h < 2; h++)
        {
            u32 src = all[4 * (2 * q + h) + g / 2][i];
            bf16 want = (bf16)(g % 2 ? src >> 16 : src & 0xffff), got = (bf16)(h ? back[i] >> 16 : back[i] & 0xffff);
            if (want != got) bad++;
        }
    }, 1, 1, 1, 32);
    return bad == 0;
}

// The non-trans stmatrix element rule checked directly from memory (single writer lane set per matrix row).
static bool stmatrixElementCase()
{
    std::atomic<int> bad{0};
    static u32 all[32][4];
    launch([&] {
        int lane = emu_lane;
        u32 r[4];
        for (int i = 0; i < 4; i++) r[i] = (u32)(1000 * i + 10 * lane) | ((u32)(1000 * i + 10 * lane + 1) << 16);
        for (int i = 0; i < 4; i++) all[lane][i] = r[i];
        stsm_x4(emu_smem + 2048 + 16 * lane, r[0], r[1], r[2], r[3]);
    }, 1, 1, 1, 32);
    for (int i = 0; i < 4; i++) for (int rr = 0; rr < 8; rr++) for (int cc = 0; cc < 8; cc++)
    {
        bf16 got = ((bf16*)(emu_smem + 2048 + 16 * (8 * i + rr)))[cc];
        u32 src = all[4 * rr + cc / 2][i];
        if (got != (bf16)(cc % 2 ? src >> 16 : src & 0xffff)) bad++;
    }
    return bad == 0;
}

// mbarrier phases: wait(1) passes right after init, wait(0) blocks until the first completion; then a two-stage
// cp.async ring (producer warp 0 copies, consumer warp 1 sums) over 40 rounds with full / empty barriers.
static bool mbarrierCase()
{
    std::atomic<int> bad{0};
    static u32 src[40][32][4];
    for (int r = 0; r < 40; r++) for (int l = 0; l < 32; l++) for (int j = 0; j < 4; j++) src[r][l][j] = r * 1000 + l * 4 + j;
    std::atomic<long> sum{0};
    launch([&] {
        u64* full = (u64*)(emu_smem + 0), *empty = (u64*)(emu_smem + 16);
        u32* buf = (u32*)(emu_smem + 1024);   // [2 stages][32 lanes][4]
        if (threadIdx.x == 0) { mbar_init(&full[0], 32); mbar_init(&full[1], 32); mbar_init(&empty[0], 32); mbar_init(&empty[1], 32); }
        __syncthreads();
        if (threadIdx.x == 0)
        {
            mbar_wait(&full[0], 1);   // passes at once
            if (((u32)(emu_cta->mbars[0].state >> 32)) != 0) bad++;
        }
        __syncthreads();
        int lane = emu_lane;
        if (emu_warp == 0)
            for (int r = 0; r < 40; r++)
            {
                int s = r % 2;
                if (r >= 2) mbar_wait(&empty[s], ((r / 2) - 1) & 1);
                cp_async16(buf + (s * 32 + lane) * 4, src[r][lane], true);
                cp_async_mbar_arrive(&full[s]);
            }
        else
            for (int r = 0; r < 40; r++)
            {
                int s = r % 2;
                mbar_wait(&full[s], (r / 2) & 1);
                long local = 0;
                for (int j = 0; j < 4; j++) { u32 v = buf[(s * 32 + lane) * 4 + j]; if (v != src[r][lane][j]) bad++; local += v; }
                sum += local;
                mbar_arrive(&empty[s]);
            }
    }, 1, 1, 1, 64);
    long want = 0; for (int r = 0; r < 40; r++) for (int l = 0; l < 32; l++) for (int j = 0; j < 4; j++) want += src[r][l][j];
    return bad == 0 && sum == want;
}

// cp_async16: destination poisoned at issue, written when the phase its arrival belongs to completes (not at the
// arrival itself); !valid writes zeros and does not read the source.
static bool copyLandingCase()
{
    std::atomic<int> bad{0};
    static unsigned char src[16];
    for (int i = 0; i < 16; i++) src[i] = 1 + i;
    launch([&] {
        u64* b = (u64*)emu_smem;
        unsigned char* dst = emu_smem + 64;
        mbar_init(b, 2);
        memset(dst, 0x55, 32);
        cp_async16(dst, src, true);
        cp_async16(dst + 16, nullptr, false);
        if (dst[0] != 0xff || dst[16] != 0xff) bad++;            // poisoned at issue
        cp_async_mbar_arrive(b);
        if (dst[0] != 0xff || dst[16] != 0xff) bad++;            // phase not complete: not landed
        mbar_arrive(b);
        mbar_wait(b, 0);
        for (int i = 0; i < 16; i++) if (dst[i] != src[i] || dst[16 + i] != 0) bad++;
        if (emu_smem[63] != 0xff || dst[32] != 0xff) bad++;      // nothing outside the 32 bytes
    }, 1, 1, 1, 1);
    return bad == 0;
}

// named_sync: warps 0-7 meet on barrier 1 (256), warps 8-11 on barrier 2 (128), repeatedly; a counter per group
// must read full after each meeting.
static bool namedCase()
{
    std::atomic<int> bad{0}, c1{0}, c2{0};
    launch([&] {
        for (int round = 1; round <= 20; round++)
        {
            if (threadIdx.x < 256) { c1++; named_sync(1, 256); if (c1 < 256 * round) bad++; named_sync(1, 256); }
            else { c2++; named_sync(2, 128); if (c2 < 128 * round) bad++; named_sync(2, 128); }
        }
    }, 1, 1, 1, 384);
    return bad == 0;
}

// stmatrix writes read by wgmma count as unfenced reads unless the writers ran fence_async_smem in between.
static long unfencedReads(bool fence)
{
    long before = emu_unfenced_reads;
    launch([&] {
        if (threadIdx.x == 0) fillTiles(15);
        __syncthreads();
        // warp 0 rewrites rows 0-31 of B (two 8x8 matrices side by side per row group: columns 0-15)
        if (emu_warp == 0)
        {
            int l = emu_lane, i = l / 8, rr = l % 8;
            stsm_x4(emu_smem + B_AT[0] + tileOffset(8 * i + rr, 0), 0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u);
            if (fence) fence_async_smem();
        }
        __syncthreads();
        float d[64];
        wgmma_n128_ss(d, desc(A_AT), desc(B_AT[0]), 0); wg_commit(); wg_wait0();
    }, 1, 1, 1, 128);
    return (long)emu_unfenced_reads - before;
}

// ---------------------------------------------------------------------------------------------------------------
// Clusters.

// blockIdx and cluster_rank per CTA: grid x 8 in clusters of 4 (two clusters), y 2; every CTA of a cluster is alive
// at the same time (a cluster_sync over all their threads returns).
static bool clusterIdCase()
{
    std::atomic<int> bad{0};
    static std::atomic<int> seen[8][2];
    for (auto& a : seen) for (auto& b : a) b = 0;
    launch_cluster([&] {
        if (cluster_rank() != blockIdx.x % 4 || gridDim.x != 8) bad++;
        cluster_sync();
        if (threadIdx.x == 0) seen[blockIdx.x][blockIdx.y]++;
    }, 8, 2, 1, 4, 64);
    for (auto& a : seen) for (auto& b : a) if (b != 1) bad++;
    return bad == 0;
}

// cluster_sync spans every thread of every CTA: 4 CTAs x 64 threads count up between two syncs, 10 rounds; in CTA 3
// half the threads exit at once (exited threads no longer count, as on the hardware: no deadlock).
static bool clusterSyncCase()
{
    std::atomic<int> bad{0}, count{0};
    launch_cluster([&] {
        if (cluster_rank() == 3 && threadIdx.x >= 32) return;
        for (int round = 1; round <= 10; round++)
        {
            count++;
            cluster_sync();
            if (count < (3 * 64 + 32) * round) bad++;
            cluster_sync();
        }
    }, 4, 1, 1, 4, 64);
    return bad == 0 && count == 10 * (3 * 64 + 32);
}

// Remote arrivals: in a cluster of 2 x 64 threads, each thread writes its value, then arrives on the peer's barrier
// (count 64); after waiting on its own barrier a CTA must see all the peer's values. Three phases.
static bool remoteArriveCase()
{
    std::atomic<int> bad{0};
    static int values[2][64];
    launch_cluster([&] {
        u64* bar = (u64*)(emu_smem + 64);
        unsigned me = cluster_rank(), t = threadIdx.x;
        if (t == 0) mbar_init(bar, 64);
        fence_mbar_init();
        cluster_sync();
        for (int phase = 0; phase < 3; phase++)
        {
            values[me][t] = 100 * phase + t;
            mbar_arrive_remote(bar, me ^ 1);
            mbar_wait_cluster(bar, phase & 1);
            for (int i = 0; i < 64; i++) if (values[me ^ 1][i] != 100 * phase + i) bad++;
            cluster_sync();   // both CTAs done reading before the values change
        }
        if (t == 0 && (emu_cta->mbars[8].state >> 32) != 3) bad++;
    }, 2, 1, 1, 2, 64);
    return bad == 0;
}

// Multicast in a cluster of 4: rank 0 copies 4096 bytes to ranks 0, 1 and 3 (mask 0b1011) on each one's barrier
// (count 1, one arrive.expect_tx). Rank 3 arrives with its expect_tx before the copy is issued (complete_tx after
// expect_tx); rank 1 only after the bytes have landed in it (complete_tx first: tx-count negative for a while); rank 2
// is not in the mask and keeps its bytes. Then 32 copies of 64 bytes that rank 0 sends itself: some are still poisoned
// (not landed) right after the issue, all there after the wait.
static bool multicastCase()
{
    std::atomic<int> bad{0}, negativeSeen{0}, notLanded{0};
    alignas(16) static unsigned char src[4096], small[32][64];
    for (int i = 0; i < 4096; i++) src[i] = (unsigned char)(i * 7 + 3);
    for (int c = 0; c < 32; c++) for (int i = 0; i < 64; i++) small[c][i] = (unsigned char)(c + i);
    launch_cluster([&] {
        u64* bar = (u64*)(emu_smem + 64), *bar2 = (u64*)(emu_smem + 72);
        unsigned char* dst = emu_smem + 1024;
        unsigned me = cluster_rank();
        if (threadIdx.x != 0) return;   // one thread per CTA
        mbar_init(bar, 1); mbar_init(bar2, 1);
        memset(dst, 0x55, 4096);
        fence_mbar_init();
        cluster_sync();
        if (me == 3) mbar_arrive_expect_tx(bar, 4096);
        cluster_sync();
        if (me == 0) { bulk_multicast(dst, src, 4096, bar, 0b1011); mbar_arrive_expect_tx(bar, 4096); }
        if (me == 1)
        {
            while (emu_cta->mbars[8].tx == 0) emu_land_due();   // not yet landed
            if (emu_cta->mbars[8].tx == -4096) negativeSeen++;
            mbar_arrive_expect_tx(bar, 4096);
        }
        if (me != 2)
        {
            mbar_wait_cluster(bar, 0);
            if (memcmp(dst, src, 4096)) bad++;
            if (emu_cta->mbars[8].tx != 0) bad++;
        }
        else for (int i = 0; i < 4096; i++) if (dst[i] != 0x55) { bad++; break; }
        if (me == 0)
        {
            for (int c = 0; c < 32; c++) bulk_multicast(emu_smem + 8192 + 64 * c, small[c], 64, bar2, 1);
            for (int c = 0; c < 32; c++) if (emu_smem[8192 + 64 * c + 1] == 0xff) notLanded++;
            mbar_arrive_expect_tx(bar2, 32 * 64);
            mbar_wait(bar2, 0);
            if (memcmp(emu_smem + 8192, small, sizeof small)) bad++;
        }
        cluster_sync();
    }, 4, 1, 1, 4, 32, 16384);
    printf("    rank 1 saw tx-count -4096 before its expect_tx: %d; copies not landed right after issue: %d of 32\n", (int)negativeSeen, (int)notLanded);
    return bad == 0 && negativeSeen == 1 && notLanded > 0;
}

// bulk_copy_to_cta: in a cluster of 2, each CTA writes 2048 bytes at its own half of a region and sends them to the
// same offset in the other CTA (complete_tx on the other's barrier, count 1: its arrive.expect_tx); after its wait a CTA
// holds both halves. Rank 1 expects only after the bytes have landed (tx-count negative first).
static bool copyToCtaCase()
{
    std::atomic<int> bad{0};
    launch_cluster([&] {
        u64* bar = (u64*)(emu_smem + 64);
        unsigned me = cluster_rank();
        unsigned char* region = emu_smem + 1024;
        if (threadIdx.x != 0) return;
        mbar_init(bar, 1);
        for (int i = 0; i < 2048; i++) region[2048 * me + i] = (unsigned char)(me * 100 + i % 97);
        fence_mbar_init();
        cluster_sync();
        bulk_copy_to_cta(region + 2048 * me, region + 2048 * me, 2048, bar, me ^ 1);
        if (me == 1) while (emu_cta->mbars[8].tx == 0) emu_land_due();
        mbar_arrive_expect_tx(bar, 2048);
        mbar_wait_cluster(bar, 0);
        for (int h = 0; h < 2; h++) for (int i = 0; i < 2048; i++) if (region[2048 * h + i] != (unsigned char)(h * 100 + i % 97)) { bad++; break; }
        cluster_sync();
    }, 2, 1, 1, 2, 32, 8192);
    return bad == 0;
}

// A small cluster kernel using every cluster primitive: D[64][n] = sum over 6 rounds of A_r B_rᵀ (K = 64) per CTA.
// Round r's A tile (64 x 64, shared by all CTAs) is multicast by rank r % N to every CTA; each CTA's own B slice
// (n x 64, different per CTA) comes by a multicast to itself. Two stages: FULL[s] (count 1: the CTA's producer's
// arrive.expect_tx of A + B) and EMPTY[s] (count N: every CTA's consumers arrive remotely on every CTA's EMPTY once
// they have read stage s, since any CTA may overwrite it next). Warpgroup 0 consumes (wgmma _ss or _rs), warp 4 produces.
static const int TINY_ROUNDS = 6;
alignas(16) static unsigned char tinyA[TINY_ROUNDS][8192], tinyB[EMU_MAX_CLUSTER][TINY_ROUNDS][4096];
static float tinyAm[TINY_ROUNDS][64][64], tinyBm[EMU_MAX_CLUSTER][TINY_ROUNDS][32][64];
static double tinyClusterKernel(unsigned N, int n, bool rs)
{
    std::mt19937 rng(40 + N + n); std::uniform_real_distribution<float> U(-2.f, 2.f);
    for (int r = 0; r < TINY_ROUNDS; r++)
    {
        for (int i = 0; i < 64; i++) for (int c = 0; c < 64; c++)
        { bf16 v = emu_f2bf(U(rng)); tinyAm[r][i][c] = bf(v); memcpy(tinyA[r] + tileOffset(i, c), &v, 2); }
        for (unsigned k = 0; k < N; k++) for (int i = 0; i < n; i++) for (int c = 0; c < 64; c++)
        { bf16 v = emu_f2bf(U(rng)); tinyBm[k][r][i][c] = bf(v); memcpy(tinyB[k][r] + tileOffset(i, c), &v, 2); }
    }
    static float D[EMU_MAX_CLUSTER][128][16];
    const unsigned stage = 8192 + 4096, shared = 2 * stage + 64 + 1024;
    launch_cluster([&] {
        unsigned char* dyn = emu_smem + EMU_DYN_OFFSET;
        unsigned char* base = dyn + ((1024 - (smem_addr(dyn) & 1023)) & 1023);
        u64* full = (u64*)(base + 2 * stage), *empty = full + 2;
        const unsigned me = cluster_rank(), all = (1u << N) - 1, t = threadIdx.x;
        if (t == 0) { for (int s = 0; s < 2; s++) { mbar_init(&full[s], 1); mbar_init(&empty[s], N); } fence_mbar_init(); }
        __syncthreads();
        cluster_sync();   // peers' barriers initialised before any multicast or remote arrive reaches them
        if (t == 128)
            for (int r = 0; r < TINY_ROUNDS; r++)
            {
                int s = r % 2;
                if (r >= 2) mbar_wait_cluster(&empty[s], ((r / 2) - 1) & 1);   // every CTA is done with stage s
                mbar_arrive_expect_tx(&full[s], 8192 + 128 * n);
                if (r % (int)N == (int)me) bulk_multicast(base + s * stage, tinyA[r], 8192, &full[s], all);
                bulk_multicast(base + s * stage + 8192, tinyB[me][r], 128 * n, &full[s], 1u << me);
            }
        else if (t < 128)
        {
            int warp = t / 32, g = (t % 32) / 4, q = t % 4;
            float d[16];
            for (int i = 0; i < 16; i++) d[i] = 0;
            for (int r = 0; r < TINY_ROUNDS; r++)
            {
                int s = r % 2;
                mbar_wait_cluster(&full[s], (r / 2) & 1);
                wg_fence();
                for (int k = 0; k < 4; k++)
                {
                    u64 da = desc(smem_addr(base + s * stage) + 32 * k), db = desc(smem_addr(base + s * stage + 8192) + 32 * k);
                    if (!rs) wgmmaSs(d, n, da, db, 1);
                    else
                    {
                        u32 a[4];   // the A fragment from the landed tile (plain loads: the swizzled layout)
                        auto el = [&](int row, int c) { bf16 v; memcpy(&v, base + s * stage + tileOffset(row, 16 * k + c), 2); return v; };
                        auto pk = [&](int row, int c) { return (u32)el(row, c) | ((u32)el(row, c + 1) << 16); };
                        a[0] = pk(16 * warp + g, 2 * q); a[1] = pk(16 * warp + g + 8, 2 * q);
                        a[2] = pk(16 * warp + g, 2 * q + 8); a[3] = pk(16 * warp + g + 8, 2 * q + 8);
                        wgmmaRs(d, n, a, db, 1);
                    }
                }
                wg_commit(); wg_wait0();
                named_sync(1, 128);   // the whole warpgroup is done reading stage s
                if (t == 0) for (unsigned c = 0; c < N; c++) mbar_arrive_remote(&empty[s], c);
            }
            for (int i = 0; i < n / 2; i++) D[me][t][i] = d[i];
        }
        cluster_sync();   // no CTA exits while a peer may still arrive on its barriers
    }, N, 1, 1, N, 160, shared);
    double worst = 0;
    for (unsigned c = 0; c < N; c++)
        for (int t = 0; t < 128; t++)
        {
            int warp = t / 32, g = (t % 32) / 4, q = t % 4;
            for (int i = 0; i < n / 8; i++) for (int e = 0; e < 4; e++)
            {
                int m = 16 * warp + g + 8 * (e / 2), col = 8 * i + 2 * q + e % 2;
                double s = 0, mag = 0;
                for (int r = 0; r < TINY_ROUNDS; r++)
                    for (int k = 0; k < 64; k++) { double x = (double)tinyAm[r][m][k] * tinyBm[c][r][col][k]; s += x; mag += std::fabs(x); }
                double err = std::fabs(D[c][t][4 * i + e] - s) / (mag + 1e-30);
                worst = std::isfinite(err) ? std::max(worst, err) : INFINITY;
            }
        }
    return worst;
}

// Runs body in a child process and reports whether it aborted with a message containing `needle`.
static bool aborts(std::function<void()> body, const char* needle)
{
    int fd[2]; if (pipe(fd)) return false;
    pid_t pid = fork();
    if (pid == 0) { dup2(fd[1], 2); close(fd[0]); body(); _exit(0); }
    close(fd[1]);
    std::string text; char buf[512]; ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) text.append(buf, n);
    close(fd[0]);
    int status = 0; waitpid(pid, &status, 0);
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && text.find(needle) != std::string::npos;
    if (!ok) printf("    child: status %d, stderr: %s\n", status, text.c_str());
    return ok;
}

int main()
{
    printf("primitives\n");
    bool deferred;
    double e = wgmmaCase(128, false, deferred);
    printf("  wgmma_n128_ss worst error / sum|terms| = %.2e\n", e);
    expect(e < 1e-6, "wgmma_n128_ss = triple loop (2 warpgroups, 4 k16 steps)");
    expect(deferred, "wgmma_n128_ss result not in the registers before wg_wait0");
    for (int n : { 64, 32, 16 })
    {
        e = wgmmaCase(n, false, deferred);
        printf("  wgmma_n%d_ss worst error / sum|terms| = %.2e\n", n, e);
        expect(e < 1e-6 && deferred, n == 64 ? "wgmma_n64_ss = triple loop, deferred" : n == 32 ? "wgmma_n32_ss = triple loop, deferred, d[16..] untouched"
            : "wgmma_n16_ss = triple loop, deferred, d[8..] untouched");
    }
    for (int n : { 128, 64, 32, 16 })
    {
        e = wgmmaCase(n, true, deferred);
        printf("  wgmma_n%d_rs worst error / sum|terms| = %.2e\n", n, e);
        char what[80]; snprintf(what, sizeof what, "wgmma_n%d_rs (A in registers) = triple loop, deferred", n);
        expect(e < 1e-6 && deferred, what);
    }
    expect(waitOneCase(), "wg_wait1 retires all groups but the newest");
    expect(stmatrixCase(), "stmatrix -> ldmatrix round trip (plain, .trans), .trans = transpose");
    expect(stmatrixElementCase(), "stmatrix element (rr, cc) of matrix i = lane 4rr+cc/2, register i");
    expect(mbarrierCase(), "mbarrier phases: 2-stage cp.async ring over 40 rounds");
    expect(copyLandingCase(), "cp_async16 lands at the phase completion; !valid writes zeros");
    expect(namedCase(), "named_sync: two barriers of 256 and 128 threads, 20 rounds");
    expect(clusterIdCase(), "blockIdx / cluster_rank per CTA (clusters of 4, grid 8 x 2)");
    expect(clusterSyncCase(), "cluster_sync: 4 CTAs x 64 threads, 10 rounds, exited threads drop out");
    expect(remoteArriveCase(), "mbar_arrive_remote: 2 CTAs arrive on each other's barrier, 3 phases");
    expect(multicastCase(), "bulk_multicast: mask 0b1011 of 4, complete_tx before and after expect_tx");
    expect(copyToCtaCase(), "bulk_copy_to_cta: 2 CTAs exchange halves, complete_tx before expect_tx");
    struct Tiny { unsigned N; int n; bool rs; unsigned slow; };
    for (Tiny c : { Tiny{ 2, 16, false, 0 }, Tiny{ 4, 32, true, 0 }, Tiny{ 8, 32, false, 0 }, Tiny{ 4, 16, true, 1 }, Tiny{ 2, 32, false, 2 } })
    {
        emu_slow_warpgroups = c.slow;
        e = tinyClusterKernel(c.N, c.n, c.rs);
        emu_slow_warpgroups = 0;
        char what[100];
        snprintf(what, sizeof what, "cluster kernel: %u CTAs, wgmma_n%d_%s, 6 rounds%s", c.N, c.n, c.rs ? "rs" : "ss",
            c.slow == 1 ? ", consumers slowed" : c.slow == 2 ? ", producer slowed" : "");
        printf("  cluster kernel worst error / sum|terms| = %.2e\n", e);
        expect(e < 1e-6, what);
    }
    long unfenced = unfencedReads(false), fenced = unfencedReads(true);
    printf("  unfenced stmatrix rows read by wgmma: %ld without fence, %ld with\n", unfenced, fenced);
    expect(unfenced > 0 && fenced == 0, "stmatrix -> wgmma without fence_async_smem is counted");
    emu_unfenced_reads = 0;
    emu_deadlock_seconds = 1;
    expect(aborts([] { launch([] {
            u64* b = (u64*)emu_smem;
            if (threadIdx.x == 0) mbar_init(b, 1);
            __syncthreads();
            mbar_wait(b, 0);   // nobody arrives
        }, 1, 1, 1, 32); }, "deadlock"), "wait with no arrival aborts (deadlock guard)");
    expect(aborts([] { launch([] {
            u64* b = (u64*)emu_smem;
            mbar_init(b, 1);
            emu_mbar_wait_hook = [](u64* bar) { mbar_arrive(bar); mbar_arrive(bar); };   // two phases pass the waiter
            mbar_wait(b, 0);
        }, 1, 1, 1, 1); }, "phases while a waiter"), "a waiter overrun by two phases aborts");
    expect(aborts([] { launch([] {
            if (threadIdx.x == 0) fillTiles(13);
            __syncthreads();
            float d[64];
            wgmma_n128_ss(d, desc(A_AT), desc(B_AT[0]), 0); wg_commit();
            __syncthreads();
            if (threadIdx.x == 0) emu_smem[B_AT[0] + 5] ^= 1;   // overwrite an operand before the wait
            __syncthreads();
            wg_wait0();
        }, 1, 1, 1, 128); }, "changed in shared memory"), "operand overwritten before the wait aborts");
    expect(aborts([] { launch([] {
            static unsigned char src[16];
            cp_async16(emu_smem, src, true);
        }, 1, 1, 1, 1); }, "never attached"), "cp.async never attached to a barrier aborts");
    expect(aborts([] { launch([] {
            if (threadIdx.x == 0) fillTiles(14);
            __syncthreads();
            float d[64];
            wgmma_n128_ss(d, desc(A_AT), desc(B_AT[0]), 0); wg_commit();
        }, 1, 1, 1, 128); }, "not waited for"), "wgmma never waited for aborts");
    expect(aborts([] { launch([] {
            float d[64];
            wgmma_n128_ss(d, desc(A_AT) & ~(3ull << 62), desc(B_AT[0]), 0);
        }, 1, 1, 1, 128); }, "128-byte swizzle"), "descriptor without the 128-byte swizzle aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            if (threadIdx.x == 0) mbar_init(b, 1);
            cluster_sync();
            alignas(16) static unsigned char src[64];
            if (threadIdx.x == 0 && cluster_rank() == 0) bulk_multicast(emu_smem + 1024, src, 64, b, 0b100);
        }, 2, 1, 1, 2, 32); }, "outside the cluster"), "multicast to a rank outside the cluster aborts");
    // One thread of a one-CTA cluster multicasts `bytes` to shared offset `at` of itself (launch's shared size `shared`).
    auto multicastOnce = [](unsigned at, unsigned bytes, unsigned shared)
    {
        return [=] { launch_cluster([=] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            alignas(16) static unsigned char src[2048];
            bulk_multicast(emu_smem + at, src, bytes, b, 1);
        }, 1, 1, 1, 1, 1, shared); };
    };
    expect(aborts(multicastOnce(1024, 24, 0), "multiple of 16"), "multicast of 24 bytes aborts");
    expect(aborts(multicastOnce(1032, 32, 0), "16-byte aligned"), "multicast to an unaligned destination aborts");
    expect(aborts(multicastOnce(16, 2048, 1024), "overrun"), "multicast past the launch's dynamic shared memory aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            if (cluster_rank() == 0) { mbar_init(b, 1); mbar_arrive_remote(b, 1); }
            cluster_sync();
        }, 2, 1, 1, 2, 1); }, "before mbar_init"), "remote arrive on an uninitialised barrier aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            cluster_sync();
            alignas(16) static unsigned char src[4096];
            if (cluster_rank() == 0) bulk_multicast(emu_smem + 1024, src, 4096, b, 0b10);   // rank 1 never waits for it
            cluster_sync();
        }, 2, 1, 1, 2, 1); }, "CTA rank 1 exits"), "a CTA exiting with a copy into it in flight (or landed, never expected) aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            cluster_sync();
            if (cluster_rank() == 0) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); mbar_arrive_remote(b, 1); }
        }, 2, 1, 1, 2, 1); }, "already exited"), "remote arrive on a CTA that has exited aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            mbar_arrive_expect_tx(b, 16);
            mbar_arrive(b);
        }, 1, 1, 1, 1, 1); }, "no arrival pending"), "an arrival beyond the expected count aborts");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            mbar_arrive_expect_tx(b, 16);   // bytes that never come
            mbar_wait(b, 0);
        }, 1, 1, 1, 1, 1); }, "tx-count 16"), "a wait for transaction bytes never issued aborts (deadlock guard)");
    expect(aborts([] { launch_cluster([] {
            u64* b = (u64*)(emu_smem + 64);
            mbar_init(b, 1);
            cluster_sync();
            unsigned char* tile = emu_smem + 1024;
            if (cluster_rank() == 0)
            {
                memset(tile, 1, 4096);
                for (unsigned seed = 1;; seed++)   // a seed that lands the copy 100 us or more after its issue
                { std::mt19937 r(seed); if (r() % 4 && r() % 500 >= 100) { emu_cluster.rng.seed(seed); break; } }
                bulk_copy_to_cta(tile, tile, 4096, b, 1);
                tile[100] = 2;   // rewritten before the copy has landed
            }
            else { mbar_arrive_expect_tx(b, 4096); mbar_wait(b, 0); }
            cluster_sync();
        }, 2, 1, 1, 2, 1); }, "changed before the copy"), "bulk_copy_to_cta: a source rewritten before the landing aborts");
    expect(aborts([] { launch_cluster([] {}, 6, 1, 1, 4, 32); }, "not a multiple"), "a grid that is not a whole number of clusters aborts");
    printf("primitives: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
