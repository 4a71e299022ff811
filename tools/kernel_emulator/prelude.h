// Host emulation of the CUDA features used by lightning.cu: one std::thread per CUDA thread, warp collectives
// (ldmatrix, mma.sync) through a per-warp exchange and barrier.
#include <cstdint>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <barrier>
#include <vector>
#include <algorithm>
#include <atomic>
#include <mutex>
#include <chrono>
#include <memory>
#include <random>
#include <functional>
#define KERNEL_EMULATOR 1
typedef unsigned long long u64;
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)
struct uint4 { unsigned x, y, z, w; };
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct Dim3 { unsigned x, y, z; };
thread_local Dim3 threadIdx;
Dim3 blockDim, gridDim;
thread_local int emu_lane, emu_warp;
#define __cluster_dims__(...)
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }

static inline int min(int a, int b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------------------------------------------
// Per-CTA context. Everything a CTA owns on the hardware (shared memory, mbarriers, named barriers, the warps' and
// warpgroups' exchanges, the proxy-fence tracking, blockIdx, the cluster rank) lives in one EmuCta; each emulated
// thread points at its CTA through the thread_local emu_cta. The CTAs of one cluster run concurrently (emu_ctas[rank]);
// host code outside a launch sees CTA 0 (tests read the shared memory a launch left there).
#define EMU_SMEM_BYTES 232448
#define EMU_MAX_CLUSTER 8
struct EmuCta;
// Barrier 1 of lightning_pipe (all threads of the CTA). Arrivals since its last completion are counted, and every
// barrier 0 checks that none is pending: a waiter left out would otherwise pass unnoticed (the emulation is not a
// race detector: reads before the writes they need may still see the right values by luck of timing).
struct EmuNamedDone { EmuCta* cta; void operator()() noexcept; };
// Barrier 0 checks barrier 1 in its completion step (all threads have arrived, none has left: no arrival for the next
// block can be counted yet; a check after the wait would race with threads already past it).
struct EmuBlockDone { EmuCta* cta; void operator()() noexcept; };
struct WarpExchange
{
    std::barrier<>* bar;
    const void* addr[32];
    unsigned a[32][4], b[32][2];
    float c[32][4];
    unsigned v[32];
};
struct WarpgroupExchange
{
    std::barrier<>* bar;
    u64 descA[128], descB[128];
    unsigned a[128][4];
    unsigned accumulate[128];
};
struct EmuCopy { unsigned char* dst; unsigned char bytes[16]; };
// mbarrier side-table entry: state = completed phases << 32 | pending arrivals; tx = transaction count of the current
// phase (expect_tx adds, complete_tx subtracts; may go negative when bytes land before their expect_tx).
struct EmuMbarrier { std::atomic<u64> state; std::atomic<unsigned> count; std::atomic<long long> tx; std::mutex lock; std::vector<EmuCopy> copies; };
struct alignas(1024) EmuCta
{
    // 1024-byte aligned like the hardware's swizzle atoms, so that a kernel aligning its tiles by address and the
    // descriptor model (which works on offsets into this buffer) agree.
    unsigned char smem[EMU_SMEM_BYTES];
    Dim3 block;                          // blockIdx
    unsigned rank;                       // %cluster_ctarank
    std::barrier<EmuBlockDone>* blockBarrier;
    std::barrier<EmuNamedDone>* namedBarrier;
    std::atomic<int> namedPending;
    WarpExchange warps[32];
    WarpgroupExchange warpgroups[8];
    std::mutex namedLock;                // named_sync's barriers (ids 1..15), created by their first user
    std::barrier<>* namedIds[16];
    unsigned namedCounts[16];
    EmuMbarrier mbars[EMU_SMEM_BYTES / 8];
    std::atomic<unsigned char> unfenced[EMU_SMEM_BYTES / 16];   // stmatrix rows not yet fenced, per 16 bytes
    std::atomic<unsigned> threadsLeft;   // threads of the CTA still running; the last one runs the exit checks
    std::atomic<bool> exited;
};
EmuCta emu_ctas[EMU_MAX_CLUSTER];
thread_local EmuCta* emu_cta = &emu_ctas[0];
#define blockIdx (emu_cta->block)
#define emu_smem (emu_cta->smem)
inline void EmuNamedDone::operator()() noexcept { cta->namedPending = 0; }
inline void EmuBlockDone::operator()() noexcept
{
    if (cta->namedPending != 0) { fprintf(stderr, "barrier 1 incomplete (%d arrivals) at barrier 0\n", (int)cta->namedPending); abort(); }
}
static inline void __syncthreads() { emu_cta->blockBarrier->arrive_and_wait(); }
// The kernels' dynamic shared memory starts 16 bytes into emu_smem: the hardware promises 16-byte alignment only, so a
// kernel that aligns its tiles to 1024 bytes runs its worst case (1008 bytes of padding) here.
#define EMU_DYN_OFFSET 16
static inline void __syncwarp() { emu_cta->warps[emu_warp].bar->arrive_and_wait(); }
// Warp shuffles (full mask only) through the warp exchange.
static inline unsigned emu_shfl(unsigned mask, unsigned value, int src)
{
    if (mask != 0xffffffffu) { fprintf(stderr, "shuffle with a partial mask %08x is not emulated\n", mask); abort(); }
    WarpExchange& w = emu_cta->warps[emu_warp];
    w.v[emu_lane] = value;
    w.bar->arrive_and_wait();
    unsigned r = w.v[src & 31];
    w.bar->arrive_and_wait();
    return r;
}
static inline float __shfl_xor_sync(unsigned mask, float v, int m) { return __uint_as_float(emu_shfl(mask, __float_as_uint(v), emu_lane ^ m)); }
static inline int __shfl_xor_sync(unsigned mask, int v, int m) { return (int)emu_shfl(mask, (unsigned)v, emu_lane ^ m); }
static inline unsigned __shfl_xor_sync(unsigned mask, unsigned v, int m) { return emu_shfl(mask, v, emu_lane ^ m); }
static inline float __shfl_sync(unsigned mask, float v, int src) { return __uint_as_float(emu_shfl(mask, __float_as_uint(v), src)); }
static inline int __shfl_sync(unsigned mask, int v, int src) { return (int)emu_shfl(mask, (unsigned)v, src); }
static inline unsigned __shfl_sync(unsigned mask, unsigned v, int src) { return emu_shfl(mask, v, src); }
