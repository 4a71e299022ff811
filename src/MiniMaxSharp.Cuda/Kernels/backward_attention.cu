// Backward passes of lightning attention and causal GQA softmax attention (training). float32 arithmetic
// throughout; inputs and outputs float32 or bf16 through ld/st.

__device__ __forceinline__ float silu_grad(float x)
{
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

// ---------------------------------------------------------------------------------------------------
// Lightning attention backward. With q, k, v the SiLU'd projections, g = dO and lambda = exp(-slope), the
// forward o_t = sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s gives three gradients of one shape,
//   dq_t = sum_{s<=t} lambda^(t-s) (g_t . v_s) k_s       (pass 0: a = g, b = v, c = k, tokens first to last)
//   dk_s = sum_{t>=s} lambda^(t-s) (v_s . g_t) q_t       (pass 1: a = v, b = g, c = q, tokens last to first)
//   dv_s = sum_{t>=s} lambda^(t-s) (k_s . q_t) g_t       (pass 2: a = k, b = q, c = g, tokens last to first)
// each the recurrence M = lambda M + b^T c, out = a M over the pass's direction, then times silu'(raw).
// A CTA runs one pass of one (sequence, head) for 32 output channels (blockIdx.x): lane j owns channel j
// of the slice; warp w owns state rows 32w..32w+31 in registers, so the contraction over rows is complete
// per warp and the warps' partial outputs are summed through shared memory. Every pass writes its own third
// of dQkv: no atomics. Tokens go in chunks of LB_CHUNK staged in shared memory (SiLU applied once), three
// barriers per chunk; the next chunk's raw values are loaded into registers while the current one computes.
#define LB_CHUNK 16
#define LB_G 3   // "kind" of the derivative of the output (the other kinds are q, k, v = 0, 1, 2 of qkv)

// Raw value of channel ch of token tok: qkv's part `kind` before the SiLU, or the output's derivative.
__device__ __forceinline__ float lb_raw(const void* qkv, int dtIn, const void* g, int dtG, int kind, i64 tok, int heads, int d, int h, int ch)
{
    if (kind == LB_G) return ld(g, tok * heads * d + (i64)h * d + ch, dtG);
    return ld(qkv, tok * 3 * heads * d + (i64)h * 3 * d + (i64)kind * d + ch, dtIn);
}

// q, k and v enter through the SiLU; silu(0) = 0 keeps the zero padding zero.
__device__ __forceinline__ float lb_act(int kind, float raw) { return kind == LB_G ? raw : silu(raw); }

// grid (ceil(d/32), 3·heads, sequences); blockDim = rows = 32·ceil(d/32) (thread x stages state row x);
// dynamic shared memory (2·LB_CHUNK·rows + 2·LB_CHUNK·32 + warps·LB_CHUNK·32) floats.
extern "C" __global__ void lightning_backward(const void* qkv, int dtIn, const void* dOut, int dtG, void* dQkv, int dtOut,
    const int* tokenOffset, const int* tokenCount, const float* slopes, int heads, int d)
{
    extern __shared__ float lb_smem[];
    const int warps = blockDim.x >> 5, rows = blockDim.x;
    float* As = lb_smem;                  // [LB_CHUNK][rows]  a of each staged token (zero past d)
    float* Bs = As + LB_CHUNK * rows;     // [LB_CHUNK][rows]  b
    float* Cs = Bs + LB_CHUNK * rows;     // [LB_CHUNK][32]    c for this CTA's channels
    float* Rs = Cs + LB_CHUNK * 32;       // [LB_CHUNK][32]    raw qkv of the outputs (for silu')
    float* Ps = Rs + LB_CHUNK * 32;       // [warps][LB_CHUNK][32] partial outputs
    const int x = threadIdx.x, lane = x & 31, w = x >> 5;
    const int col0 = blockIdx.x * 32, h = blockIdx.y / 3, pass = blockIdx.y % 3, seq = blockIdx.z;
    const int aKind = pass == 0 ? LB_G : pass == 1 ? 2 : 1;
    const int bKind = pass == 0 ? 2 : pass == 1 ? LB_G : 0;
    const int cKind = pass == 0 ? 1 : pass == 1 ? 0 : LB_G;
    const bool forward = pass == 0;
    const float lambda = (float)exp(-(double)slopes[h]);
    const int offset = tokenOffset[seq], count = tokenCount[seq];
    const int nChunks = (count + LB_CHUNK - 1) / LB_CHUNK;
    const i64 qkvWidth = 3LL * heads * d, outPart = (i64)h * 3 * d + (i64)pass * d;

    // Raw values of one chunk held by this thread: a and b of row x for token i, and c and the output's raw
    // value at slot x + i·blockDim of the [LB_CHUNK][32] tiles. Zero outside the sequence and past d.
    float pa[LB_CHUNK], pb[LB_CHUNK], pc[LB_CHUNK], pr[LB_CHUNK];
    // (A macro rather than a function so that the arrays stay in registers.)
    #define LB_FETCH(chunk_) \
    { \
        const int ft0 = (chunk_) * LB_CHUNK, fm = min(LB_CHUNK, count - ft0); \
        _Pragma("unroll") \
        for (int i = 0; i < LB_CHUNK; i++) \
        { \
            const bool ok = i < fm && x < d; \
            const i64 tok = (i64)offset + ft0 + i; \
            pa[i] = ok ? lb_raw(qkv, dtIn, dOut, dtG, aKind, tok, heads, d, h, x) : 0.0f; \
            pb[i] = ok ? lb_raw(qkv, dtIn, dOut, dtG, bKind, tok, heads, d, h, x) : 0.0f; \
            const int e = x + i * rows, tt = e >> 5, c = e & 31; \
            const bool okc = e < LB_CHUNK * 32 && tt < fm && col0 + c < d; \
            const i64 ctok = (i64)offset + ft0 + tt; \
            pc[i] = okc ? lb_raw(qkv, dtIn, dOut, dtG, cKind, ctok, heads, d, h, col0 + c) : 0.0f; \
            pr[i] = okc ? ld(qkv, ctok * qkvWidth + outPart + col0 + c, dtIn) : 0.0f; \
        } \
    }

    float M[32];
    #pragma unroll
    for (int r = 0; r < 32; r++) M[r] = 0.0f;

    if (nChunks > 0) LB_FETCH(forward ? 0 : nChunks - 1);
    for (int ci = 0; ci < nChunks; ci++)
    {
        const int chunk = forward ? ci : nChunks - 1 - ci;
        const int t0 = chunk * LB_CHUNK, m = min(LB_CHUNK, count - t0);
        __syncthreads();   // the previous chunk's steps and reduction are done with the tiles
        #pragma unroll
        for (int i = 0; i < LB_CHUNK; i++)
        {
            As[i * rows + x] = lb_act(aKind, pa[i]);
            Bs[i * rows + x] = lb_act(bKind, pb[i]);
            const int e = x + i * rows;
            if (e < LB_CHUNK * 32)
            {
                Cs[e] = lb_act(cKind, pc[i]);
                Rs[e] = pr[i];
            }
        }
        __syncthreads();
        if (ci + 1 < nChunks) LB_FETCH(forward ? chunk + 1 : chunk - 1);
        for (int step = 0; step < m; step++)
        {
            const int tt = forward ? step : m - 1 - step;
            const float* a = As + tt * rows + w * 32;
            const float* b = Bs + tt * rows + w * 32;
            const float c = Cs[tt * 32 + lane];
            float acc0 = 0.0f, acc1 = 0.0f;
            #pragma unroll
            for (int r = 0; r < 32; r += 4)
            {
                float4 a4 = *(const float4*)(a + r), b4 = *(const float4*)(b + r);
                M[r] = fmaf(lambda, M[r], b4.x * c);
                M[r + 1] = fmaf(lambda, M[r + 1], b4.y * c);
                M[r + 2] = fmaf(lambda, M[r + 2], b4.z * c);
                M[r + 3] = fmaf(lambda, M[r + 3], b4.w * c);
                acc0 = fmaf(a4.x, M[r], acc0);
                acc1 = fmaf(a4.y, M[r + 1], acc1);
                acc0 = fmaf(a4.z, M[r + 2], acc0);
                acc1 = fmaf(a4.w, M[r + 3], acc1);
            }
            Ps[(w * LB_CHUNK + tt) * 32 + lane] = acc0 + acc1;
        }
        __syncthreads();
        for (int e = x; e < m * 32; e += rows)
        {
            int tt = e >> 5, c = e & 31, col = col0 + c;
            if (col >= d) continue;
            float sum = 0.0f;
            for (int u = 0; u < warps; u++) sum += Ps[(u * LB_CHUNK + tt) * 32 + c];
            st(dQkv, ((i64)offset + t0 + tt) * qkvWidth + outPart + col, dtOut, sum * silu_grad(Rs[e]));
        }
    }
    #undef LB_FETCH
}

// ---------------------------------------------------------------------------------------------------
// Causal GQA softmax attention backward, every sequence from position 0, scale = 1/sqrt(d):
//   P = softmax(scale q k^T),  e_ts = dO_t . v_s,  D_t = sum_s P_ts e_ts,  dZ = scale P (e - D)
//   dQ = dZ K,  dK = dZ^T Q,  dV = P^T dO
// Two kernels, one warp per row (no block barriers; the warps of a CTA take neighbouring rows of one head, so
// they read mostly the same keys, or queries, and share them through L1):
//   softmax_backward_query, warp per (query t, head h): pass 1 walks the keys s <= t, 32 at a time with lane =
//     key, for the row's log-sum-exp and D (online, rescaled as the max grows) -> stats; pass 2 walks them
//     again for dQ (lane = channel, each key's weight broadcast by shuffle).
//   softmax_backward_key, warp per (key s, KV head g): walks the group's heads and the queries t >= s of the
//     sequence (lane = query) for P and dZ from the stats, accumulating dK and dV (lane = channel).
// head_dim at most SB_MAX_D.
#define SB_MAX_D 256
#define SB_WARPS 4
#define SB_CH (SB_MAX_D / 32)

// Dot product of a shared-memory row (float32) with row x[at..at+d) of a global tensor. Each lane reads its
// own row, so the row is read four elements per load where aligned (float4, or four bf16 in a uint2).
__device__ __forceinline__ float sb_dot(const float* a, const void* x, i64 at, int dt, int d)
{
    float s0 = 0.0f, s1 = 0.0f;
    int c = 0;
    if (dt == DT_F32)
    {
        const float* p = (const float*)x + at;
        if (((unsigned long long)p & 15ull) == 0)
            for (; c + 3 < d; c += 4)
            {
                float4 v = *(const float4*)(p + c);
                s0 = fmaf(a[c], v.x, s0);
                s1 = fmaf(a[c + 1], v.y, s1);
                s0 = fmaf(a[c + 2], v.z, s0);
                s1 = fmaf(a[c + 3], v.w, s1);
            }
    }
    else
    {
        const bf16* p = (const bf16*)x + at;
        if (((unsigned long long)p & 7ull) == 0)
            for (; c + 3 < d; c += 4)
            {
                uint2 v = *(const uint2*)(p + c);
                s0 = fmaf(a[c], __uint_as_float(v.x << 16), s0);
                s1 = fmaf(a[c + 1], __uint_as_float(v.x & 0xffff0000u), s1);
                s0 = fmaf(a[c + 2], __uint_as_float(v.y << 16), s0);
                s1 = fmaf(a[c + 3], __uint_as_float(v.y & 0xffff0000u), s1);
            }
    }
    for (; c < d; c++) s0 = fmaf(a[c], ld(x, at + c, dt), s0);
    return s0 + s1;
}

// grid (ceil(T / SB_WARPS), H), blockDim 32·SB_WARPS. seqStart[t]: the row of position 0 of t's sequence.
// stats[(t·H + h)·2 + 0/1] = log-sum-exp of the row's scaled scores / D_t.
extern "C" __global__ void softmax_backward_query(const void* q, int dtQ, const void* k, int dtK, const void* v, int dtV,
    const void* dO, int dtG, const int* seqStart, int T, int H, int KV, int d, float scale, void* dQ, int dtDQ, float* stats)
{
    __shared__ float qs[SB_WARPS][SB_MAX_D], gs[SB_WARPS][SB_MAX_D];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x * SB_WARPS + w, h = blockIdx.y;
    if (t >= T) return;   // a whole warp; the kernel has no block barriers
    const int g = h / (H / KV);
    const i64 W = (i64)H * d, kvw = (i64)KV * d;
    const i64 qAt = (i64)t * W + (i64)h * d;
    for (int c = lane; c < d; c += 32)
    {
        qs[w][c] = ld(q, qAt + c, dtQ);
        gs[w][c] = ld(dO, qAt + c, dtG);
    }
    __syncwarp();
    const int s0 = seqStart[t];

    // Pass 1: m = running max, l = sum exp(z - m), De = sum exp(z - m) e.
    float m = NEG_INF, l = 0.0f, De = 0.0f;
    for (int base = s0; base <= t; base += 32)
    {
        const int s = base + lane;
        const bool live = s <= t;
        float z = NEG_INF, e = 0.0f;
        if (live)
        {
            z = scale * sb_dot(qs[w], k, (i64)s * kvw + (i64)g * d, dtK, d);
            e = sb_dot(gs[w], v, (i64)s * kvw + (i64)g * d, dtV, d);
        }
        const float mn = fmaxf(m, warp_max(z));   // finite: key `base` is live
        const float p = live ? expf(z - mn) : 0.0f;
        const float r = expf(m - mn);              // 0 on the first group (m = -inf)
        l = l * r + warp_sum(p);
        De = De * r + warp_sum(p * e);
        m = mn;
    }
    const float lse = m + logf(l), D = De / l;
    if (lane == 0)
    {
        stats[((i64)t * H + h) * 2] = lse;
        stats[((i64)t * H + h) * 2 + 1] = D;
    }

    // Pass 2: dQ_t = sum_s scale P_ts (e_ts - D) k_s.
    float acc[SB_CH];
    #pragma unroll
    for (int i = 0; i < SB_CH; i++) acc[i] = 0.0f;
    for (int base = s0; base <= t; base += 32)
    {
        const int s = base + lane;
        float wgt = 0.0f;
        if (s <= t)
        {
            float z = scale * sb_dot(qs[w], k, (i64)s * kvw + (i64)g * d, dtK, d);
            float e = sb_dot(gs[w], v, (i64)s * kvw + (i64)g * d, dtV, d);
            wgt = scale * expf(z - lse) * (e - D);
        }
        const int n = min(32, t - base + 1);
        for (int j = 0; j < n; j++)
        {
            const float wj = __shfl_sync(0xffffffffu, wgt, j);
            const i64 kAt = (i64)(base + j) * kvw + (i64)g * d;
            #pragma unroll
            for (int i = 0; i < SB_CH; i++)
            {
                int c = lane + 32 * i;
                if (c < d) acc[i] = fmaf(wj, ld(k, kAt + c, dtK), acc[i]);
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < SB_CH; i++)
    {
        int c = lane + 32 * i;
        if (c < d) st(dQ, qAt + c, dtDQ, acc[i]);
    }
}

// grid (ceil(T / SB_WARPS), KV), blockDim 32·SB_WARPS. seqEnd[s]: the row after the last of s's sequence.
extern "C" __global__ void softmax_backward_key(const void* q, int dtQ, const void* k, int dtK, const void* v, int dtV,
    const void* dO, int dtG, const int* seqEnd, int T, int H, int KV, int d, float scale, const float* stats,
    void* dK, int dtDK, void* dV, int dtDV)
{
    __shared__ float ks[SB_WARPS][SB_MAX_D], vs[SB_WARPS][SB_MAX_D];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int s = blockIdx.x * SB_WARPS + w, g = blockIdx.y;
    if (s >= T) return;   // a whole warp; the kernel has no block barriers
    const int group = H / KV;
    const i64 W = (i64)H * d, kvw = (i64)KV * d;
    const i64 kAt = (i64)s * kvw + (i64)g * d;
    for (int c = lane; c < d; c += 32)
    {
        ks[w][c] = ld(k, kAt + c, dtK);
        vs[w][c] = ld(v, kAt + c, dtV);
    }
    __syncwarp();
    const int end = seqEnd[s];

    float accK[SB_CH], accV[SB_CH];
    #pragma unroll
    for (int i = 0; i < SB_CH; i++) accK[i] = accV[i] = 0.0f;
    for (int hh = 0; hh < group; hh++)
    {
        const int h = g * group + hh;
        for (int base = s; base < end; base += 32)
        {
            const int t = base + lane;
            float p = 0.0f, wgt = 0.0f;
            if (t < end)
            {
                const i64 at = (i64)t * W + (i64)h * d;
                float z = scale * sb_dot(ks[w], q, at, dtQ, d);
                float e = sb_dot(vs[w], dO, at, dtG, d);
                float lse = stats[((i64)t * H + h) * 2], D = stats[((i64)t * H + h) * 2 + 1];
                p = expf(z - lse);
                wgt = scale * p * (e - D);
            }
            const int n = min(32, end - base);
            for (int j = 0; j < n; j++)
            {
                const float pj = __shfl_sync(0xffffffffu, p, j), wj = __shfl_sync(0xffffffffu, wgt, j);
                const i64 at = (i64)(base + j) * W + (i64)h * d;
                #pragma unroll
                for (int i = 0; i < SB_CH; i++)
                {
                    int c = lane + 32 * i;
                    if (c < d)
                    {
                        accV[i] = fmaf(pj, ld(dO, at + c, dtG), accV[i]);
                        accK[i] = fmaf(wj, ld(q, at + c, dtQ), accK[i]);
                    }
                }
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < SB_CH; i++)
    {
        int c = lane + 32 * i;
        if (c < d)
        {
            st(dK, kAt + c, dtDK, accK[i]);
            st(dV, kAt + c, dtDV, accV[i]);
        }
    }
}
