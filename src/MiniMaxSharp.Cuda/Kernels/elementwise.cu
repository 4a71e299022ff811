// Row and element-wise ops. Activations are float32 or bf16 (dtype codes DT_*); arithmetic is float32.

extern "C" __global__ void embedding(const void* table, int dtTable, const int* ids, void* out, int dtOut, int tokens, int hidden)
{
    i64 n = (i64)tokens * hidden;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / hidden, c = i % hidden;
        st(out, i, dtOut, ld(table, (i64)ids[t] * hidden + c, dtTable));
    }
}

// One block per row. Each thread reads and writes the same elements, so out may alias x.
extern "C" __global__ void rms_norm(const void* x, int dtX, const void* w, int dtW, void* out, int dtOut, int cols, float eps)
{
    i64 row = blockIdx.x;
    const i64 base = row * cols;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
    {
        float v = ld(x, base + c, dtX);
        ss += v * v;
    }
    float scale = rsqrtf(block_sum(ss) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        st(out, base + c, dtOut, ld(w, c, dtW) * (ld(x, base + c, dtX) * scale));
}

// residual = alpha*a + beta*b, then out = w * residual / rms(residual), one block per row (the residual
// add and the norm after it in one pass). The norm reads the residual as stored. Each thread touches the
// same columns in both loops, so out may alias a.
extern "C" __global__ void scale_add_rms_norm(const void* a, int dtA, float alpha, const void* b, int dtB, float beta,
    void* residual, int dtRes, const void* w, int dtW, void* out, int dtOut, int cols, float eps)
{
    i64 row = blockIdx.x;
    const i64 base = row * cols;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
    {
        st(residual, base + c, dtRes, alpha * ld(a, base + c, dtA) + beta * ld(b, base + c, dtB));
        float v = ld(residual, base + c, dtRes);
        ss += v * v;
    }
    float scale = rsqrtf(block_sum(ss) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        st(out, base + c, dtOut, ld(w, c, dtW) * (ld(residual, base + c, dtRes) * scale));
}

extern "C" __global__ void scale_add(const void* a, int dtA, float alpha, const void* b, int dtB, float beta, void* out, int dtOut, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        st(out, i, dtOut, alpha * ld(a, i, dtA) + beta * ld(b, i, dtB));
}

extern "C" __global__ void sigmoid_gate(const void* g, int dtG, const void* x, int dtX, void* out, int dtOut, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        float s = 1.0f / (1.0f + expf(-ld(g, i, dtG)));
        st(out, i, dtOut, s * ld(x, i, dtX));
    }
}

// gate = silu(gate) * up, element-wise (the SwiGLU of an expert).
// Two bf16 lanes of a 32-bit word: silu(g) * u with the scalar path's float math and rounding.
__device__ __forceinline__ u32 silu_mul_bf16x2(u32 g, u32 u)
{
    float lo = silu(__uint_as_float(g << 16)) * __uint_as_float(u << 16);
    float hi = silu(__uint_as_float(g & 0xffff0000u)) * __uint_as_float(u & 0xffff0000u);
    return (u32)f2bf(lo) | ((u32)f2bf(hi) << 16);
}

// gate = silu(gate) * up. bf16 arrays aligned to 16 bytes go 8 elements per 16-byte load (the MoE's
// activations at prefill sizes are hundreds of MB; per-element 2-byte accesses ran at half the bandwidth).
extern "C" __global__ void silu_mul(void* gate, int dtGate, const void* up, int dtUp, i64 n)
{
    const i64 first = blockIdx.x * (i64)blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    if (dtGate == DT_BF16 && dtUp == DT_BF16 && (n & 7) == 0 && (((unsigned long long)gate | (unsigned long long)up) & 15) == 0)
    {
        uint4* g = (uint4*)gate;
        const uint4* u = (const uint4*)up;
        for (i64 i = first; i < (n >> 3); i += stride)
        {
            uint4 a = g[i], b = u[i];
            a.x = silu_mul_bf16x2(a.x, b.x);
            a.y = silu_mul_bf16x2(a.y, b.y);
            a.z = silu_mul_bf16x2(a.z, b.z);
            a.w = silu_mul_bf16x2(a.w, b.w);
            g[i] = a;
        }
        return;
    }
    for (i64 i = first; i < n; i += stride)
        st(gate, i, dtGate, silu(ld(gate, i, dtGate)) * ld(up, i, dtUp));
}

// dst[r] = src[idx[r]], rows of rowBytes bytes (every supported row has an even byte count); a block per row
// at a time, 16-byte units when vec16 (row size and both pointers multiples of 16), else 16-bit units.
extern "C" __global__ void gather_rows(const void* src, void* dst, const int* idx, int rows, i64 rowBytes, int vec16)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x)
    {
        const char* from = (const char*)src + (i64)idx[r] * rowBytes;
        char* to = (char*)dst + (i64)r * rowBytes;
        if (vec16)
            for (i64 c = threadIdx.x; c < (rowBytes >> 4); c += blockDim.x) ((uint4*)to)[c] = ((const uint4*)from)[c];
        else
            for (i64 c = threadIdx.x; c < (rowBytes >> 1); c += blockDim.x) ((unsigned short*)to)[c] = ((const unsigned short*)from)[c];
    }
}

