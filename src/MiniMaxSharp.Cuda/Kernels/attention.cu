// Causal softmax attention with GQA over per-sequence KV caches (rotated keys, values: [capacity, KV*d]).
// Lanes hold channels lane, lane+32, ... of a query (d <= 32*MAX_PER_LANE).
#define MAX_PER_LANE 8

// ---------------------------------------------------------------------------------------------------
// Flash attention for head_dim 128, bf16 (mma.sync m16n8k16, float32 accumulation), FA2-style: a CTA of
// 4 warps takes 128 queries of one sequence and one head (32 rows per warp) and streams the cached keys and
// values in tiles of 64 (cp.async, double-buffered) with an online softmax in registers. Keys past a
// query's position are masked; cache rows past the tile's last position are zero-filled.
// items[4i..4i+3] = { sequence, first packed row, rows, position of the first row }.
#define FA_D 128
#define FA_BN 64
#define FA_LD 136

__device__ __forceinline__ uint4 fa_u4(u32 x, u32 y, u32 z, u32 w) { uint4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r; }
__device__ __forceinline__ u32 fa_pack(float lo, float hi)
{
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ u32 fa_smem(const void* p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void fa_ldsm_x4(u32* r, const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(fa_smem(p)));
}

__device__ __forceinline__ void fa_ldsm_x4_t(u32* r, const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(fa_smem(p)));
}

