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
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
struct uint4 { unsigned x, y, z, w; };
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct Dim3 { unsigned x, y, z; };
thread_local Dim3 threadIdx;
Dim3 blockIdx, blockDim;
thread_local int emu_lane, emu_warp;
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline float __shfl_xor_sync(unsigned, float, int) { abort(); }
std::barrier<>* emu_block_barrier;
// Barrier 1 of lightning_pipe (all threads of the CTA). Arrivals since its last completion are counted, and every
// barrier 0 checks that none is pending: a waiter left out would otherwise pass unnoticed (the emulation is not a
// race detector: reads before the writes they need may still see the right values by luck of timing).
#include <atomic>
std::atomic<int> emu_named_pending;
struct EmuNamedDone { void operator()() noexcept { emu_named_pending = 0; } };
std::barrier<EmuNamedDone>* emu_named_barrier;
static inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
unsigned char emu_smem[232448];
struct WarpExchange
{
    std::barrier<>* bar;
    const void* addr[32];
    unsigned a[32][4], b[32][2];
    float c[32][4];
};
WarpExchange emu_warps[32];
static inline void __syncwarp() { emu_warps[emu_warp].bar->arrive_and_wait(); }