// NeoX rotary embedding on the first 2*half channels of each head, in place. positions[t] is token t's
// position; the angle is position * inv_freq in float32 (as the references), its cosine and sine in double.
// sinSign -1 rotates by the opposite angles: the backward (the rotation is orthogonal).
extern "C" __global__ void rope(void* x, int dt, const int* positions, const float* invFreq, int tokens, int heads, int headDim, int half, float sinSign)
{
    i64 n = (i64)tokens * heads * half;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        int j = (int)(i % half);
        i64 th = i / half;
        int h = (int)(th % heads);
        i64 t = th / heads;
        float angle = (float)positions[t] * invFreq[j];
        float c = (float)cos((double)angle), s = sinSign * (float)sin((double)angle);
        i64 at = t * (i64)heads * headDim + (i64)h * headDim + j;
        float a = ld(x, at, dt), b = ld(x, at + half, dt);
        st(x, at, dt, a * c - b * s);
        st(x, at + half, dt, b * c + a * s);
    }
}

// Deterministic pseudo-random fill in [-scale, scale) (benchmark inputs, without a host upload).
extern "C" __global__ void fill_random(void* x, int dt, i64 n, u32 seed, float scale)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        u32 h = (u32)i * 0x9E3779B1u ^ (u32)(i >> 32) * 0x85EBCA77u ^ seed;
        h ^= h >> 15; h *= 0x2C1B3C6Du; h ^= h >> 12; h *= 0x297A2D39u; h ^= h >> 15;
        st(x, i, dt, ((float)(h >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale);
    }
}

extern "C" __global__ void convert(const void* src, int dtSrc, void* dst, int dtDst, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        st(dst, i, dtDst, ld(src, i, dtSrc));
}

// Matrix-vector products for a few rows (decode): y[t, o] = x[t] · w[o] for t < rows ≤ MATVEC_MAX_ROWS, bf16 x
// and w (16-byte aligned rows, in a multiple of 8), float32 accumulation. One warp per output o reads the
// weight row once for all rows of x: the step is bound by reading the weights, which cuBLAS does slowly at
// one row.
#define MATVEC_MAX_ROWS 4
extern "C" __global__ void matvec_bf16(const bf16* x, int rows, int in, const bf16* w, int out, void* y, int dtY)
{
    int lane = threadIdx.x & 31;
    int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (o >= out) return;
    const uint4* wv = (const uint4*)(w + (i64)o * in);
    float acc[MATVEC_MAX_ROWS] = { 0.0f, 0.0f, 0.0f, 0.0f };
    #pragma unroll 4
    for (int i = lane; i < in / 8; i += 32)
    {
        uint4 a = wv[i];
        #pragma unroll
        for (int t = 0; t < MATVEC_MAX_ROWS; t++)
            if (t < rows) acc[t] += dot8_bf16(a, ((const uint4*)(x + (i64)t * in))[i]);
    }
    #pragma unroll
    for (int t = 0; t < MATVEC_MAX_ROWS; t++)
    {
        if (t >= rows) break;
        float s = warp_sum(acc[t]);
        if (lane == 0) st(y, (i64)t * out + o, dtY, s);
    }
}
