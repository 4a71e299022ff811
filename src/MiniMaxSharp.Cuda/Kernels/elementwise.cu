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

// ---- Row norms with every load of a row issued at once (decode steps: the generic kernels above walk a row in
// a loop whose loads wait on each other, a memory latency per iteration). Thread i of a row's block takes the
// 8-column pieces i, i + blockDim, ... (at most NORM_PIECES of them), kept in registers between the sum of
// squares and the output. Needs cols % 8 == 0 and 16-byte aligned tensors (the host checks). ----
#define NORM_PIECES 4

// As rms_norm, one block per row. gate != 0: out = sigmoid(gate) * (the norm's output as stored in out's dtype),
// the lightning block's output norm and its sigmoid gate in one pass (the same roundings as the two ops).
extern "C" __global__ void rms_norm_vec8(const void* x, int dtX, const void* w, int dtW, const void* gate, int dtGate,
    void* out, int dtOut, int cols, float eps)
{
    const i64 base = (i64)blockIdx.x * cols;
    const int pieces = cols / 8;
    float v[NORM_PIECES][8], wv[NORM_PIECES][8], g[NORM_PIECES][8];
    float ss = 0.0f;
    #pragma unroll
    for (int c = 0; c < NORM_PIECES; c++)
    {
        int i = threadIdx.x + c * blockDim.x;
        if (i >= pieces) continue;
        load8(x, base + 8 * i, dtX, v[c]);
        load8(w, 8 * i, dtW, wv[c]);
        if (gate) load8(gate, base + 8 * i, dtGate, g[c]);
        #pragma unroll
        for (int e = 0; e < 8; e++) ss += v[c][e] * v[c][e];
    }
    const float scale = rsqrtf(block_sum(ss) / cols + eps);
    #pragma unroll
    for (int c = 0; c < NORM_PIECES; c++)
    {
        int i = threadIdx.x + c * blockDim.x;
        if (i >= pieces) continue;
        float o[8];
        #pragma unroll
        for (int e = 0; e < 8; e++)
        {
            o[e] = wv[c][e] * (v[c][e] * scale);
            if (gate) o[e] = 1.0f / (1.0f + expf(-g[c][e])) * as_stored(o[e], dtOut);
        }
        store8(out, base + 8 * i, dtOut, o);
    }
}