__device__ __forceinline__ void fa_mma(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16-byte asynchronous copy; bytes = 0 fills the destination with zeros.
__device__ __forceinline__ void fa_cp16(void* dst, const void* src, int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(fa_smem(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void fa_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
__device__ __forceinline__ void fa_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// 32 queries per warp (two m16 row tiles): every K and V fragment read from shared memory feeds two row
// tiles' tensor-core work (16 per warp reached 243 TFLOP/s at T=16384, this 307). Q fragments are re-read
// from shared memory at each key tile (the registers go to the doubled accumulators: 255 per thread, no
// spills), and the probabilities are packed to bf16 as the P·V products consume them. A warp skips the
// tiles wholly past its last query.
#define FA_BM_WIDE 128
extern "C" __global__ void __launch_bounds__(128) flash_attention(const bf16* q, bf16* out, const int* items,
    const unsigned long long* keyCaches, const unsigned long long* valueCaches, int heads, int kvHeads, float scaleLog2)
{
    extern __shared__ unsigned char fa_shared[];
    bf16* Qs = (bf16*)fa_shared;                 // [128][136]
    bf16* Ks = Qs + FA_BM_WIDE * FA_LD;          // [2][64][136]
    bf16* Vs = Ks + 2 * FA_BN * FA_LD;           // [2][64][136]

    const int item = blockIdx.x, h = blockIdx.y;
    const int seq = items[4 * item], rowStart = items[4 * item + 1], rows = items[4 * item + 2], pos0 = items[4 * item + 3];
    const int kvh = h / (heads / kvHeads);
    const i64 width = (i64)heads * FA_D, kvWidth = (i64)kvHeads * FA_D;
    const bf16* K = (const bf16*)keyCaches[seq] + (i64)kvh * FA_D;
    const bf16* V = (const bf16*)valueCaches[seq] + (i64)kvh * FA_D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int lastPos = pos0 + rows - 1;
    const int keyTiles = lastPos / FA_BN + 1;
    const int rowBase = 32 * warp;

    for (int p = tid; p < FA_BM_WIDE * 16; p += 128)
    {
        int r = p >> 4, c = (p & 15) * 8;
        fa_cp16(Qs + r * FA_LD + c, q + (i64)(rowStart + min(r, rows - 1)) * width + (i64)h * FA_D + c, r < rows ? 16 : 0);
    }
    auto loadKv = [&](int tile, int buf)
    {
        bf16* kd = Ks + buf * FA_BN * FA_LD;
        bf16* vd = Vs + buf * FA_BN * FA_LD;
        for (int p = tid; p < FA_BN * 16; p += 128)
        {
            int r = p >> 4, c = (p & 15) * 8, key = tile * FA_BN + r;
            int ok = key <= lastPos ? 16 : 0;
            i64 at = (i64)min(key, lastPos) * kvWidth + c;
            fa_cp16(kd + r * FA_LD + c, K + at, ok);
            fa_cp16(vd + r * FA_LD + c, V + at, ok);
        }
    };
    loadKv(0, 0);
    fa_commit();

    float o[2][16][4];
    #pragma unroll
    for (int mt = 0; mt < 2; mt++)
        #pragma unroll
        for (int i = 0; i < 16; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    float mRow[2][2] = { { NEG_INF, NEG_INF }, { NEG_INF, NEG_INF } }, lRow[2][2] = { { 0.0f, 0.0f }, { 0.0f, 0.0f } };

    for (int tile = 0; tile < keyTiles; tile++)
    {
        const int buf = tile & 1;
        if (tile + 1 < keyTiles) loadKv(tile + 1, buf ^ 1);
        fa_commit();
        fa_wait_all_but_one();
        __syncthreads();
        const bf16* kt = Ks + buf * FA_BN * FA_LD;
        const bf16* vt = Vs + buf * FA_BN * FA_LD;
        if (tile * FA_BN <= pos0 + rowBase + 31)
        {
            float sc[2][8][4];
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
                #pragma unroll
                for (int i = 0; i < 8; i++) sc[mt][i][0] = sc[mt][i][1] = sc[mt][i][2] = sc[mt][i][3] = 0.0f;
            #pragma unroll
            for (int kk = 0; kk < 8; kk++)
            {
                u32 qa[2][4];
                #pragma unroll
                for (int mt = 0; mt < 2; mt++)
                    fa_ldsm_x4(qa[mt], Qs + (rowBase + 16 * mt + (lane & 15)) * FA_LD + 16 * kk + (lane >> 4) * 8);
                #pragma unroll
                for (int np = 0; np < 4; np++)
                {
                    u32 b[4];
                    int i = lane >> 3, j = lane & 7;
                    fa_ldsm_x4(b, kt + (16 * np + j + (i >> 1) * 8) * FA_LD + 16 * kk + (i & 1) * 8);
                    #pragma unroll
                    for (int mt = 0; mt < 2; mt++)
                    {
                        fa_mma(sc[mt][2 * np], qa[mt], b[0], b[1]);
                        fa_mma(sc[mt][2 * np + 1], qa[mt], b[2], b[3]);
                    }
                }
            }
            // Online softmax (base-2 exponent; scale folded in); sc becomes the probabilities.
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
            {
                const bool masked = tile * FA_BN + FA_BN - 1 > pos0 + rowBase + 16 * mt;
                #pragma unroll
                for (int hr = 0; hr < 2; hr++)
                {
                    const int qPos = pos0 + rowBase + 16 * mt + g + 8 * hr;
                    float mx = mRow[mt][hr];
                    #pragma unroll
                    for (int nt = 0; nt < 8; nt++)
                        #pragma unroll
                        for (int e = 0; e < 2; e++)
                        {
                            float v = sc[mt][nt][2 * hr + e] * scaleLog2;
                            int key = tile * FA_BN + 8 * nt + 2 * t + e;
                            if (masked && key > qPos) v = NEG_INF;
                            sc[mt][nt][2 * hr + e] = v;
                            mx = fmaxf(mx, v);
                        }
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    float corr = exp2f(mRow[mt][hr] - mx);
                    lRow[mt][hr] *= corr;
                    #pragma unroll
                    for (int nt = 0; nt < 16; nt++) { o[mt][nt][2 * hr] *= corr; o[mt][nt][2 * hr + 1] *= corr; }
                    mRow[mt][hr] = mx;
                    #pragma unroll
                    for (int nt = 0; nt < 8; nt++)
                        #pragma unroll
                        for (int e = 0; e < 2; e++)
                        {
                            float pv = exp2f(sc[mt][nt][2 * hr + e] - mx);
                            lRow[mt][hr] += pv;
                            sc[mt][nt][2 * hr + e] = pv;
                        }
                }
            }
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
            {
                u32 pa[2][4];
                #pragma unroll
                for (int mt = 0; mt < 2; mt++)
                {
                    pa[mt][0] = fa_pack(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
                    pa[mt][1] = fa_pack(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
                    pa[mt][2] = fa_pack(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
                    pa[mt][3] = fa_pack(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
                }
                #pragma unroll
                for (int np = 0; np < 8; np++)
                {
                    u32 b[4];
                    int i = lane >> 3, j = lane & 7;
                    fa_ldsm_x4_t(b, vt + (16 * kk + j + (i & 1) * 8) * FA_LD + 16 * np + (i >> 1) * 8);
                    #pragma unroll
                    for (int mt = 0; mt < 2; mt++)
                    {
                        fa_mma(o[mt][2 * np], pa[mt], b[0], b[1]);
                        fa_mma(o[mt][2 * np + 1], pa[mt], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads();
    }
    fa_wait_all();

    #pragma unroll
    for (int mt = 0; mt < 2; mt++)
        #pragma unroll
        for (int hr = 0; hr < 2; hr++)
        {
            float l = lRow[mt][hr];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            int r = rowBase + 16 * mt + g + 8 * hr;
            if (r >= rows) continue;
            float inv = 1.0f / l;
            bf16* dst = out + (i64)(rowStart + r) * width + (i64)h * FA_D + 2 * t;
            #pragma unroll
            for (int nt = 0; nt < 16; nt++) *(u32*)(dst + 8 * nt) = fa_pack(o[mt][nt][2 * hr] * inv, o[mt][nt][2 * hr + 1] * inv);
        }
}

// ---------------------------------------------------------------------------------------------------
// Attention split over the keys (flash decoding), for decode steps and head sizes the flash kernel does
// not take: work item (token, head, split). A token at position pos divides its pos + 1 keys into maxSplits
// splits of decode_split_keys(...) keys (at least minSplitKeys), computed here from the position rather than
// passed in, so a decode step's launch is the same at every context length (CUDA graphs); splits past the
// token's last key are empty. Each of the 4 warps walks a quarter of the split with an online softmax (lane = channels lane,
// lane+32, ...), the warps merge in shared memory, and the split's (max, sum, unnormalised output) go to
// a scratch buffer that decode_combine reduces per (token, head).
// Keys per split for a token at position pos (pos + 1 keys): an even share of maxSplits, at least minSplitKeys.
__device__ __forceinline__ int decode_split_keys(int pos, int minSplitKeys, int maxSplits)
{
    return max(minSplitKeys, (int)(((i64)pos + maxSplits) / maxSplits));
}

// Appends a step's keys and values to the caches: row t of k and v goes to row tokenPos[t] of the caches of
// sequence tokenSeq[t] (rows of rowUnits 16-bit units; a bit-exact copy). The positions come from the
// device, so the launch is the same at every step.
extern "C" __global__ void kv_append(const unsigned short* k, const unsigned short* v, const int* tokenSeq, const int* tokenPos,
    const unsigned long long* keyCaches, const unsigned long long* valueCaches, int tokens, i64 rowUnits)
{
    i64 n = (i64)tokens * rowUnits;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / rowUnits, c = i % rowUnits;
        i64 at = (i64)tokenPos[t] * rowUnits + c;
        ((unsigned short*)keyCaches[tokenSeq[t]])[at] = k[i];
        ((unsigned short*)valueCaches[tokenSeq[t]])[at] = v[i];
    }
}

extern "C" __global__ void __launch_bounds__(128) decode_attention_split(const void* q, int dtQ, const int* tokenSeq, const int* tokenPos,
    const unsigned long long* keyCaches, const unsigned long long* valueCaches, int dtCache, int heads, int kvHeads, int d, float scale,
    int minSplitKeys, int maxSplits, float* partial)
{
    __shared__ float wm[4], wl[4];
    __shared__ float wo[4][256];
    const int t = blockIdx.x, h = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int seq = tokenSeq[t], pos = tokenPos[t];
    const int splitKeys = decode_split_keys(pos, minSplitKeys, maxSplits);
    const int first = split * splitKeys;
    float* dst = partial + (((i64)t * heads + h) * maxSplits + split) * (d + 2);
    if (first > pos)
    {
        if (threadIdx.x == 0) { dst[0] = NEG_INF; dst[1] = 0.0f; }
        return;
    }
    const int lastKey = min(pos, first + splitKeys - 1);
    const int kvh = h / (heads / kvHeads);
    const i64 kvWidth = (i64)kvHeads * d;
    const void* K = (const void*)keyCaches[seq];
    const void* V = (const void*)valueCaches[seq];
    const int per = (d + 31) / 32;
    float qv[MAX_PER_LANE], acc[MAX_PER_LANE];
    for (int c = 0; c < MAX_PER_LANE; c++)
    {
        int ch = lane + 32 * c;
        qv[c] = (c < per && ch < d) ? ld(q, (i64)t * heads * d + (i64)h * d + ch, dtQ) * scale : 0.0f;
        acc[c] = 0.0f;
    }
    float m = NEG_INF, l = 0.0f;
    for (int p = first + warp; p <= lastKey; p += 4)
    {
        i64 base = (i64)p * kvWidth + (i64)kvh * d;
        float part = 0.0f;
        for (int c = 0; c < MAX_PER_LANE; c++)
        {
            int ch = lane + 32 * c;
            if (c < per && ch < d) part += qv[c] * ld(K, base + ch, dtCache);
        }
        float s = warp_sum(part);
        float mNew = fmaxf(m, s);
        float corr = expf(m - mNew), e = expf(s - mNew);
        l = l * corr + e;
        for (int c = 0; c < MAX_PER_LANE; c++)
        {
            int ch = lane + 32 * c;
            if (c < per && ch < d) acc[c] = acc[c] * corr + e * ld(V, base + ch, dtCache);
        }
        m = mNew;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    for (int c = 0; c < MAX_PER_LANE; c++)
    {
        int ch = lane + 32 * c;
        if (c < per && ch < d) wo[warp][ch] = acc[c];
    }
    __syncthreads();
    float mAll = fmaxf(fmaxf(wm[0], wm[1]), fmaxf(wm[2], wm[3]));
    float f[4], lAll = 0.0f;
    for (int w = 0; w < 4; w++) { f[w] = wm[w] == NEG_INF ? 0.0f : expf(wm[w] - mAll); lAll += wl[w] * f[w]; }
    for (int ch = threadIdx.x; ch < d; ch += blockDim.x)
        dst[2 + ch] = wo[0][ch] * f[0] + wo[1][ch] * f[1] + wo[2][ch] * f[2] + wo[3][ch] * f[3];
    if (threadIdx.x == 0) { dst[0] = mAll; dst[1] = lAll; }
}

// out[t, h] = sum over splits of exp(m_s - M) o_s / sum of exp(m_s - M) l_s. grid (tokens, heads), a block of
// 128 threads. Only the token's live splits (those holding keys: pos / splitKeys + 1 of them, as the split
// kernels count) are read: the threads share them for the maximum and the weights exp(m_s - M) (kept in shared
// memory), then each thread sums its channels over the splits with independent loads.
#define COMBINE_MAX_SPLITS 256
extern "C" __global__ void decode_combine(const float* partial, const int* tokenPos, int minSplitKeys, int maxSplits,
    int heads, int d, void* out, int dtOut)
{
    __shared__ float factor[COMBINE_MAX_SPLITS];
    __shared__ float reduce[32];
    const int t = blockIdx.x, h = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int pos = tokenPos[t];
    const int live = min(min(maxSplits, COMBINE_MAX_SPLITS), pos / decode_split_keys(pos, minSplitKeys, maxSplits) + 1);
    const float* src = partial + ((i64)t * heads + h) * maxSplits * (d + 2);
    float m = NEG_INF;
    for (int s = threadIdx.x; s < live; s += blockDim.x) m = fmaxf(m, src[(i64)s * (d + 2)]);
    m = warp_max(m);
    if (lane == 0) reduce[warp] = m;
    __syncthreads();
    float mAll = NEG_INF;
    for (int w = 0; w < warps; w++) mAll = fmaxf(mAll, reduce[w]);
    __syncthreads();
    float l = 0.0f;
    for (int s = threadIdx.x; s < live; s += blockDim.x)
    {
        float ms = src[(i64)s * (d + 2)];
        float f = ms == NEG_INF ? 0.0f : expf(ms - mAll);
        factor[s] = f;
        l += src[(i64)s * (d + 2) + 1] * f;
    }
    const float lAll = block_sum(l);   // its barriers also publish factor[]
    for (int ch = threadIdx.x; ch < d; ch += blockDim.x)
    {
        float acc = 0.0f;
        #pragma unroll 8
        for (int s = 0; s < live; s++) acc += src[(i64)s * (d + 2) + 2 + ch] * factor[s];
        st(out, (i64)t * heads * d + (i64)h * d + ch, dtOut, acc / lAll);
    }
}

// Decode attention for head_dim 128 and bf16 caches, GQA-aware: a CTA takes one token, one KV head (all
// `group` query heads that read it, group <= 8) and one split of the keys, so every key and value is read
// once per group. Each warp takes tiles of 32 keys, one key per lane for the scores (16-byte loads of the
// key row), then one 4-channel slice per lane for the values (coalesced rows). Partial results go to
// decode_combine in the same layout as decode_attention_split's.
#define DG_MAX_GROUP 8

// The keys [first, lastKey] of split `split` of a token at position pos, for both GQA decode kernels. A split past the
// token's last key is empty: it writes its (max −∞, sum 0) stub for the group's rows of dst (decode_combine's layout,
// as gqa_finish_split) and returns false, and the block returns.
__device__ __forceinline__ bool gqa_split_keys(float* dst, int group, int pos, int minSplitKeys, int maxSplits, int split,
    int& first, int& lastKey)
{
    const int D = 128;
    const int splitKeys = decode_split_keys(pos, minSplitKeys, maxSplits);
    first = split * splitKeys;
    lastKey = min(pos, first + splitKeys - 1);
    if (first <= pos) return true;
    if (threadIdx.x < group)
    {
        float* row = dst + ((i64)threadIdx.x * maxSplits + split) * (D + 2);
        row[0] = NEG_INF; row[1] = 0.0f;
    }
    return false;
}

// The end of both GQA decode kernels: each warp's online-softmax state (max m, sum l, unnormalised output acc, lane
// owning channels 4·lane..4·lane+3) goes to shared memory (wm, wl, wo), then the 4 warps are merged and the split's
// (max, sum, output) written for each of the group's query rows to the scratch layout decode_combine reads (rows of
// dst: one per query head, maxSplits splits each).
__device__ __forceinline__ void gqa_finish_split(const float* m, const float* l, const float (*acc)[4], int lane, int warp,
    float (*wm)[DG_MAX_GROUP], float (*wl)[DG_MAX_GROUP], float (*wo)[DG_MAX_GROUP][128], int group, float* dst,
    int maxSplits, int split)
{
    const int D = 128;
    #pragma unroll
    for (int g = 0; g < DG_MAX_GROUP; g++)
    {
        if (g >= group) continue;
        if (lane == 0) { wm[warp][g] = m[g]; wl[warp][g] = l[g]; }
        wo[warp][g][4 * lane] = acc[g][0]; wo[warp][g][4 * lane + 1] = acc[g][1];
        wo[warp][g][4 * lane + 2] = acc[g][2]; wo[warp][g][4 * lane + 3] = acc[g][3];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < group * D; i += blockDim.x)
    {
        int g = i / D, ch = i % D;
        float mAll = fmaxf(fmaxf(wm[0][g], wm[1][g]), fmaxf(wm[2][g], wm[3][g]));
        float o = 0.0f, lAll = 0.0f;
        #pragma unroll
        for (int w = 0; w < 4; w++)
        {
            float f = wm[w][g] == NEG_INF ? 0.0f : expf(wm[w][g] - mAll);
            o += wo[w][g][ch] * f;
            lAll += wl[w][g] * f;
        }
        float* row = dst + ((i64)g * maxSplits + split) * (D + 2);
        row[2 + ch] = o;
        if (ch == 0) { row[0] = mAll; row[1] = lAll; }
    }
}

// GQA decode with the lanes over the channels (bf16 caches, head_dim 128, groups up to DG_MAX_GROUP): lane owns
// channels 4·lane .. 4·lane+3 of every key and value row, so each row is one coalesced 256-byte read, and the
// group's query rows sit in registers (4 channels × group). A round takes 8 keys per warp, their key and value
// rows requested together; a key's scores are warp sums by butterfly, which leaves them in every lane for the
// value update. The warps take rounds in turn and merge in shared memory; the split's (max, sum, unnormalised
// output) go to the same scratch layout as decode_attention_gqa's, for decode_combine.
#define DGL_ROUND 8
extern "C" __global__ void __launch_bounds__(128) decode_attention_gqa_lanes(const bf16* q, const int* tokenSeq, const int* tokenPos,
    const unsigned long long* keyCaches, const unsigned long long* valueCaches, int heads, int kvHeads, float scale,
    int minSplitKeys, int maxSplits, float* partial)
{
    const int D = 128;
    __shared__ float wm[4][DG_MAX_GROUP], wl[4][DG_MAX_GROUP];
    __shared__ float wo[4][DG_MAX_GROUP][128];
    const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int group = heads / kvHeads;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int seq = tokenSeq[t], pos = tokenPos[t];
    int first, lastKey;
    if (!gqa_split_keys(partial + ((i64)t * heads + kvh * group) * maxSplits * (D + 2), group, pos, minSplitKeys, maxSplits, split,
            first, lastKey))
        return;
    const i64 kvWidth = (i64)kvHeads * D;
    const bf16* K = (const bf16*)keyCaches[seq] + (i64)kvh * D + 4 * lane;
    const bf16* V = (const bf16*)valueCaches[seq] + (i64)kvh * D + 4 * lane;
    float qr[DG_MAX_GROUP][4];
    #pragma unroll
    for (int g = 0; g < DG_MAX_GROUP; g++)
    {
        uint2 raw;
        raw.x = 0u; raw.y = 0u;
        if (g < group) raw = *(const uint2*)(q + (i64)t * heads * D + (i64)(kvh * group + g) * D + 4 * lane);
        qr[g][0] = __uint_as_float(raw.x << 16) * scale;
        qr[g][1] = __uint_as_float(raw.x & 0xffff0000u) * scale;
        qr[g][2] = __uint_as_float(raw.y << 16) * scale;
        qr[g][3] = __uint_as_float(raw.y & 0xffff0000u) * scale;
    }
    float m[DG_MAX_GROUP], l[DG_MAX_GROUP], acc[DG_MAX_GROUP][4];
    #pragma unroll
    for (int g = 0; g < DG_MAX_GROUP; g++) { m[g] = NEG_INF; l[g] = 0.0f; acc[g][0] = acc[g][1] = acc[g][2] = acc[g][3] = 0.0f; }
    for (int base = first + DGL_ROUND * warp; base <= lastKey; base += 4 * DGL_ROUND)
    {
        uint2 kr[DGL_ROUND], vr[DGL_ROUND];
        #pragma unroll
        for (int j = 0; j < DGL_ROUND; j++)
        {
            kr[j].x = 0u; kr[j].y = 0u;
            vr[j].x = 0u; vr[j].y = 0u;
            if (base + j <= lastKey)
            {
                kr[j] = *(const uint2*)(K + (i64)(base + j) * kvWidth);
                vr[j] = *(const uint2*)(V + (i64)(base + j) * kvWidth);
            }
        }
        float s[DGL_ROUND][DG_MAX_GROUP];
        #pragma unroll
        for (int j = 0; j < DGL_ROUND; j++)
        {
            float k0 = __uint_as_float(kr[j].x << 16), k1 = __uint_as_float(kr[j].x & 0xffff0000u);
            float k2 = __uint_as_float(kr[j].y << 16), k3 = __uint_as_float(kr[j].y & 0xffff0000u);
            #pragma unroll
            for (int g = 0; g < DG_MAX_GROUP; g++) s[j][g] = qr[g][0] * k0 + qr[g][1] * k1 + qr[g][2] * k2 + qr[g][3] * k3;
        }
        #pragma unroll
        for (int off = 16; off > 0; off >>= 1)
        {
            #pragma unroll
            for (int j = 0; j < DGL_ROUND; j++)
            {
                #pragma unroll
                for (int g = 0; g < DG_MAX_GROUP; g++) s[j][g] += __shfl_xor_sync(0xffffffffu, s[j][g], off);
            }
        }
        #pragma unroll
        for (int g = 0; g < DG_MAX_GROUP; g++)
        {
            if (g >= group) continue;
            // base <= lastKey: the round has at least one live key, so mNew is finite.
            float mNew = m[g];
            #pragma unroll
            for (int j = 0; j < DGL_ROUND; j++) if (base + j <= lastKey) mNew = fmaxf(mNew, s[j][g]);
            float corr = expf(m[g] - mNew);
            l[g] *= corr;
            acc[g][0] *= corr; acc[g][1] *= corr; acc[g][2] *= corr; acc[g][3] *= corr;
            #pragma unroll
            for (int j = 0; j < DGL_ROUND; j++)
            {
                float p = base + j <= lastKey ? expf(s[j][g] - mNew) : 0.0f;
                l[g] += p;
                acc[g][0] += p * __uint_as_float(vr[j].x << 16);
                acc[g][1] += p * __uint_as_float(vr[j].x & 0xffff0000u);
                acc[g][2] += p * __uint_as_float(vr[j].y << 16);
                acc[g][3] += p * __uint_as_float(vr[j].y & 0xffff0000u);
            }
            m[g] = mNew;
        }
    }
    gqa_finish_split(m, l, acc, lane, warp, wm, wl, wo, group, partial + ((i64)t * heads + kvh * group) * maxSplits * (D + 2),
        maxSplits, split);
}

extern "C" __global__ void __launch_bounds__(128) decode_attention_gqa(const bf16* q, const int* tokenSeq, const int* tokenPos,
    const unsigned long long* keyCaches, const unsigned long long* valueCaches, int heads, int kvHeads, float scale,
    int minSplitKeys, int maxSplits, float* partial)
{
    const int D = 128;
    __shared__ float qs[DG_MAX_GROUP][128];
    __shared__ float ps[4][32][DG_MAX_GROUP];
    __shared__ float wm[4][DG_MAX_GROUP], wl[4][DG_MAX_GROUP];
    __shared__ float wo[4][DG_MAX_GROUP][128];
    const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int group = heads / kvHeads;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int seq = tokenSeq[t], pos = tokenPos[t];
    int first, lastKey;
    if (!gqa_split_keys(partial + ((i64)t * heads + kvh * group) * maxSplits * (D + 2), group, pos, minSplitKeys, maxSplits, split,
            first, lastKey))
        return;
    const i64 kvWidth = (i64)kvHeads * D;
    const bf16* K = (const bf16*)keyCaches[seq] + (i64)kvh * D;
    const bf16* V = (const bf16*)valueCaches[seq] + (i64)kvh * D;
    for (int i = threadIdx.x; i < group * D; i += blockDim.x)
        qs[i / D][i % D] = bf2f(q[(i64)t * heads * D + (i64)(kvh * group + i / D) * D + i % D]) * scale;
    __syncthreads();

    float m[DG_MAX_GROUP], l[DG_MAX_GROUP], acc[DG_MAX_GROUP][4];
    #pragma unroll
    for (int g = 0; g < DG_MAX_GROUP; g++) { m[g] = NEG_INF; l[g] = 0.0f; acc[g][0] = acc[g][1] = acc[g][2] = acc[g][3] = 0.0f; }
    for (int tile = first + 32 * warp; tile <= lastKey; tile += 128)
    {
        const int key = tile + lane;
        const bool live = key <= lastKey;
        float s[DG_MAX_GROUP];
        #pragma unroll
        for (int g = 0; g < DG_MAX_GROUP; g++) s[g] = 0.0f;
        if (live)
        {
            // The whole 256-byte key row is requested before the products (16 loads in flight per lane).
            const uint4* row = (const uint4*)(K + (i64)key * kvWidth);
            uint4 kr[16];
            #pragma unroll
            for (int c8 = 0; c8 < 16; c8++) kr[c8] = row[c8];
            #pragma unroll
            for (int c8 = 0; c8 < 16; c8++)
            {
                uint4 kv = kr[c8];
                u32 w[4] = { kv.x, kv.y, kv.z, kv.w };
                for (int e = 0; e < 4; e++)
                {
                    float k0 = __uint_as_float(w[e] << 16), k1 = __uint_as_float(w[e] & 0xffff0000u);
                    #pragma unroll
                    for (int g = 0; g < DG_MAX_GROUP; g++)
                        if (g < group) s[g] += qs[g][8 * c8 + 2 * e] * k0 + qs[g][8 * c8 + 2 * e + 1] * k1;
                }
            }
        }
        // Every loop over the group is unrolled to DG_MAX_GROUP with a guard (not a break at the runtime group size),
        // so m, l and acc are indexed statically and stay in registers (with a break they lived in local memory).
        #pragma unroll
        for (int g = 0; g < DG_MAX_GROUP; g++)
        {
            if (g >= group) continue;
            float v = live ? s[g] : NEG_INF;
            float mNew = fmaxf(m[g], warp_max(v));
            float p = live ? expf(v - mNew) : 0.0f;
            float corr = expf(m[g] - mNew);
            l[g] = l[g] * corr + warp_sum(p);
            acc[g][0] *= corr; acc[g][1] *= corr; acc[g][2] *= corr; acc[g][3] *= corr;
            m[g] = mNew;
            ps[warp][lane][g] = p;
        }
        __syncwarp();
        // The tile's value rows are all requested before they are used (keys past the split read as zero, with
        // probability 0 in ps).
        const int keys = min(32, lastKey - tile + 1);
        uint2 vr[32];
        #pragma unroll
        for (int j = 0; j < 32; j++)
        {
            vr[j].x = 0u; vr[j].y = 0u;
            if (j < keys) vr[j] = *(const uint2*)(V + (i64)(tile + j) * kvWidth + 4 * lane);
        }
        #pragma unroll
        for (int j = 0; j < 32; j++)
        {
            uint2 vv = vr[j];
            float v0 = __uint_as_float(vv.x << 16), v1 = __uint_as_float(vv.x & 0xffff0000u);
            float v2 = __uint_as_float(vv.y << 16), v3 = __uint_as_float(vv.y & 0xffff0000u);
            #pragma unroll
            for (int g = 0; g < DG_MAX_GROUP; g++)
            {
                if (g >= group) continue;
                float p = ps[warp][j][g];
                acc[g][0] += p * v0; acc[g][1] += p * v1; acc[g][2] += p * v2; acc[g][3] += p * v3;
            }
        }
        __syncwarp();
    }
    gqa_finish_split(m, l, acc, lane, warp, wm, wl, wo, group, partial + ((i64)t * heads + kvh * group) * maxSplits * (D + 2),
        maxSplits, split);
}
