// Shared by every kernel file (prepended before compilation). No CUDA headers are included, so NVRTC
// needs no include paths: bfloat16 is handled as its bit pattern (the top half of a float32).
typedef unsigned short bf16;
typedef unsigned int u32;
typedef long long i64;

#define DT_F32 0
#define DT_BF16 1
#define NEG_INF __int_as_float(0xff800000u)

__device__ __forceinline__ float bf2f(bf16 v) { return __uint_as_float(((u32)v) << 16); }

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
__device__ __forceinline__ bf16 f2bf(float f)
{
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

__device__ __forceinline__ float ld(const void* p, i64 i, int dt)
{
    return dt == DT_F32 ? ((const float*)p)[i] : bf2f(((const bf16*)p)[i]);
}

__device__ __forceinline__ void st(void* p, i64 i, int dt, float v)
{
    if (dt == DT_F32) ((float*)p)[i] = v; else ((bf16*)p)[i] = f2bf(v);
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v)
{
    __shared__ float partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float t = lane < warps ? partial[lane] : 0.0f;
    return warp_sum(t);
}