// As scale_add_rms_norm (the norm reads the residual as stored), one block per row.
extern "C" __global__ void scale_add_rms_norm_vec8(const void* a, int dtA, float alpha, const void* b, int dtB, float beta,
    void* residual, int dtRes, const void* w, int dtW, void* out, int dtOut, int cols, float eps)
{
    const i64 base = (i64)blockIdx.x * cols;
    const int pieces = cols / 8;
    float r[NORM_PIECES][8], wv[NORM_PIECES][8];
    float ss = 0.0f;
    #pragma unroll
    for (int c = 0; c < NORM_PIECES; c++)
    {
        int i = threadIdx.x + c * blockDim.x;
        if (i >= pieces) continue;
        float av[8], bv[8];
        load8(a, base + 8 * i, dtA, av);
        load8(b, base + 8 * i, dtB, bv);
        load8(w, 8 * i, dtW, wv[c]);
        #pragma unroll
        for (int e = 0; e < 8; e++) r[c][e] = alpha * av[e] + beta * bv[e];
        store8(residual, base + 8 * i, dtRes, r[c]);
        #pragma unroll
        for (int e = 0; e < 8; e++)
        {
            r[c][e] = as_stored(r[c][e], dtRes);
            ss += r[c][e] * r[c][e];
        }
    }
    const float scale = rsqrtf(block_sum(ss) / cols + eps);
    #pragma unroll
    for (int c = 0; c < NORM_PIECES; c++)
    {
        int i = threadIdx.x + c * blockDim.x;
        if (i >= pieces) continue;
        float o[8];
        #pragma unroll
        for (int e = 0; e < 8; e++) o[e] = wv[c][e] * (r[c][e] * scale);
        store8(out, base + 8 * i, dtOut, o);
    }
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
// one row. A lane issues MATVEC_UNROLL 16-byte loads of the row before it uses any (a 2048-wide row is one
// such round), so a whole product's weights are in flight at once instead of a memory latency per few loads.
#define MATVEC_MAX_ROWS 4
#define MATVEC_UNROLL 8

// The first round of a lane's weight loads of one row (wv, n8 16-byte pieces): issued before the kernel waits for
// its predecessor (PDL), since the weights do not depend on it.
__device__ __forceinline__ void matvec_prefetch(const uint4* wv, int n8, int lane, uint4* a)
{
    #pragma unroll
    for (int u = 0; u < MATVEC_UNROLL; u++)
    {
        int i = 32 * u + lane;
        a[u] = i < n8 ? wv[i] : mk_uint4(0u, 0u, 0u, 0u);
    }
}

// acc[t] (lane's share) += x[t] · w row for t < rows, the first round's loads already in a (matvec_prefetch); the
// caller sums over the warp.
__device__ __forceinline__ void matvec_lane(const bf16* x, int rows, int in, const uint4* wv, int lane, float* acc, uint4* a)
{
    const int n8 = in / 8;
    for (int base = 0; base < n8; base += 32 * MATVEC_UNROLL)
    {
        if (base > 0)
        {
            #pragma unroll
            for (int u = 0; u < MATVEC_UNROLL; u++)
            {
                int i = base + 32 * u + lane;
                a[u] = i < n8 ? wv[i] : mk_uint4(0u, 0u, 0u, 0u);
            }
        }
        #pragma unroll
        for (int u = 0; u < MATVEC_UNROLL; u++)
        {
            int i = base + 32 * u + lane;
            if (i >= n8) break;
            #pragma unroll
            for (int t = 0; t < MATVEC_MAX_ROWS; t++)
                if (t < rows) acc[t] += dot8_bf16(a[u], ((const uint4*)(x + (i64)t * in))[i]);
        }
    }
}

// Copies x (rows × in bf16, in a multiple of 8, 16-byte aligned) into the block's shared memory and returns the
// copy: the block's warps then read x there instead of each reading it from L2 (for the LM head, 32000 warps each
// reading the 4 KB row was as many bytes as the weights). Every thread of the block must call it.
__device__ __forceinline__ const bf16* matvec_stage_x(const bf16* x, int rows, int in, uint4* shared)
{
    const int n = rows * (in / 8);
    for (int i = threadIdx.x; i < n; i += blockDim.x) shared[i] = ((const uint4*)x)[i];
    __syncthreads();
    return (const bf16*)shared;
}

// Sums the lanes' shares and writes y[t, o] for t < rows (lane 0).
__device__ __forceinline__ void matvec_store(float* acc, int rows, int lane, void* y, int out, int o, int dtY)
{
    #pragma unroll
    for (int t = 0; t < MATVEC_MAX_ROWS; t++)
    {
        if (t >= rows) break;
        float s = warp_sum(acc[t]);
        if (lane == 0) st(y, (i64)t * out + o, dtY, s);
    }
}

// One warp's output o of y = x · wᵀ (w [out, in]), for both matvec kernels. Under PDL the first round of the weight
// row's loads is issued before waiting for the kernel that wrote x (the weights do not depend on it). staged: x is
// copied to the block's dynamic shared memory first (launched with rows·in·2 bytes of it). Every thread of the block
// must call it (the wait and the staging barrier); warps past the last output only take part in those.
__device__ __forceinline__ void matvec_row(const bf16* x, int rows, int in, const bf16* w, int out, int o, void* y, int dtY,
    int staged, uint4* xShared)
{
    int lane = threadIdx.x & 31;
    const uint4* wv = (const uint4*)(w + (i64)o * in);
    uint4 a[MATVEC_UNROLL];
    if (o < out) matvec_prefetch(wv, in / 8, lane, a);
    pdl_wait_then_release();
    if (staged) x = matvec_stage_x(x, rows, in, xShared);
    if (o >= out) return;
    float acc[MATVEC_MAX_ROWS] = { 0.0f, 0.0f, 0.0f, 0.0f };
    matvec_lane(x, rows, in, wv, lane, acc, a);
    matvec_store(acc, rows, lane, y, out, o, dtY);
}

// matvec_row waits for the previous kernel.
// PDL_MANUAL
extern "C" __global__ void matvec_bf16(const bf16* x, int rows, int in, const bf16* w, int out, void* y, int dtY, int staged)
{
    extern __shared__ uint4 matvec_x[];
    matvec_row(x, rows, in, w, out, blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), y, dtY, staged, matvec_x);
}

// Up to four products of the same x in one launch (e.g. a layer's q, k and v projections): the warps run over
// the outputs of w0, then w1, ...; an unused product has out 0; matvec_row waits for the previous kernel.
// PDL_MANUAL
extern "C" __global__ void matvec_bf16_many(const bf16* x, int rows, int in, int dtY,
    const bf16* w0, void* y0, int out0, const bf16* w1, void* y1, int out1,
    const bf16* w2, void* y2, int out2, const bf16* w3, void* y3, int out3, int staged)
{
    extern __shared__ uint4 matvec_x[];
    int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const bf16* w = w0;
    void* y = y0;
    int out = out0;
    if (o >= out) { o -= out; w = w1; y = y1; out = out1; }
    if (o >= out) { o -= out; w = w2; y = y2; out = out2; }
    if (o >= out) { o -= out; w = w3; y = y3; out = out3; }
    matvec_row(x, rows, in, w, out, o, y, dtY, staged, matvec_x);
}
