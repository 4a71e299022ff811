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

// Dot product of 8 bf16 pairs packed in two uint4.
__device__ __forceinline__ float dot8_bf16(uint4 a, uint4 b)
{
    float s = 0.0f;
    u32 av[4] = { a.x, a.y, a.z, a.w }, bv[4] = { b.x, b.y, b.z, b.w };
    #pragma unroll
    for (int i = 0; i < 4; i++)
    {
        s += __uint_as_float(av[i] << 16) * __uint_as_float(bv[i] << 16);
        s += __uint_as_float(av[i] & 0xffff0000u) * __uint_as_float(bv[i] & 0xffff0000u);
    }
    return s;
}

// Dot product of 8 bf16 weights with 8 float32 values.
__device__ __forceinline__ float dot8_bf16_f32(uint4 a, float4 lo, float4 hi)
{
    return __uint_as_float(a.x << 16) * lo.x + __uint_as_float(a.x & 0xffff0000u) * lo.y
         + __uint_as_float(a.y << 16) * lo.z + __uint_as_float(a.y & 0xffff0000u) * lo.w
         + __uint_as_float(a.z << 16) * hi.x + __uint_as_float(a.z & 0xffff0000u) * hi.y
         + __uint_as_float(a.w << 16) * hi.z + __uint_as_float(a.w & 0xffff0000u) * hi.w;
}

// Vector constructors (own names: the kernels include no CUDA header, so make_uint4 and friends are not relied on).
__device__ __forceinline__ uint4 mk_uint4(u32 x, u32 y, u32 z, u32 w) { uint4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r; }
__device__ __forceinline__ float2 mk_float2(float x, float y) { float2 r; r.x = x; r.y = y; return r; }
__device__ __forceinline__ float4 mk_float4(float x, float y, float z, float w) { float4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r; }

// 8 values from element i (a multiple of 8) of a float32 or bf16 tensor: two or one 16-byte loads.
__device__ __forceinline__ void load8(const void* p, i64 i, int dt, float* v)
{
    if (dt == DT_F32)
    {
        float4 a = ((const float4*)((const float*)p + i))[0], b = ((const float4*)((const float*)p + i))[1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
    else
    {
        uint4 a = *(const uint4*)((const bf16*)p + i);
        u32 w[4] = { a.x, a.y, a.z, a.w };
        #pragma unroll
        for (int e = 0; e < 4; e++) { v[2 * e] = __uint_as_float(w[e] << 16); v[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u); }
    }
}

__device__ __forceinline__ void store8(void* p, i64 i, int dt, const float* v)
{
    if (dt == DT_F32)
    {
        float4* d = (float4*)((float*)p + i);
        d[0] = mk_float4(v[0], v[1], v[2], v[3]);
        d[1] = mk_float4(v[4], v[5], v[6], v[7]);
    }
    else
    {
        uint4 a;
        a.x = (u32)f2bf(v[0]) | ((u32)f2bf(v[1]) << 16);
        a.y = (u32)f2bf(v[2]) | ((u32)f2bf(v[3]) << 16);
        a.z = (u32)f2bf(v[4]) | ((u32)f2bf(v[5]) << 16);
        a.w = (u32)f2bf(v[6]) | ((u32)f2bf(v[7]) << 16);
        *(uint4*)((bf16*)p + i) = a;
    }
}

// The value a store of dtype dt keeps (bf16 rounding, or the value itself).
__device__ __forceinline__ float as_stored(float v, int dt) { return dt == DT_F32 ? v : bf2f(f2bf(v)); }

// Programmatic dependent launch (sm_90, on unless MINIMAXSHARP_CUDA_PDL=0): wait until the previous kernel of the stream has finished
// and its writes are visible, then let the next kernel launch. Kernels marked PDL_MANUAL (a comment right before
// them) call this themselves after the work that does not depend on the previous kernel (e.g. issuing their weight
// loads); every other kernel gets it as its first statement. Without the launch attribute both instructions do nothing.
__device__ __forceinline__ void pdl_wait_then_release()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
