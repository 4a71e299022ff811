// Lightning attention, reference-grade version: the recurrence S = lambda*S + k^T v, o = q S token by
// token. One block of 8 warps per (32 state columns, head, sequence); lane j owns column j of its
// slice of the float32 state [d, d], kept in shared memory, and reads/writes it in place in the
// sequence's state. SiLU is applied to q, k and v as they are read.
extern "C" __global__ void lightning_recurrent(const void* qkv, int dtIn, void* out, int dtOut,
    const int* tokenOffset, const int* tokenCount, const unsigned long long* states, const float* slopes, int heads, int d)
{
    // Lane j owns state column col; warp w owns the rows i ≡ w (mod warps), so a decode step's 128 rows are
    // walked by all warps at once; the warps' partial outputs are summed through shared memory.
    extern __shared__ float shared[];
    int warps = blockDim.x >> 5;
    float* S = shared;                 // [d][32]
    float* qs = S + d * 32;            // [d]
    float* ks = qs + d;                // [d]
    float* partial = ks + d;           // [warps][32]
    int j = threadIdx.x & 31, w = threadIdx.x >> 5, col = blockIdx.x * 32 + j, h = blockIdx.y, seq = blockIdx.z;
    bool live = col < d;
    float* state = (float*)states[seq] + (i64)h * d * d;
    float lambda = (float)exp(-(double)slopes[h]);
    for (int i = w; i < d; i += warps) S[i * 32 + j] = live ? state[(i64)i * d + col] : 0.0f;
    int offset = tokenOffset[seq], count = tokenCount[seq];
    i64 inWidth = 3LL * heads * d, outWidth = (i64)heads * d;
    for (int t = 0; t < count; t++)
    {
        const i64 row = (i64)(offset + t) * inWidth + (i64)h * 3 * d;
        __syncthreads();
        for (int i = threadIdx.x; i < d; i += blockDim.x)
        {
            qs[i] = silu(ld(qkv, row + i, dtIn));
            ks[i] = silu(ld(qkv, row + d + i, dtIn));
        }
        float v = live ? silu(ld(qkv, row + 2 * d + col, dtIn)) : 0.0f;
        __syncthreads();
        float acc = 0.0f;
        for (int i = w; i < d; i += warps)
        {
            float s = S[i * 32 + j] * lambda + ks[i] * v;
            S[i * 32 + j] = s;
            acc += qs[i] * s;
        }
        partial[w * 32 + j] = acc;
        __syncthreads();
        if (w == 0 && live)
        {
            float sum = 0.0f;
            for (int u = 0; u < warps; u++) sum += partial[u * 32 + j];
            st(out, (i64)(offset + t) * outWidth + (i64)h * d + col, dtOut, sum);
        }
    }
    __syncthreads();
    if (live)
        for (int i = w; i < d; i += warps) state[(i64)i * d + col] = S[i * 32 + j];
}

// Decode steps (one token per sequence, head_dim 128): o = q (λS + kᵀv), S ← λS + kᵀv. A CTA of 128 threads takes 16
// state columns of one head of one sequence: thread (row group rg = tid / 4, column quad cq = tid % 4) holds rows
// rg, rg + 32, rg + 64, rg + 96 of columns 4cq..4cq+3 (four float4 loads, all issued before any arithmetic; the
// recurrent kernel walks its state slice with a memory latency per row step). Partial outputs are summed over the
// row groups with shuffles (8 per warp), then over the 4 warps in shared memory. grid (128 / 16, heads, sequences).
// Under PDL the state slice (written by the previous step, not by the kernel before this one) is requested before
// waiting for the projection that wrote q, k and v.
#define LD_D 128
#define LD_COLS 16
// PDL_MANUAL
extern "C" __global__ void __launch_bounds__(128) lightning_decode(const void* qkv, int dtIn, void* out, int dtOut,
    const int* tokenOffset, const unsigned long long* states, const float* slopes, int heads)
{
    __shared__ float partial[4][LD_COLS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, rg = tid >> 2, cq = tid & 3;
    const int h = blockIdx.y, seq = blockIdx.z;
    const int col = blockIdx.x * LD_COLS + 4 * cq;
    float* state = (float*)states[seq] + (i64)h * LD_D * LD_D;
    const int token = tokenOffset[seq];
    const i64 in = (i64)token * 3 * heads * LD_D + (i64)h * 3 * LD_D;
    float4 S[4];
    #pragma unroll
    for (int m = 0; m < 4; m++) S[m] = *(const float4*)(state + (i64)(rg + 32 * m) * LD_D + col);
    pdl_wait_then_release();
    float q[4], k[4], v[4];
    #pragma unroll
    for (int m = 0; m < 4; m++)
    {
        q[m] = ld(qkv, in + rg + 32 * m, dtIn);
        k[m] = ld(qkv, in + LD_D + rg + 32 * m, dtIn);
        v[m] = ld(qkv, in + 2 * LD_D + col + m, dtIn);
    }
    const float lambda = (float)exp(-(double)slopes[h]);
    #pragma unroll
    for (int m = 0; m < 4; m++) { q[m] = silu(q[m]); k[m] = silu(k[m]); v[m] = silu(v[m]); }
    float o[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    #pragma unroll
    for (int m = 0; m < 4; m++)
    {
        float s0 = S[m].x * lambda + k[m] * v[0], s1 = S[m].y * lambda + k[m] * v[1];
        float s2 = S[m].z * lambda + k[m] * v[2], s3 = S[m].w * lambda + k[m] * v[3];
        S[m] = mk_float4(s0, s1, s2, s3);
        o[0] += q[m] * s0; o[1] += q[m] * s1; o[2] += q[m] * s2; o[3] += q[m] * s3;
    }
    #pragma unroll
    for (int m = 0; m < 4; m++) *(float4*)(state + (i64)(rg + 32 * m) * LD_D + col) = S[m];
    // Lanes with the same column quad (lane % 4) hold the same columns: sum over lane bits 2..4.
    #pragma unroll
    for (int c = 0; c < 4; c++)
    {
        o[c] += __shfl_xor_sync(0xffffffffu, o[c], 4);
        o[c] += __shfl_xor_sync(0xffffffffu, o[c], 8);
        o[c] += __shfl_xor_sync(0xffffffffu, o[c], 16);
    }
    if (lane < 4)
    {
        #pragma unroll
        for (int c = 0; c < 4; c++) partial[warp][4 * lane + c] = o[c];
    }
    __syncthreads();
    if (tid < LD_COLS)
        st(out, (i64)token * heads * LD_D + (i64)h * LD_D + blockIdx.x * LD_COLS + tid, dtOut,
            partial[0][tid] + partial[1][tid] + partial[2][tid] + partial[3][tid]);
}

// ---------------------------------------------------------------------------------------------------
// Tensor-core chunked prefill for head_dim 128, bf16 q/k/v/o (mma.sync m16n8k16, float32 accumulate).
// A work item is a chunk of one sequence's tokens for one head; a CTA of 16 warps walks its chunk in
// blocks of 64 tokens with the float32 state [128, 128] in registers (warp w owns rows 16(w&7)..+15,
// columns 64(w>>3)..+63):
//   O_block = diag(q_decay) (Q S) + ((Q K^T) ⊙ D) V,   S = exp(-s m) S + (K ⊙ k_decay)^T V
// Tiles sit row-major in shared memory (rows of 272 bytes: conflict-free); ldmatrix (.trans where the
// operand is needed transposed) feeds the tensor cores. The next block's q/k/v are loaded into registers
// while the current block computes.
// Long sequences are split into several chunks so that every SM has work:
//   pass 0 (mode 0): each chunk but the last computes its own state contribution from zero -> slot[item+1]
//   scan:            slot[first] = state, slot[c] = exp(-s len_{c-1}) slot[c-1] + slot[c]   (chunk start states)
//   pass 1 (mode 1): each chunk runs from its start state and writes outputs; the last writes the final state.
// A sequence of one chunk reads and writes its state directly (no slots).
#define LC_D 128
#define LC_BM 64
#define LC_LD 136      // bf16 row stride of the 128-wide tiles
#define LC_LDA 72      // bf16 row stride of the score tile
#define LC_THREADS 512
#define LC_PIECES 6    // 16-byte pieces per thread per block: 64 tokens x 48 / 512

__device__ __forceinline__ uint4 u4(u32 x, u32 y, u32 z, u32 w) { uint4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r; }
// Two floats to packed bf16 (round to nearest even) in one instruction (sm_80+, as the tensor-core code).
__device__ __forceinline__ u32 pack_bf16(float lo, float hi)
{
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
// silu(x) = x sigmoid(x) = x/2 (1 + tanh(x/2)): one special-function op (tanh.approx, relative error
// about 2^-11, below the bf16 rounding that follows) instead of an exponential and a division.
__device__ __forceinline__ float silu_fast(float x)
{
    float th, hx = 0.5f * x;
    asm("tanh.approx.f32 %0, %1;\n" : "=f"(th) : "f"(hx));
    return hx + hx * th;
}

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(u32* r, const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(u32* r, const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void mma_bf16(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A fragment (16x16 at r0, k0) of a row-major tile.
__device__ __forceinline__ void frag_a(u32* a, const bf16* A, int ld, int r0, int k0, int lane)
{
    ldsm_x4(a, A + (r0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}

// A fragment (16x16 at m0, k0) of a tile stored transposed: X[k][m] row-major.
__device__ __forceinline__ void frag_a_t(u32* a, const bf16* X, int ld, int m0, int k0, int lane)
{
    int i = lane >> 3, j = lane & 7;
    ldsm_x4_t(a, X + (k0 + j + (i >> 1) * 8) * ld + m0 + (i & 1) * 8);
}

// B fragments of two n-tiles (n0, n0+8) x k 16 from an n-major tile N[n][k]: b[0..1] tile n0, b[2..3] tile n0+8.
__device__ __forceinline__ void frag_b_n(u32* b, const bf16* N, int ld, int n0, int k0, int lane)
{
    int i = lane >> 3, j = lane & 7;
    ldsm_x4(b, N + (n0 + j + (i >> 1) * 8) * ld + k0 + (i & 1) * 8);
}

// The same from a k-major tile V[k][n] (transposing load).
__device__ __forceinline__ void frag_b_k(u32* b, const bf16* V, int ld, int n0, int k0, int lane)
{
    int i = lane >> 3, j = lane & 7;
    ldsm_x4_t(b, V + (k0 + j + (i & 1) * 8) * ld + n0 + (i >> 1) * 8);
}

// A work item of the chunked prefill kernels (lightning_chunk, lightning_pipe, lightning_wgmma). Pass 1 (outputs) runs
// grid (items, heads): tokens [tokStart, tokStart + count) of sequence seq, chunk `chunk` of its nChunks, for head
// h = blockIdx.y; items[4 item ..] = (seq, tokStart, count, chunk), seqItems[2 seq + 1] = the sequence's chunk count.
// Pass 0 (chunk states) runs grid (plan items, 1) over the state plan (CudaBackend.LightningStatesPlan): items[4 item ..]
// = (seq, tokStart, count, head), one list per (sequence, head); item i writes the state of its own tokens (decayed to
// their end) into slot i + 1, and an item of 0 tokens only marks a position whose start state the scan fills.
#define LC_DD ((i64)LC_D * LC_D)   // one head's state: 128 x 128 floats

struct LcItem
{
    int seq, tokStart, count, nChunks, h;
    bool last;
    float* seqState;   // this head's state in the sequence's [heads][128][128] float32 states
    float slope;
};

// mode 1 (and lightning_pair): a chunk of the output pass, head blockIdx.y; mode 0: an item of the state plan, its head
// from the item (nChunks and last unused).
__device__ __forceinline__ LcItem lc_item(const int* items, const int* seqItems, const unsigned long long* states, const float* slopes,
    int item, int mode)
{
    LcItem it;
    it.seq = items[4 * item];
    it.tokStart = items[4 * item + 1];
    it.count = items[4 * item + 2];
    it.h = mode == 0 ? items[4 * item + 3] : (int)blockIdx.y;
    it.nChunks = mode == 0 ? 0 : seqItems[2 * it.seq + 1];
    it.last = mode != 0 && items[4 * item + 3] == it.nChunks - 1;
    it.seqState = (float*)states[it.seq] + (i64)it.h * LC_D * LC_D;
    it.slope = slopes[it.h];
    return it;
}

extern "C" __global__ void __launch_bounds__(LC_THREADS, 1) lightning_chunk(const bf16* qkv, bf16* out, const int* items, const int* seqItems,
    const unsigned long long* states, float* slots, const float* slopes, int heads, int mode, const int* startSlot)
{
    extern __shared__ unsigned char lc_smem[];   // dynamic shared memory is 16-byte aligned
    bf16* Qs = (bf16*)lc_smem;              // [64][136]  silu(q)
    bf16* Ks = Qs + LC_BM * LC_LD;          // [64][136]  silu(k)
    bf16* Kd = Ks + LC_BM * LC_LD;          // [64][136]  silu(k) ⊙ k_decay
    bf16* Vs = Kd + LC_BM * LC_LD;          // [64][136]  silu(v)
    bf16* Sb = Vs + LC_BM * LC_LD;          // [128][136] S (bf16) at the block's start
    bf16* As = Sb + LC_D * LC_LD;           // [64][72]   (Q Kᵀ) ⊙ D

    const LcItem it = lc_item(items, seqItems, states, slopes, blockIdx.x, mode);
    if (mode == 0 && it.count == 0) return;   // a position marker of the state plan: the scan fills its slot
    const int item = blockIdx.x, h = it.h, tokStart = it.tokStart, count = it.count;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int sr = 16 * (warp & 7), sc = 64 * (warp >> 3);   // this warp's state tile

    float S[8][4];
    {
        const float* src = it.nChunks == 1 || mode == 0 ? it.seqState : slots + (i64)startSlot[item * heads + h] * LC_DD;
        for (int nt = 0; nt < 8; nt++)
        {
            int r = sr + g, c = sc + 8 * nt + 2 * t;
            if (mode == 0)
            {
                S[nt][0] = S[nt][1] = S[nt][2] = S[nt][3] = 0.0f;
            }
            else
            {
                S[nt][0] = src[r * LC_D + c];
                S[nt][1] = src[r * LC_D + c + 1];
                S[nt][2] = src[(r + 8) * LC_D + c];
                S[nt][3] = src[(r + 8) * LC_D + c + 1];
            }
        }
    }

    const i64 inWidth = 3LL * heads * LC_D, outWidth = (i64)heads * LC_D;
    const bf16* headBase = qkv + (i64)h * 3 * LC_D;
    uint4 pre[LC_PIECES];
    const int nBlocks = (count + LC_BM - 1) / LC_BM;

    // 64 tokens x 48 16-byte pieces (16 of q, 16 of k, 16 of v); q is skipped in mode 0.
    #define LC_PREFETCH(b0_, m_) \
        for (int r = 0; r < LC_PIECES; r++) \
        { \
            int v = tid + LC_THREADS * r, tok = v / 48, part = v % 48; \
            if (tok < (m_) && (mode == 1 || part >= 16)) \
                pre[r] = *(const uint4*)(headBase + (i64)(tokStart + (b0_) + tok) * inWidth + part * 8); \
            else \
                pre[r] = u4(0u, 0u, 0u, 0u); \
        }

    LC_PREFETCH(0, min(LC_BM, count));
    for (int blk = 0; blk < nBlocks; blk++)
    {
        const int b0 = blk * LC_BM, m = min(LC_BM, count - b0);
        // Stage the block into shared memory with SiLU and the key decays.
        for (int r = 0; r < LC_PIECES; r++)
        {
            int v = tid + LC_THREADS * r, tok = v / 48, part = v % 48;
            u32 w[4] = { pre[r].x, pre[r].y, pre[r].z, pre[r].w };
            float x[8];
            for (int e = 0; e < 4; e++)
            {
                x[2 * e] = silu_fast(__uint_as_float(w[e] << 16));
                x[2 * e + 1] = silu_fast(__uint_as_float(w[e] & 0xffff0000u));
            }
            uint4 packed = u4(pack_bf16(x[0], x[1]), pack_bf16(x[2], x[3]), pack_bf16(x[4], x[5]), pack_bf16(x[6], x[7]));
            if (part < 16)
            {
                if (mode == 1) *(uint4*)(Qs + tok * LC_LD + part * 8) = packed;
            }
            else if (part < 32)
            {
                int ch = (part - 16) * 8;
                if (mode == 1) *(uint4*)(Ks + tok * LC_LD + ch) = packed;
                float kd = tok < m ? __expf(-it.slope * (float)(m - 1 - tok)) : 0.0f;
                *(uint4*)(Kd + tok * LC_LD + ch) = u4(pack_bf16(x[0] * kd, x[1] * kd), pack_bf16(x[2] * kd, x[3] * kd), pack_bf16(x[4] * kd, x[5] * kd), pack_bf16(x[6] * kd, x[7] * kd));
            }
            else
            {
                *(uint4*)(Vs + tok * LC_LD + (part - 32) * 8) = packed;
            }
        }
        if (mode == 1)
            for (int nt = 0; nt < 8; nt++)
            {
                int r = sr + g, c = sc + 8 * nt + 2 * t;
                *(u32*)(Sb + r * LC_LD + c) = pack_bf16(S[nt][0], S[nt][1]);
                *(u32*)(Sb + (r + 8) * LC_LD + c) = pack_bf16(S[nt][2], S[nt][3]);
            }
        __syncthreads();
        if (blk + 1 < nBlocks) { LC_PREFETCH(b0 + LC_BM, min(LC_BM, count - b0 - LC_BM)); }

        if (mode == 1)
        {
            // Scores: warp -> rows 16*(warp&3), columns 16*(warp>>2) (two n-tiles).
            const int r0 = 16 * (warp & 3), c0 = 16 * (warp >> 2);
            float a[2][4] = { { 0.0f, 0.0f, 0.0f, 0.0f }, { 0.0f, 0.0f, 0.0f, 0.0f } };
            // Tiles above the diagonal are masked to zero: skip their products.
            if (c0 <= r0)
            for (int k0 = 0; k0 < LC_D; k0 += 16)
            {
                u32 af[4], bf[4];
                frag_a(af, Qs, LC_LD, r0, k0, lane);
                frag_b_n(bf, Ks, LC_LD, c0, k0, lane);
                mma_bf16(a[0], af, bf[0], bf[1]);
                mma_bf16(a[1], af, bf[2], bf[3]);
            }
            for (int nt = 0; nt < 2; nt++)
                for (int half = 0; half < 2; half++)
                {
                    int i = r0 + g + 8 * half, j = c0 + 8 * nt + 2 * t;
                    float v0 = j <= i ? a[nt][2 * half] * __expf(-it.slope * (float)(i - j)) : 0.0f;
                    float v1 = j + 1 <= i ? a[nt][2 * half + 1] * __expf(-it.slope * (float)(i - j - 1)) : 0.0f;
                    *(u32*)(As + i * LC_LDA + j) = pack_bf16(v0, v1);
                }
            __syncthreads();
            // Outputs: warp -> rows 16*(warp&3), channels 32*(warp>>2) (four n-tiles).
            const int n0 = 32 * (warp >> 2);
            float o[4][4];
            for (int nt = 0; nt < 4; nt++) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
            for (int k0 = 0; k0 < LC_D; k0 += 16)
            {
                u32 af[4], b01[4], b23[4];
                frag_a(af, Qs, LC_LD, r0, k0, lane);
                frag_b_k(b01, Sb, LC_LD, n0, k0, lane);
                frag_b_k(b23, Sb, LC_LD, n0 + 16, k0, lane);
                mma_bf16(o[0], af, b01[0], b01[1]);
                mma_bf16(o[1], af, b01[2], b01[3]);
                mma_bf16(o[2], af, b23[0], b23[1]);
                mma_bf16(o[3], af, b23[2], b23[3]);
            }
            float qd0 = __expf(-it.slope * (float)(r0 + g + 1)), qd1 = __expf(-it.slope * (float)(r0 + g + 9));
            for (int nt = 0; nt < 4; nt++) { o[nt][0] *= qd0; o[nt][1] *= qd0; o[nt][2] *= qd1; o[nt][3] *= qd1; }
            for (int k0 = 0; k0 <= r0; k0 += 16)   // scores of keys past the warp's rows are zero
            {
                u32 af[4], b01[4], b23[4];
                frag_a(af, As, LC_LDA, r0, k0, lane);
                frag_b_k(b01, Vs, LC_LD, n0, k0, lane);
                frag_b_k(b23, Vs, LC_LD, n0 + 16, k0, lane);
                mma_bf16(o[0], af, b01[0], b01[1]);
                mma_bf16(o[1], af, b01[2], b01[3]);
                mma_bf16(o[2], af, b23[0], b23[1]);
                mma_bf16(o[3], af, b23[2], b23[3]);
            }
            for (int half = 0; half < 2; half++)
            {
                int i = r0 + g + 8 * half;
                if (i >= m) continue;
                bf16* row = out + (i64)(tokStart + b0 + i) * outWidth + (i64)h * LC_D + n0 + 2 * t;
                for (int nt = 0; nt < 4; nt++) *(u32*)(row + 8 * nt) = pack_bf16(o[nt][2 * half], o[nt][2 * half + 1]);
            }
        }
        // State: S = exp(-s m) S + Kdᵀ V for this warp's tile (A = Kdᵀ read transposed, B = V).
        float bd = __expf(-it.slope * (float)m);
        for (int nt = 0; nt < 8; nt++) { S[nt][0] *= bd; S[nt][1] *= bd; S[nt][2] *= bd; S[nt][3] *= bd; }
        for (int k0 = 0; k0 < LC_BM; k0 += 16)
        {
            u32 af[4];
            frag_a_t(af, Kd, LC_LD, sr, k0, lane);
            for (int np = 0; np < 4; np++)
            {
                u32 b[4];
                frag_b_k(b, Vs, LC_LD, sc + 16 * np, k0, lane);
                mma_bf16(S[2 * np], af, b[0], b[1]);
                mma_bf16(S[2 * np + 1], af, b[2], b[3]);
            }
        }
        __syncthreads();
    }
    #undef LC_PREFETCH

    float* dst = mode == 0 ? slots + (i64)(item + 1) * LC_DD : (it.last ? it.seqState : (float*)0);
    if (dst)
        for (int nt = 0; nt < 8; nt++)
        {
            int r = sr + g, c = sc + 8 * nt + 2 * t;
            dst[r * LC_D + c] = S[nt][0];
            dst[r * LC_D + c + 1] = S[nt][1];
            dst[(r + 8) * LC_D + c] = S[nt][2];
            dst[(r + 8) * LC_D + c + 1] = S[nt][3];
        }
}

// Start states of the chunks (see lc_item): grid (sequences, heads, d*d/256), one state element per thread, walking the
// (sequence, head)'s list of the state plan in order. The list starts at the sequence's first token, so its first slot
// takes the carried state. An item with tokens is followed at once by the next item (pieces are contiguous); after an
// item of 0 tokens may come a gap, tokens the plan leaves out (their decay to every later chunk start is below the
// cutoff: CudaBackend.BuildLightningStatesPlan), which the scan treats as absent. So
//   S(start of item c) = exp(-s (start_c - start_(c-1))) S(start of item c-1) + (local state of item c-1, or 0),
// which without gaps is the plain chunk recurrence. Slot c holds the local state of item c-1 (pass 0 wrote it) unless
// that item has no tokens; the scan writes S into the slots of the items at chunk starts (every `chunk` tokens from the
// sequence's first), the only ones pass 1 reads.
// grid (sequences, heads, d*d/1024), 256 threads: four consecutive state elements per thread (16-byte loads and stores).
// Each step's decay, whether it adds a local state and whether it writes its slot are made once per CTA into shared
// memory, 256 items at a time, so that the walk itself is shared loads and the slot traffic.
#define LCS_STAGE 256
extern "C" __global__ void __launch_bounds__(256) lightning_chunk_scan(const int* items, const int* seqItems, const unsigned long long* states,
    float* slots, const float* slopes, int heads, int chunk)
{
    __shared__ float stepDecay[LCS_STAGE];
    __shared__ int stepFlags[LCS_STAGE];   // 1: the item before has tokens (its local state is in this slot); 2: a chunk start
    const int seq = blockIdx.x, h = blockIdx.y;
    const int first = seqItems[2 * (seq * heads + h)], n = seqItems[2 * (seq * heads + h) + 1];
    if (n == 0) return;   // a sequence of one chunk keeps its state in place
    const i64 dd = (i64)LC_D * LC_D;
    const i64 e = 4 * ((i64)blockIdx.z * blockDim.x + threadIdx.x);
    const float s = slopes[h];
    const int seqStart = items[4 * first + 1];
    float4 run = *(const float4*)((const float*)states[seq] + h * dd + e);
    *(float4*)(slots + (i64)first * dd + e) = run;
    for (int base = 1; base < n; base += LCS_STAGE)
    {
        const int m = min(LCS_STAGE, n - base);
        __syncthreads();   // the previous stage's table has been read
        if ((int)threadIdx.x < m)
        {
            const int c = first + base + threadIdx.x;
            stepDecay[threadIdx.x] = expf(-s * (float)(items[4 * c + 1] - items[4 * (c - 1) + 1]));
            stepFlags[threadIdx.x] = (items[4 * (c - 1) + 2] > 0 ? 1 : 0) | ((items[4 * c + 1] - seqStart) % chunk == 0 ? 2 : 0);
        }
        __syncthreads();
        // Eight slots are loaded before any is stored, so that the loads overlap.
        for (int j0 = 0; j0 < m; j0 += 8)
        {
            float4 local[8];
            #pragma unroll
            for (int j = 0; j < 8; j++)
                local[j] = j0 + j < m && (stepFlags[j0 + j] & 1) ? *(const float4*)(slots + (i64)(first + base + j0 + j) * dd + e)
                                                                   : mk_float4(0.0f, 0.0f, 0.0f, 0.0f);
            #pragma unroll
            for (int j = 0; j < 8; j++)
            {
                if (j0 + j >= m) break;
                const float a = stepDecay[j0 + j];
                run = mk_float4(a * run.x + local[j].x, a * run.y + local[j].y, a * run.z + local[j].z, a * run.w + local[j].w);
                if (stepFlags[j0 + j] & 2) *(float4*)(slots + (i64)(first + base + j0 + j) * dd + e) = run;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Pipelined prefill for head_dim 128, bf16 (the default; lightning_chunk above stays for A/B runs).
// Same work items, modes and chunk states as lightning_chunk; what changes is how a CTA spends its
// shared-memory bandwidth, which bounds lightning_chunk: its 16 warps own 16x32 output tiles and 16x64
// state tiles, so every operand is re-read by 4-8 warps (~490 KB of ldmatrix reads per 64-token block
// against 64 KB of DRAM traffic; docs/cuda.md has the budget). Here a CTA has 8 warps (up to 255
// registers each) in two roles:
//   warps 0-3 (output): O = diag(q_decay) (Q S) + P V for two 16-token row tiles (0 and 3, or 1 and 2) x 64
//                       channels each, staged in shared memory and written as whole 128-byte row segments;
//   warps 4-7 (state):  S = exp(-s m) S + Kdᵀ V for a 64-row x 64-column tile of the float32 state each
//                       (128 registers), then the bf16 copy of S that the output warps read next block;
//   in pass 0 (mode 0: no outputs) all 8 warps are state warps, with 64-row x 32-column tiles.
// All 8 warps compute the scores P = (Q Kᵀ) ⊙ D (lower-triangular 16x16 tiles only) and stage blocks.
// Warps w and w + 4 share a scheduler (warp w runs on sub-partition w mod 4 on current GPUs, an observed
// mapping, not a documented one): score tiles and output rows are dealt so that each scheduler gets about the
// same share of each phase's products (if the mapping differs, only the balance is lost, never correctness).
// q/k/v tiles and the bf16 state copy are double-buffered, so a block costs two barriers: phase A (the
// scores of block b) and phase B (outputs and state update of block b, both roles at once, and in every
// warp after its products the SiLU staging of block b+1 into the other buffer and the global loads of
// block b+2 into registers: the special-function work overlaps the tensor-core work). Each role runs its
// own copy of the block loop, so the state registers are live only in the state warps (one loop with
// both roles would keep S and the output accumulators live together: over 255 registers). Both loops
// meet at the same barriers (bar.sync counts arrivals, whichever instruction they come from).
#define LP_THREADS 256
#define LP_PIECES 12              // 16-byte pieces per thread per block: 64 tokens x 48 / 256
#define LP_TILE (LC_BM * LC_LD)   // one 64 x 128 bf16 tile (row stride 136)
#define LP_STATE (LC_D * LC_LD)   // one 128 x 128 bf16 tile
#define LP_DECAY_AT ((8 * LP_TILE + 2 * LP_STATE + LC_BM * LC_LDA) * 2)   // byte offset of the decay table
#define LP_SHARED (LP_DECAY_AT + 128 * 4)

extern __shared__ unsigned char lp_smem[];    // 16-byte aligned (file scope: the helpers below reach the decay table)

// exp(-s k) for k = 0..64, filled once per CTA: every decay of a block (scores exp(-s (i - j)), keys exp(-s (m-1-j)),
// queries exp(-s (i+1)), the block's exp(-s m)) is one of these, so a decay costs a shared load instead of an
// int-to-float conversion, two multiplications and an exp2 (and the table's expf is the accurate one).
__device__ __forceinline__ const float* lp_decays() { return (const float*)(lp_smem + LP_DECAY_AT); }

__device__ __forceinline__ void lp_barrier() { asm volatile("bar.sync 0, 256;\n" ::: "memory"); }
// Barrier 1 closes phase A (the score tile): all 8 warps write score tiles, only the output warps read them. So the
// state warps only arrive (bar.arrive: no wait; their earlier shared-memory writes are ordered before the waiters'
// later reads) and go on to their staging and products, and the output warps wait (bar.sync 1 completes at 256
// arrivals). A state warp cannot arrive for block b+1 before the output warps have left the wait of block b: barrier 0
// closes block b in between.
__device__ __forceinline__ void lp_scores_arrive() { asm volatile("bar.arrive 1, 256;\n" ::: "memory"); }
__device__ __forceinline__ void lp_scores_wait() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }

// Where this thread's 16-byte pieces of a block come from: piece r is channels part*8..+7 of token
// rowBase + 16 (r & 3) of q (r < 4), k (r < 8) or v (r < 12), so each piece's tensor is a compile-time fact.
struct LpStaging
{
    const bf16* base;   // qkv at (tokStart + rowBase, head, part*8)
    i64 inWidth;
    int rowBase, part, count, mode;
};

__device__ __forceinline__ void lp_load(uint4 (&pre)[LP_PIECES], const LpStaging& st, int b0)
{
    const int m = min(LC_BM, st.count - b0);
    // One 64-bit row address per token row; q, k and v of a row are immediate offsets from it.
    const bf16* row[4];
    #pragma unroll
    for (int k = 0; k < 4; k++) row[k] = st.base + (i64)(b0 + 16 * k) * st.inWidth;
    #pragma unroll
    for (int r = 0; r < LP_PIECES; r++)
    {
        const int tok = st.rowBase + 16 * (r & 3);
        if (tok < m && (st.mode == 1 || r >= 4))
            pre[r] = *(const uint4*)(row[r & 3] + (r >> 2) * LC_D);
        else
            pre[r] = u4(0u, 0u, 0u, 0u);
    }
}

// SiLU, the key decays and bf16 into buffer `tiles` ([Q, K, Kd, V][64][136]) for the block at b0.
__device__ __forceinline__ void lp_stage(const uint4 (&pre)[LP_PIECES], const LpStaging& st, int b0, bf16* tiles)
{
    const int m = min(LC_BM, st.count - b0);
    #pragma unroll
    for (int r = 0; r < LP_PIECES; r++)
    {
        const int which = r >> 2, tok = st.rowBase + 16 * (r & 3);
        if (st.mode == 0 && which == 0) continue;   // the state pass needs no queries
        const u32 w[4] = { pre[r].x, pre[r].y, pre[r].z, pre[r].w };
        float x[8];
        #pragma unroll
        for (int e = 0; e < 4; e++)
        {
            x[2 * e] = silu_fast(__uint_as_float(w[e] << 16));
            x[2 * e + 1] = silu_fast(__uint_as_float(w[e] & 0xffff0000u));
        }
        const int at = tok * LC_LD + st.part * 8;
        const uint4 packed = u4(pack_bf16(x[0], x[1]), pack_bf16(x[2], x[3]), pack_bf16(x[4], x[5]), pack_bf16(x[6], x[7]));
        if (which == 0) *(uint4*)(tiles + at) = packed;
        else if (which == 1)
        {
            if (st.mode == 1) *(uint4*)(tiles + LP_TILE + at) = packed;
            const float kd = tok < m ? lp_decays()[m - 1 - tok] : 0.0f;
            *(uint4*)(tiles + 2 * LP_TILE + at) = u4(pack_bf16(x[0] * kd, x[1] * kd), pack_bf16(x[2] * kd, x[3] * kd),
                pack_bf16(x[4] * kd, x[5] * kd), pack_bf16(x[6] * kd, x[7] * kd));
        }
        else *(uint4*)(tiles + 3 * LP_TILE + at) = packed;
    }
}

// Phase A of block blk (both roles, mode 1): scores into As, the 10 lower-triangular 16x16 tiles only (tiles above the
// diagonal are never read). Warp w takes row tile rt, column tiles cf..cf+nc-1 (a pair shares its Q fragments):
//   w  0: (3, 0-1)  1: (3, 2-3)  2: (2, 0)  3: (2, 1)  4: (0, 0)  5: (1, 0)  6: (1, 1)  7: (2, 2)
// so that the warps w and w + 4, which share a scheduler, have 3, 3, 2 and 2 tiles (the tile per warp in row-major
// order gave 1, 2, 3 and 4: the scheduler of warps 3 and 7 did 64 of the 160 products while another did 16).
__device__ __forceinline__ void lp_scores(const LpStaging& st, const bf16* tiles, bf16* As, int blk, int warp, int lane)
{
    if (st.mode != 1) return;
    const int buf = blk & 1, g = lane >> 2, t = lane & 3;
    const int r0 = 16 * ((0x21102233 >> (4 * warp)) & 15), cf = (0x21001020 >> (4 * warp)) & 15, nc = warp < 2 ? 2 : 1;
    const bf16* Qs = tiles + buf * 4 * LP_TILE;
    const bf16* Ks = Qs + LP_TILE;
    float a[2][2][4];
    #pragma unroll
    for (int ct = 0; ct < 2; ct++)
        #pragma unroll
        for (int nt = 0; nt < 2; nt++) a[ct][nt][0] = a[ct][nt][1] = a[ct][nt][2] = a[ct][nt][3] = 0.0f;
    #pragma unroll
    for (int k0 = 0; k0 < LC_D; k0 += 16)
    {
        u32 af[4];
        frag_a(af, Qs, LC_LD, r0, k0, lane);
        #pragma unroll
        for (int ct = 0; ct < 2; ct++)
            if (ct < nc)
            {
                u32 bf[4];
                frag_b_n(bf, Ks, LC_LD, 16 * (cf + ct), k0, lane);
                mma_bf16(a[ct][0], af, bf[0], bf[1]);
                mma_bf16(a[ct][1], af, bf[2], bf[3]);
            }
    }
    #pragma unroll
    for (int ct = 0; ct < 2; ct++)
    {
        if (ct >= nc) continue;
        #pragma unroll
        for (int nt = 0; nt < 2; nt++)
            #pragma unroll
            for (int half = 0; half < 2; half++)
            {
                const int i = r0 + g + 8 * half, j = 16 * (cf + ct) + 8 * nt + 2 * t;
                const float v0 = j <= i ? a[ct][nt][2 * half] * lp_decays()[i - j] : 0.0f;
                const float v1 = j + 1 <= i ? a[ct][nt][2 * half + 1] * lp_decays()[i - j - 1] : 0.0f;
                *(u32*)(As + i * LC_LDA + j) = pack_bf16(v0, v1);
            }
    }
}

// In phase B of block blk, after a warp has issued its tensor-core work: SiLU staging of block blk+1 into the
// other buffer (its special-function work overlaps the products of the other warps), then the global loads
// of block blk+2 into the registers the staging has just emptied.
__device__ __forceinline__ void lp_next(uint4 (&pre)[LP_PIECES], const LpStaging& st, bf16* tiles, int blk, int nBlocks)
{
    if (blk + 1 < nBlocks) lp_stage(pre, st, (blk + 1) * LC_BM, tiles + ((blk & 1) ^ 1) * 4 * LP_TILE);
    if (blk + 2 < nBlocks) lp_load(pre, st, (blk + 2) * LC_BM);
}

// The state role: rows kr0..kr0+63, columns sc0..sc0+8 NT-1 of the float32 state S (from src in mode 1, zero in
// mode 0; written to dst unless it is null): S = exp(-s m) S + Kdᵀ V per block, in mode 1 also the bf16 copy the
// output warps read next block. Mode 1: warps 4-7, 64 columns each (NT = 8); mode 0 has no outputs, so all 8 warps
// take this role with 32 columns each (NT = 4): half the products per warp, two warps per scheduler issuing them.
// stageFirst: the warp stages block blk+1 (lp_next) before its products of block blk instead of after them. Staging
// is special-function work and the products tensor-core work; a scheduler whose two warps do them in opposite orders
// keeps both pipes busy at once (the staging of blk+1 writes the other buffer, last read before the barrier that
// closed block blk-1, so either order is correct).
template <int NT>
__device__ __forceinline__ void lp_state_role(uint4 (&pre)[LP_PIECES], const LpStaging& st, bf16* tiles, bf16* Sb, bf16* As,
    const float* src, float* dst, int nBlocks, int kr0, int sc0, bool stageFirst, int warp, int lane)
{
    const int mode = st.mode, g = lane >> 2, t = lane & 3;
    float S[4][NT][4];
    {
        #pragma unroll
        for (int mt = 0; mt < 4; mt++)
            #pragma unroll
            for (int nt = 0; nt < NT; nt++)
            {
                const int r = kr0 + 16 * mt + g, c = sc0 + 8 * nt + 2 * t;
                if (mode == 0)
                {
                    S[mt][nt][0] = S[mt][nt][1] = S[mt][nt][2] = S[mt][nt][3] = 0.0f;
                }
                else
                {
                    // Pairs of columns as float2: 4 lanes fill a whole 32-byte sector.
                    const float2 top = *(const float2*)(src + r * LC_D + c), bottom = *(const float2*)(src + (r + 8) * LC_D + c);
                    S[mt][nt][0] = top.x;
                    S[mt][nt][1] = top.y;
                    S[mt][nt][2] = bottom.x;
                    S[mt][nt][3] = bottom.y;
                    *(u32*)(Sb + r * LC_LD + c) = pack_bf16(S[mt][nt][0], S[mt][nt][1]);
                    *(u32*)(Sb + (r + 8) * LC_LD + c) = pack_bf16(S[mt][nt][2], S[mt][nt][3]);
                }
            }
    }
    lp_load(pre, st, 0);
    lp_stage(pre, st, 0, tiles);
    if (nBlocks > 1) lp_load(pre, st, LC_BM);
    lp_barrier();
    for (int blk = 0; blk < nBlocks; blk++)
    {
        const int m = min(LC_BM, st.count - blk * LC_BM), buf = blk & 1;
        if (mode == 1)
        {
            // Phase A, without waiting for the other warps' score tiles (this role does not read them). Pass 0 has no
            // scores and no barrier here: the one closing the previous block already orders its staging of this block
            // before these reads, and these reads before the next staging into this buffer.
            lp_scores(st, tiles, As, blk, warp, lane);
            lp_scores_arrive();
        }
        const bf16* Kd = tiles + buf * 4 * LP_TILE + 2 * LP_TILE;
        const bf16* Vs = tiles + buf * 4 * LP_TILE + 3 * LP_TILE;
        if (stageFirst) lp_next(pre, st, tiles, blk, nBlocks);
        const float bd = lp_decays()[m];
        #pragma unroll
        for (int mt = 0; mt < 4; mt++)
            #pragma unroll
            for (int nt = 0; nt < NT; nt++) { S[mt][nt][0] *= bd; S[mt][nt][1] *= bd; S[mt][nt][2] *= bd; S[mt][nt][3] *= bd; }
        #pragma unroll
        for (int js = 0; js < 4; js++)
        {
            u32 af[4][4];
            #pragma unroll
            for (int mt = 0; mt < 4; mt++) frag_a_t(af[mt], Kd, LC_LD, kr0 + 16 * mt, 16 * js, lane);
            #pragma unroll
            for (int np = 0; np < NT / 2; np++)
            {
                u32 b[4];
                frag_b_k(b, Vs, LC_LD, sc0 + 16 * np, 16 * js, lane);
                #pragma unroll
                for (int mt = 0; mt < 4; mt++)
                {
                    mma_bf16(S[mt][2 * np], af[mt], b[0], b[1]);
                    mma_bf16(S[mt][2 * np + 1], af[mt], b[2], b[3]);
                }
            }
        }
        if (!stageFirst) lp_next(pre, st, tiles, blk, nBlocks);
        if (mode == 1 && blk + 1 < nBlocks)
        {
            // The other buffer: the output warps read this block's copy now, the new one next block.
            bf16* Sn = Sb + (buf ^ 1) * LP_STATE;
            #pragma unroll
            for (int mt = 0; mt < 4; mt++)
                #pragma unroll
                for (int nt = 0; nt < NT; nt++)
                {
                    const int r = kr0 + 16 * mt + g, c = sc0 + 8 * nt + 2 * t;
                    *(u32*)(Sn + r * LC_LD + c) = pack_bf16(S[mt][nt][0], S[mt][nt][1]);
                    *(u32*)(Sn + (r + 8) * LC_LD + c) = pack_bf16(S[mt][nt][2], S[mt][nt][3]);
                }
        }
        lp_barrier();
    }

    if (dst)
    {
        #pragma unroll
        for (int mt = 0; mt < 4; mt++)
            #pragma unroll
            for (int nt = 0; nt < NT; nt++)
            {
                const int r = kr0 + 16 * mt + g, c = sc0 + 8 * nt + 2 * t;
                *(float2*)(dst + r * LC_D + c) = mk_float2(S[mt][nt][0], S[mt][nt][1]);
                *(float2*)(dst + (r + 8) * LC_D + c) = mk_float2(S[mt][nt][2], S[mt][nt][3]);
            }
    }
}

// startSlot[item * heads + h]: the slot of the state plan that pass 1 of this chunk and head starts from (after the
// scan, the state at the chunk's first token). Pass 0 and the scan run over that plan (see lc_item), which is finer than
// the chunks where pass 0 would leave SMs idle, and may skip tokens too old to matter (CudaBackend.LightningStatesPlan).
extern "C" __global__ void __launch_bounds__(LP_THREADS, 1) lightning_pipe(const bf16* qkv, bf16* out, const int* items, const int* seqItems,
    const unsigned long long* states, float* slots, const float* slopes, int heads, int mode, const int* startSlot)
{
    bf16* tiles = (bf16*)lp_smem;                 // [2 buffers][Q, K, Kd, V][64][136]
    bf16* Sb = tiles + 8 * LP_TILE;               // [2 buffers][128][136] bf16 S at a block's start
    bf16* As = Sb + 2 * LP_STATE;                 // [64][72] scores (Q Kᵀ) ⊙ D

    const LcItem it = lc_item(items, seqItems, states, slopes, blockIdx.x, mode);
    if (mode == 0 && it.count == 0) return;   // a position marker of the state plan: the scan fills its slot
    const int item = blockIdx.x, h = it.h, tokStart = it.tokStart, count = it.count;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const i64 inWidth = 3LL * heads * LC_D, outWidth = (i64)heads * LC_D;
    const int nBlocks = (count + LC_BM - 1) / LC_BM;

    LpStaging st;
    st.rowBase = tid >> 4;
    st.part = tid & 15;
    st.inWidth = inWidth;
    st.base = qkv + (i64)h * 3 * LC_D + (i64)(tokStart + st.rowBase) * inWidth + st.part * 8;
    st.count = count;
    st.mode = mode;
    uint4 pre[LP_PIECES];
    if (tid <= LC_BM) ((float*)lp_decays())[tid] = expf(-it.slope * (float)tid);
    lp_barrier();

    if (warp < 4 && mode == 1)
    {
        // ---- output warps: the 16-token row tiles 0 and 3 (even warps) or 1 and 2 (odd), channels oc0..oc0+63 ----
        // Row tile r needs r + 1 key tiles of P V, so both pairs cost 5 (rows 0-31 and 32-63 cost 3 and 7: the
        // warps with the later rows, and their schedulers, were the last to reach each block's second barrier).
        const int orow[2] = { 16 * (warp & 1), 48 - 16 * (warp & 1) }, oc0 = 64 * (warp >> 1);
        lp_load(pre, st, 0);
        lp_stage(pre, st, 0, tiles);
        if (nBlocks > 1) lp_load(pre, st, LC_BM);
        float qd[2][2];   // query decays of this warp's rows (the same in every block)
        #pragma unroll
        for (int mt = 0; mt < 2; mt++)
            #pragma unroll
            for (int half = 0; half < 2; half++) qd[mt][half] = lp_decays()[orow[mt] + g + 8 * half + 1];
        lp_barrier();
        for (int blk = 0; blk < nBlocks; blk++)
        {
            const int b0 = blk * LC_BM, m = min(LC_BM, count - b0), buf = blk & 1;
            lp_scores(st, tiles, As, blk, warp, lane);
            lp_scores_wait();   // every warp's score tiles (and its reads of this buffer's K tile, reused for the outputs below)
            const bf16* Qs = tiles + buf * 4 * LP_TILE;
            const bf16* Vs = Qs + 3 * LP_TILE;
            const bf16* Sc = Sb + buf * LP_STATE;   // S at this block's start
            float o[2][8][4];
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
                #pragma unroll
                for (int nt = 0; nt < 8; nt++) o[mt][nt][0] = o[mt][nt][1] = o[mt][nt][2] = o[mt][nt][3] = 0.0f;
            #pragma unroll
            for (int k0 = 0; k0 < LC_D; k0 += 16)
            {
                u32 af[2][4];
                frag_a(af[0], Qs, LC_LD, orow[0], k0, lane);
                frag_a(af[1], Qs, LC_LD, orow[1], k0, lane);
                #pragma unroll
                for (int np = 0; np < 4; np++)
                {
                    u32 b[4];
                    frag_b_k(b, Sc, LC_LD, oc0 + 16 * np, k0, lane);
                    #pragma unroll
                    for (int mt = 0; mt < 2; mt++)
                    {
                        mma_bf16(o[mt][2 * np], af[mt], b[0], b[1]);
                        mma_bf16(o[mt][2 * np + 1], af[mt], b[2], b[3]);
                    }
                }
            }
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
                #pragma unroll
                for (int nt = 0; nt < 8; nt++)
                {
                    o[mt][nt][0] *= qd[mt][0]; o[mt][nt][1] *= qd[mt][0];
                    o[mt][nt][2] *= qd[mt][1]; o[mt][nt][3] *= qd[mt][1];
                }
            // P V over the keys up to each row tile's last row (later scores are zero).
            #pragma unroll
            for (int js = 0; js < 4; js++)
            {
                if (16 * js > orow[1]) continue;   // orow[1] > orow[0]
                u32 b[4][4];
                #pragma unroll
                for (int np = 0; np < 4; np++) frag_b_k(b[np], Vs, LC_LD, oc0 + 16 * np, 16 * js, lane);
                #pragma unroll
                for (int mt = 0; mt < 2; mt++)
                {
                    if (16 * js > orow[mt]) continue;
                    u32 af[4];
                    frag_a(af, As, LC_LDA, orow[mt], 16 * js, lane);
                    #pragma unroll
                    for (int np = 0; np < 4; np++)
                    {
                        mma_bf16(o[mt][2 * np], af, b[np][0], b[np][1]);
                        mma_bf16(o[mt][2 * np + 1], af, b[np][2], b[np][3]);
                    }
                }
            }
            lp_next(pre, st, tiles, blk, nBlocks);
            // The accumulators' own layout would write 16 bytes per row and instruction (half sectors:
            // Nsight Compute counted 16 of 32 bytes used per sector and 20 % excess sectors). So the warp
            // stages its 2 x 16 x 64 tile in this buffer's K tile, which nobody reads after phase A (the next
            // staging into this buffer is block blk+2's, two barriers on), and writes 16 bytes per lane:
            // 8 lanes cover one 128-byte row segment, 4 rows per instruction.
            bf16* Ot = tiles + buf * 4 * LP_TILE + LP_TILE;
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
                #pragma unroll
                for (int half = 0; half < 2; half++)
                {
                    bf16* row = Ot + (orow[mt] + g + 8 * half) * LC_LD + oc0 + 2 * t;
                    #pragma unroll
                    for (int nt = 0; nt < 8; nt++) *(u32*)(row + 8 * nt) = pack_bf16(o[mt][nt][2 * half], o[mt][nt][2 * half + 1]);
                }
            __syncwarp();
            const int c = oc0 + 8 * (lane & 7);
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
            {
                const int i0 = orow[mt] + (lane >> 3);
                bf16* dst = out + (i64)(tokStart + b0 + i0) * outWidth + (i64)h * LC_D + c;
                #pragma unroll
                for (int p = 0; p < 4; p++)
                    if (i0 + 4 * p < m) *(uint4*)(dst + 4 * p * outWidth) = *(const uint4*)(Ot + (i0 + 4 * p) * LC_LD + c);
            }
            lp_barrier();
        }
        return;
    }

    // ---- state: warps 4-7 in pass 1, all 8 warps in pass 0 (no outputs) ----
    if (mode == 0)
    {
        const int kr0 = 64 * (warp & 1), sc0 = 32 * (warp >> 1);
        // Warps w and w + 4 share a scheduler: one stages first, the other multiplies first.
        lp_state_role<4>(pre, st, tiles, Sb, As, (const float*)0, slots + (i64)(item + 1) * LC_DD, nBlocks, kr0, sc0,
            warp < 4, warp, lane);
    }
    else
    {
        const float* chunkStart = it.nChunks == 1 ? it.seqState : slots + (i64)startSlot[item * heads + h] * LC_DD;
        const int kr0 = 64 * (warp & 1), sc0 = 64 * ((warp >> 1) & 1);
        lp_state_role<8>(pre, st, tiles, Sb, As, chunkStart, it.last ? it.seqState : (float*)0, nBlocks, kr0, sc0,
            true, warp, lane);   // the output warps multiply first
    }
}

// ---------------------------------------------------------------------------------------------------
// Hopper prefill for head_dim 128, bf16 (sm_90a: wgmma, mbarrier, cp.async, stmatrix). Same work items, modes, chunk
// slots and arguments as lightning_pipe. lightning_pipe is latency bound (Nsight Compute: two warps per scheduler,
// ~0.55 eligible): every product is a chain of ldmatrix + mma.sync that its own warp issues and waits for. Here the
// products are wgmma (asynchronous, a warpgroup at a time, B from shared memory), and the CTA is three warpgroups with
// one job each, handing tiles over through mbarriers. The SiLU (a tanh per element: the special-function unit is the
// busiest part of a block) is split over all three, each on the tensor it consumes first:
//   WG2 (loads, keys): cp.async of raw q, k, v (k and v two blocks ahead); SiLU of k into the stage's K [64][128] and
//        Kdᵀ = (K ⊙ key decays)ᵀ [128][64];
//   WG1 (values, state): SiLU of v into the stage's Vᵀ [128][64]; Sᵀ = exp(-s m) Sᵀ + Vᵀ Kd on float32 accumulators
//        (Sᵀ [dv][dk] in two m64 halves: 128 registers), then its bf16 copy for the next block's Q S;
//   WG0 (queries, outputs): SiLU of q straight into wgmma register fragments; scores Q Kᵀ and Q S, P = (Q Kᵀ) ⊙ D in
//        registers, O = diag(q_decay) Q S + P V, written through the stage's K tile as 16-byte row pieces.
// Barriers (arrivals -> waiters): FULL[stage] K, Kdᵀ staged (WG2 -> WG0, WG1); VFULL[stage] Vᵀ staged (WG1 -> WG0, WG1);
// EMPTY[stage] the stage's block is done (WG0, WG1 -> WG2, WG1); SFULL Sᵀ copy written (WG1 -> WG0); SEMPTY Q S has
// read it (WG0 -> WG1); RAWQ / RAWK[slot] / RAWV[slot] landed (cp.async -> WG0 / WG2 / WG1); QREAD, VREAD[slot] raw
// buffer read (WG0 / WG1 -> WG2). Every operand tile is K-major with the 128-byte swizzle (lw_off), the layout of
// wgmma's shared-memory descriptors. Pass 0 (mode 0) has no outputs: WG2 stages only Kdᵀ, WG0 takes the values' SiLU (so
// WG1 only multiplies), and the raw q slots hold v (four value slots: v loaded three blocks ahead). The body is a
// template on the pass (lightning_wgmma_pass), so each of these choices is made at compile time.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(KERNEL_EMULATOR) || defined(WGMMA_PROBE)
typedef unsigned long long u64;
#define LW_THREADS 384
#define LW_STAGE 49152                  // one stage: K, Kdᵀ, Vᵀ (16 KB each)
#define LW_K 0
#define LW_KDT 16384
#define LW_VT 32768
#define LW_ST (2 * LW_STAGE)            // Sᵀ [128][128] bf16 (32 KB)
#define LW_RAWQ (LW_ST + 32768)         // raw q [64][128] bf16, two slots
#define LW_RAWK (LW_RAWQ + 32768)       // raw k, two slots
#define LW_RAWV (LW_RAWK + 32768)       // raw v, two slots
#define LW_TABLE (LW_RAWV + 32768)      // 64 zeros, then exp(-s k) for k = 0..64 (at LW_TABLE + 256)
#define LW_BARS (LW_TABLE + 768)        // 18 mbarriers
#define LW_SHARED (LW_BARS + 256 + 1024)   // + room to align the base to 1024 bytes (the swizzle repeats every 1024)
#define LW_FULL 0                       // barrier indices ([2]: one per stage or raw slot)
#define LW_VFULL 2
#define LW_EMPTY 4
#define LW_SFULL 6
#define LW_SEMPTY 7
#define LW_RAWK_BAR 8
#define LW_RAWV_BAR 10
#define LW_VREAD 12
#define LW_RAWQ_BAR 14
#define LW_QREAD 16
#define LW_BARRIERS 18

// Byte offset of element (r, c) of a bf16 tile of `rows` rows and 64 or 128 columns, stored as 64-column blocks of
// rows x 128 bytes; in each row the 16-byte pieces are XOR-swizzled by the row's position in its group of 8.
// wgmma reads this layout through a descriptor with the 128-byte swizzle (stride 1024 bytes per 8 rows); ldmatrix
// and stmatrix of 8 rows at the same column then touch 8 different bank groups.
__device__ __forceinline__ u32 lw_off(int rows, int r, int c)
{
    return (u32)((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) + ((c & 7) << 1));
}

// lw_off(rows, r, 16 C + 8 h): the 16-byte piece (row r, columns 16C + 8h .. +7). With C a constant of an unrolled loop,
// 2 (C & 3) has no bit 0, so the swizzled piece is 2 (C & 3) ^ (h ^ (r & 7)) and the row terms are loop invariants.
__device__ __forceinline__ u32 lw_piece(int rows, int r, int C, int h)
{
    return (u32)((C >> 2) * rows * 128 + r * 128 + (((2 * (C & 3)) ^ (h ^ (r & 7))) << 4));
}

// Shared-memory matrix descriptor: start address, stride 1024 bytes between groups of 8 rows, 128-byte swizzle.
__device__ __forceinline__ u64 lw_desc(u32 addr)
{
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

__device__ __forceinline__ void mbar_init(u64* bar, u32 count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(smem_addr(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_arrive(u64* bar)
{
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" :: "r"(smem_addr(bar)) : "memory");
}

// Returns once the phase of parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(u64* bar, u32 parity)
{
    const u32 addr = smem_addr(bar);
    u32 done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done) : "r"(addr), "r"(parity) : "memory");
}

// 16 bytes global -> shared without registers; !valid writes 16 zero bytes (and reads nothing).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0) : "memory");
}

// One arrival on bar once this thread's earlier cp.async have landed (the barrier counts it in its expected arrivals).
__device__ __forceinline__ void cp_async_mbar_arrive(u64* bar)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(smem_addr(bar)) : "memory");
}

// Orders this thread's ordinary shared-memory writes before later wgmma (async proxy) reads of them.
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void stsm_x4(void* p, u32 r0, u32 r1, u32 r2, u32 r3)
{
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" :: "r"(smem_addr(p)), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
}

__device__ __forceinline__ void stsm_x4_t(void* p, u32 r0, u32 r1, u32 r2, u32 r3)
{
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" :: "r"(smem_addr(p)), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void named_sync(u32 id, u32 count) { asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(count) : "memory"); }
// Keeps the compiler from moving accesses of an accumulator across the asynchronous products that write it.
__device__ __forceinline__ void reg_fence(float& x) { asm volatile("" : "+f"(x) :: "memory"); }

// D[64][N] (+)= A[64][16] B[N][16]ᵀ for one k16 step; thread (warp w, lane 4g + q) holds D rows 16w + g (+8), columns
// 8i + 2q (+1) in d[4i..4i+3]. _ss: A from shared memory, _rs: A from registers (the mma.sync A fragment of rows 16w..).
__device__ __forceinline__ void wgmma_n64_ss(float* d, u64 descA, u64 descB, u32 accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(descA), "l"(descB), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_n128_ss(float* d, u64 descA, u64 descB, u32 accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(descA), "l"(descB), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_n64_rs(float* d, const u32* a, u64 descB, u32 accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_n128_rs(float* d, const u32* a, u64 descB, u32 accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(accumulate));
}

template <int N>
__device__ __forceinline__ void reg_fence_all(float (&x)[N])
{
    #pragma unroll
    for (int i = 0; i < N; i++) reg_fence(x[i]);
}

extern __shared__ unsigned char lw_smem[];

// Raw q, k or v of the block at b0 (m valid tokens) into a raw buffer: this thread's 8 pieces of 16 bytes (rows
// prow + 8p, channels pcol..pcol+7: 16 threads cover a 256-byte row), zeros past the block's end; then one arrival on
// the buffer's barrier once they have landed. src: the tensor at token 0 of the item.
__device__ __forceinline__ void lw_load(unsigned char* raw, const bf16* src, i64 inWidth, int b0, int m, int prow, int pcol, u64* bar)
{
    // Rows prow + 8p share prow's position in its group of 8, so the swizzled offsets are 1024 bytes apart.
    unsigned char* dst = raw + lw_off(64, prow, pcol);
    const bf16* from = src + (i64)(b0 + prow) * inWidth + pcol;
    const i64 step = 8 * inWidth;
    #pragma unroll
    for (int p = 0; p < 8; p++)
    {
        const bool valid = prow + 8 * p < m;
        cp_async16(dst + 1024 * p, valid ? from + p * step : src, valid);
    }
    cp_async_mbar_arrive(bar);
}

// silu of both bf16 halves of x (tanh.approx: see silu_fast).
__device__ __forceinline__ void lw_silu2(u32 x, float& lo, float& hi)
{
    lo = silu_fast(__uint_as_float(x << 16)); hi = silu_fast(__uint_as_float(x & 0xffff0000u));
}

__device__ __forceinline__ u32 lw_silu_bf16x2(u32 x)
{
    float lo, hi;
    lw_silu2(x, lo, hi);
    return pack_bf16(lo, hi);
}

// SiLU of a raw k (keys: K as read, if withK, and Kdᵀ with the key decays exp(-s (m-1-j)), zero past m) or raw v
// (values: Vᵀ) tile of 64 tokens into a stage, by one warpgroup: warp w takes tokens 16w..16w+15 in 16 x 16 pieces,
// matrix i of an x4 piece being tokens +8(i&1), channels +8(i>>1). Four pieces at a time: all loads, then all math,
// then all stores, so that the tanh chains of 32 values overlap (asm statements keep their order).
__device__ __forceinline__ void lw_stage(bool keys, bool withK, const unsigned char* raw, unsigned char* stage, const float* table, int m,
    int warp, int lane)
{
    const int R = 16 * warp, mi = lane >> 3, rr = lane & 7;
    const int srow = R + 8 * (mi & 1) + rr;   // this lane's token row for ldmatrix / stmatrix
    const int dcol = R + 8 * (mi & 1);        // and its token column for the transposed stmatrix
    float kd0 = 0.0f, kd1 = 0.0f;             // key decays of this thread's fragment rows R + g and R + g + 8
    if (keys)
    {
        const int j0 = R + (lane >> 2), j1 = j0 + 8;
        kd0 = j0 < m ? table[m - 1 - j0] : 0.0f;
        kd1 = j1 < m ? table[m - 1 - j1] : 0.0f;
    }
    // Transposed pieces: row 16C + 8h + rr (so row & 7 = rr), token column dcol: 2048 bytes per C apart.
    unsigned char* trans = stage + (keys ? LW_KDT : LW_VT) + lw_off(128, 8 * (mi >> 1) + rr, dcol);
    #pragma unroll
    for (int half = 0; half < 2; half++)
    {
        u32 x[4][4];
        #pragma unroll
        for (int c = 0; c < 4; c++) ldsm_x4(x[c], raw + lw_piece(64, srow, 4 * half + c, mi >> 1));
        u32 y[4][4], z[4][4];
        #pragma unroll
        for (int c = 0; c < 4; c++)
            #pragma unroll
            for (int i = 0; i < 4; i++)
            {
                float lo, hi;
                lw_silu2(x[c][i], lo, hi);
                y[c][i] = pack_bf16(lo, hi);
                if (keys)
                {
                    const float kd = (i & 1) ? kd1 : kd0;
                    z[c][i] = pack_bf16(lo * kd, hi * kd);
                }
            }
        #pragma unroll
        for (int c = 0; c < 4; c++)
        {
            const int C = 4 * half + c;
            if (keys)
            {
                if (withK) stsm_x4(stage + LW_K + lw_piece(64, srow, C, mi >> 1), y[c][0], y[c][1], y[c][2], y[c][3]);
                stsm_x4_t(trans + 2048 * C, z[c][0], z[c][1], z[c][2], z[c][3]);
            }
            else stsm_x4_t(trans + 2048 * C, y[c][0], y[c][1], y[c][2], y[c][3]);
        }
    }
}

// Raw v of block b: two slots, and in pass 0, which has no queries, also the two raw q slots, so that v is loaded three
// blocks ahead instead of one (pass 0 moves only k and v: its loads are what bounds it).
struct LwValueSlot
{
    unsigned char* raw;
    int landed, read;   // barrier indices: cp.async landed, raw slot read
    u32 parity;         // of block b's phase on both
};

template <int MODE>
__device__ __forceinline__ LwValueSlot lw_value_slot(unsigned char* base, int b)
{
    constexpr int n = MODE == 1 ? 2 : 4;   // a compile-time count: the slot and phase are a mask and a shift
    const int slot = b % n;
    LwValueSlot v;
    v.raw = slot < 2 ? base + LW_RAWV + slot * 16384 : base + LW_RAWQ + (slot - 2) * 16384;
    v.landed = slot < 2 ? LW_RAWV_BAR + slot : LW_RAWQ_BAR + slot - 2;
    v.read = slot < 2 ? LW_VREAD + slot : LW_QREAD + slot - 2;
    v.parity = (u32)(b / n) & 1;
    return v;
}

// The values' SiLU of block b into its stage's Vᵀ, by one warpgroup, with the barrier protocol around it: raw v landed,
// the stage's block b-2 gone; then the raw slot is free again (VREAD) and the tile complete (VFULL, 128 arrivals).
template <int MODE>
__device__ __forceinline__ void lw_stage_values(unsigned char* base, u64* bars, const float* table, int b, int m, int warp, int lane)
{
    const LwValueSlot v = lw_value_slot<MODE>(base, b);
    const int st = b & 1;
    mbar_wait(bars + v.landed, v.parity);
    if (b >= 2) mbar_wait(bars + LW_EMPTY + st, ((b >> 1) + 1) & 1);   // block b-2 has left this stage
    lw_stage(false, false, v.raw, base + st * LW_STAGE, table, m, warp, lane);
    mbar_arrive(bars + v.read);
    fence_async_smem();
    mbar_arrive(bars + LW_VFULL + st);
}

// Stores a warpgroup's m64 x (16 nb) float32 accumulator tile (wgmma's layout: thread (warp w, lane 4g + q) holds rows
// 16w + g (+8), columns 8i + 2q (+1) in d[4i..4i+3]) as bf16 into a swizzled tile of `rows` rows at row0: one stmatrix
// x4 per 16 x 16 piece (matrices: rows +0/+8, columns +0/+8; lane l addresses row (l & 7) + 8((l >> 3) & 1) of the
// warp's 16 and column 8(l >> 4) of the piece).
template <int NB>
__device__ __forceinline__ void lw_store_acc(unsigned char* tile, int rows, int row0, const float* d, int warp, int lane)
{
    const int r = row0 + 16 * warp + (lane & 7) + 8 * ((lane >> 3) & 1);
    #pragma unroll
    for (int i = 0; i < NB; i++)
        stsm_x4(tile + lw_piece(rows, r, i, lane >> 4), pack_bf16(d[8 * i], d[8 * i + 1]), pack_bf16(d[8 * i + 2], d[8 * i + 3]),
            pack_bf16(d[8 * i + 4], d[8 * i + 5]), pack_bf16(d[8 * i + 6], d[8 * i + 7]));
}

// The bf16 copy of Sᵀ [dv][dk] (two m64 halves of 128 columns) for the outputs' Q S.
__device__ __forceinline__ void lw_store_state(unsigned char* St, const float (&S)[2][64], int warp, int lane)
{
    lw_store_acc<8>(St, 128, 0, S[0], warp, lane);
    lw_store_acc<8>(St, 128, 64, S[1], warp, lane);
}

// The decay table of a CTA (slope s): table[k] = exp(-s k) for k = 0..64, and 64 zeros before it (table[-64..-1]: keys
// after the query read them, so the causal mask costs nothing).
__device__ __forceinline__ void lw_fill_decays(float* table, float slope, int tid)
{
    if (tid <= LC_BM) table[tid] = expf(-slope * (float)tid);
    if (tid < LC_BM) table[tid - LC_BM] = 0.0f;
}

// P = (Q Kᵀ) ⊙ D from the scores' m64n64 accumulators (rows r0 = 16 warp + g and r0 + 8): D[i][j] = exp(-s (i - j)) for
// j <= i, else 0; packed as the A fragments of P V (k16 step kk: keys 16kk..16kk+15 = score columns n = 2kk, 2kk+1).
// Element (n, half, e): i - j = (r0 - 2q) + 8 (half - n) - e, a constant offset from this thread's decay base.
__device__ __forceinline__ void lw_decayed_scores(const float (&sc)[32], const float* table, int r0, int q, u32 (&p)[4][4])
{
    const float* decay = table + (r0 - 2 * q);
    #pragma unroll
    for (int kk = 0; kk < 4; kk++)
        #pragma unroll
        for (int f = 0; f < 4; f++)
        {
            const int n = 2 * kk + (f >> 1), half = f & 1, at = 8 * (half - n);
            p[kk][f] = pack_bf16(sc[4 * n + 2 * half] * decay[at], sc[4 * n + 2 * half + 1] * decay[at - 1]);
        }
}

// Q S's accumulators (m64 x N) times the query decays of their rows: qd0 for row r0, qd1 for row r0 + 8.
template <int N>
__device__ __forceinline__ void lw_scale_rows(float (&o)[N], float qd0, float qd1)
{
    #pragma unroll
    for (int i = 0; i < N / 4; i++)
    {
        o[4 * i] *= qd0; o[4 * i + 1] *= qd0;
        o[4 * i + 2] *= qd1; o[4 * i + 3] *= qd1;
    }
}

// One block's state step on float32 accumulators in two m64 halves of N columns: X = exp(-s m) X + A B, with A's halves at
// shared addresses a and a + 8192 (64 rows of 128 bytes each) and B at b, K = 64 tokens. lightning_wgmma keeps Sᵀ
// (A = Vᵀ, B = Kdᵀ, N = 128), lightning_pair S[:, half] (A = Kdᵀ, B = Vᵀ, N = 64).
template <int N>
__device__ __forceinline__ void lw_state_step(float (&S)[2][N / 2], float bd, u32 a, u32 b)
{
    #pragma unroll
    for (int hm = 0; hm < 2; hm++)
        #pragma unroll
        for (int r = 0; r < N / 2; r++) S[hm][r] *= bd;
    reg_fence_all(S[0]);
    reg_fence_all(S[1]);
    wg_fence();
    #pragma unroll
    for (int ks = 0; ks < 4; ks++)
        #pragma unroll
        for (int hm = 0; hm < 2; hm++)
        {
            if constexpr (N == 128) wgmma_n128_ss(S[hm], lw_desc(a + 8192 * hm + ks * 32), lw_desc(b + ks * 32), 1);
            else wgmma_n64_ss(S[hm], lw_desc(a + 8192 * hm + ks * 32), lw_desc(b + ks * 32), 1);
        }
    wg_commit();
    wg_wait0();
    reg_fence_all(S[0]);
    reg_fence_all(S[1]);
}

// The kernel's body for pass MODE (0: chunk states, 1: outputs), so that every choice between the passes is made
// at compile time (lightning_wgmma below picks one per launch).
template <int MODE>
__device__ __forceinline__ void lightning_wgmma_pass(const bf16* qkv, bf16* out, const int* items, const int* seqItems,
    const unsigned long long* states, float* slots, const float* slopes, int heads, const int* startSlot)
{
    constexpr int mode = MODE;
    unsigned char* base = lw_smem + ((1024 - (smem_addr(lw_smem) & 1023)) & 1023);
    float* table = (float*)(base + LW_TABLE + 256);   // table[k] = exp(-s k), k = 0..64; table[-64..-1] = 0
    u64* bars = (u64*)(base + LW_BARS);

    const LcItem it = lc_item(items, seqItems, states, slopes, blockIdx.x, mode);
    if (mode == 0 && it.count == 0) return;   // a position marker of the state plan: the scan fills its slot
    const int item = blockIdx.x, h = it.h, tokStart = it.tokStart, count = it.count;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
    const i64 inWidth = 3LL * heads * LC_D, outWidth = (i64)heads * LC_D;
    const int nBlocks = (count + LC_BM - 1) / LC_BM;
    const bf16* src = qkv + (i64)h * 3 * LC_D + (i64)tokStart * inWidth;   // q of the item's first token; k, v at +128, +256

    lw_fill_decays(table, it.slope, tid);
    if (tid == 0)
        for (int i = 0; i < LW_BARRIERS; i++)
            mbar_init(bars + i, (i == LW_EMPTY || i == LW_EMPTY + 1) && mode == 1 ? 256 : 128);
    __syncthreads();
    const int prow = wt >> 4, pcol = (wt & 15) * 8;   // this thread's raw pieces (lw_load) and output pieces

    if (wg == 2)
    {
        // ---- loads (q, k and v two blocks ahead; v four in pass 0) and the keys' SiLU, one block ahead of the products ----
        unsigned char* rawK = base + LW_RAWK;
        constexpr int vSlots = MODE == 1 ? 2 : 4;
        auto loadValues = [&](int b)
        {
            const LwValueSlot v = lw_value_slot<MODE>(base, b);
            lw_load(v.raw, src + 2 * LC_D, inWidth, b * LC_BM, min(LC_BM, count - b * LC_BM), prow, pcol, bars + v.landed);
        };
        for (int b = 0; b < 2 && b < nBlocks; b++)
        {
            const int m = min(LC_BM, count - b * LC_BM);
            if (mode == 1) lw_load(base + LW_RAWQ + b * 16384, src, inWidth, b * LC_BM, m, prow, pcol, bars + LW_RAWQ_BAR + b);
            lw_load(rawK + b * 16384, src + LC_D, inWidth, b * LC_BM, m, prow, pcol, bars + LW_RAWK_BAR + b);
        }
        for (int b = 0; b < vSlots && b < nBlocks; b++) loadValues(b);
        for (int b = 0; b < nBlocks; b++)
        {
            const int st = b & 1, m = min(LC_BM, count - b * LC_BM);
            if (b >= 2) mbar_wait(bars + LW_EMPTY + st, ((b >> 1) + 1) & 1);   // block b-2 has left this stage
            if (mode == 1 && b >= 1 && b + 1 < nBlocks)
            {
                // raw q slot of block b-1 (= slot of b+1): the outputs hold q of block b-1 in registers
                const int qs = (b + 1) & 1;
                mbar_wait(bars + LW_QREAD + qs, ((b - 1) >> 1) & 1);
                lw_load(base + LW_RAWQ + qs * 16384, src, inWidth, (b + 1) * LC_BM, min(LC_BM, count - (b + 1) * LC_BM), prow, pcol,
                    bars + LW_RAWQ_BAR + qs);
            }
            mbar_wait(bars + LW_RAWK_BAR + st, (b >> 1) & 1);
            lw_stage(true, mode == 1, rawK + st * 16384, base + st * LW_STAGE, table, m, warp, lane);
            named_sync(2, 128);   // every thread of this group has read raw k slot st
            if (b + 2 < nBlocks)
                lw_load(rawK + st * 16384, src + LC_D, inWidth, (b + 2) * LC_BM, min(LC_BM, count - (b + 2) * LC_BM), prow, pcol,
                    bars + LW_RAWK_BAR + st);
            fence_async_smem();
            mbar_arrive(bars + LW_FULL + st);
            if (b >= 1 && b + vSlots - 1 < nBlocks)
            {
                // block b + vSlots - 1 goes into the slot of block b-1, once the value group has staged that
                const LwValueSlot done = lw_value_slot<MODE>(base, b - 1);
                mbar_wait(bars + done.read, done.parity);
                loadValues(b + vSlots - 1);
            }
        }
        return;
    }

    if (wg == 1)
    {
        // ---- values' SiLU and the state: Sᵀ[dv][dk] in S[hm][4i + e]: dv = 64hm + 16 warp + g + 8(e>>1), dk = 8i + 2q + (e&1) ----
        const float* from = mode == 0 ? (const float*)0 : (it.nChunks == 1 ? it.seqState : slots + (i64)startSlot[item * heads + h] * LC_DD);
        float* dst = mode == 0 ? slots + (i64)(item + 1) * LC_DD : (it.last ? it.seqState : (float*)0);
        float S[2][64];
        // Calls f(accumulator, index of its element in the state, which memory holds as S[dk][dv]).
        auto eachStateElement = [&](auto f)
        {
            #pragma unroll
            for (int hm = 0; hm < 2; hm++)
                #pragma unroll
                for (int i = 0; i < 16; i++)
                    #pragma unroll
                    for (int e = 0; e < 4; e++)
                    {
                        const int dv = 64 * hm + 16 * warp + g + 8 * (e >> 1), dk = 8 * i + 2 * q + (e & 1);
                        f(S[hm][4 * i + e], dk * LC_D + dv);
                    }
        };
        eachStateElement([&](float& x, int at) { x = from ? from[at] : 0.0f; });
        unsigned char* St = base + LW_ST;
        if (mode == 1)
        {
            lw_store_state(St, S, warp, lane);
            fence_async_smem();
            mbar_arrive(bars + LW_SFULL);
        }
        for (int b = 0; b < nBlocks; b++)
        {
            const int st = b & 1, m = min(LC_BM, count - b * LC_BM);
            unsigned char* stage = base + st * LW_STAGE;
            if (mode == 1) lw_stage_values<MODE>(base, bars, table, b, m, warp, lane);
            mbar_wait(bars + LW_VFULL + st, (b >> 1) & 1);   // the whole Vᵀ tile
            mbar_wait(bars + LW_FULL + st, (b >> 1) & 1);    // Kdᵀ
            lw_state_step<128>(S, table[m], smem_addr(stage + LW_VT), smem_addr(stage + LW_KDT));   // Sᵀ += Vᵀ Kd
            mbar_arrive(bars + LW_EMPTY + st);
            if (mode == 1 && b + 1 < nBlocks)
            {
                mbar_wait(bars + LW_SEMPTY, b & 1);   // the outputs' Q S of block b has read the previous copy
                lw_store_state(St, S, warp, lane);
                fence_async_smem();
                mbar_arrive(bars + LW_SFULL);
            }
        }
        if (dst) eachStateElement([&](float& x, int at) { dst[at] = x; });
        return;
    }

    // ---- queries' SiLU and the outputs (mode 1): rows r0 = 16 warp + g and r0 + 8 of each block ----
    if (mode == 0)
    {
        // Pass 0 has no outputs: this group takes the values' SiLU off the state group's chain.
        for (int b = 0; b < nBlocks; b++) lw_stage_values<MODE>(base, bars, table, b, min(LC_BM, count - b * LC_BM), warp, lane);
        return;
    }
    const int r0 = 16 * warp + g;
    const float qd0 = table[r0 + 1], qd1 = table[r0 + 9];
    const u32 stAddr = smem_addr(base + LW_ST);
    const unsigned char* rawQ = base + LW_RAWQ;
    // The first product of each block overwrites the accumulators (accumulate = 0): they are zeroed once, not per block.
    float sc[32], o[64];
    #pragma unroll
    for (int i = 0; i < 32; i++) sc[i] = 0.0f;
    #pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.0f;
    // SiLU(q) of a block as wgmma A fragments: k16 step k = channels 16k..16k+15, rows 16 warp + (lane & 15) (ldmatrix's A
    // layout). Block b+1's are made while block b's P V runs on the tensor cores (raw q is loaded two blocks ahead).
    u32 qf[8][4];
    auto loadQ = [&](int b)
    {
        mbar_wait(bars + LW_RAWQ_BAR + (b & 1), (b >> 1) & 1);
        #pragma unroll
        for (int k = 0; k < 8; k++) ldsm_x4(qf[k], rawQ + (b & 1) * 16384 + lw_off(64, 16 * warp + (lane & 15), 16 * k + 8 * (lane >> 4)));
        mbar_arrive(bars + LW_QREAD + (b & 1));
        #pragma unroll
        for (int k = 0; k < 8; k++)
            #pragma unroll
            for (int i = 0; i < 4; i++) qf[k][i] = lw_silu_bf16x2(qf[k][i]);
    };
    loadQ(0);
    for (int b = 0; b < nBlocks; b++)
    {
        const int st = b & 1, b0 = b * LC_BM, m = min(LC_BM, count - b0);
        unsigned char* stage = base + st * LW_STAGE;
        const u32 ka = smem_addr(stage + LW_K), va = smem_addr(stage + LW_VT);
        mbar_wait(bars + LW_FULL + st, (b >> 1) & 1);
        mbar_wait(bars + LW_SFULL, b & 1);
        wg_fence();
        #pragma unroll
        for (int k = 0; k < 8; k++) wgmma_n64_rs(sc, qf[k], lw_desc(ka + (k >> 2) * 8192 + (k & 3) * 32), k > 0);
        wg_commit();
        #pragma unroll
        for (int k = 0; k < 8; k++) wgmma_n128_rs(o, qf[k], lw_desc(stAddr + (k >> 2) * 16384 + (k & 3) * 32), k > 0);
        wg_commit();
        wg_wait0();   // scores and Q S (the Q fragments stay live until both are done)
        reg_fence_all(sc);
        reg_fence_all(o);
        mbar_arrive(bars + LW_SEMPTY);
        u32 p[4][4];
        lw_decayed_scores(sc, table, r0, q, p);
        lw_scale_rows(o, qd0, qd1);
        reg_fence_all(o);
        mbar_wait(bars + LW_VFULL + st, (b >> 1) & 1);
        wg_fence();
        #pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_n128_rs(o, p[kk], lw_desc(va + kk * 32), 1);
        wg_commit();
        if (b + 1 < nBlocks) loadQ(b + 1);   // the Q fragments are free: Q Kᵀ and Q S are done
        wg_wait0();
        reg_fence_all(o);
        // Through this stage's K tile (last read by the score products, complete above) as 16-byte row pieces.
        unsigned char* ot = stage + LW_K;
        lw_store_acc<8>(ot, 64, 0, o, warp, lane);
        named_sync(1, 128);
        // Rows prow + 8pc: the pieces are 1024 bytes apart in the tile, 8 rows apart in the output.
        bf16* dstRow = out + (i64)(tokStart + b0 + prow) * outWidth + (i64)h * LC_D + pcol;
        const unsigned char* otRow = ot + lw_off(64, prow, pcol);
        #pragma unroll
        for (int pc = 0; pc < 8; pc++)
            if (prow + 8 * pc < m) *(uint4*)(dstRow + (i64)(8 * pc) * outWidth) = *(const uint4*)(otRow + 1024 * pc);
        mbar_arrive(bars + LW_EMPTY + st);
    }
}
extern "C" __global__ void __launch_bounds__(LW_THREADS, 1) lightning_wgmma(const bf16* qkv, bf16* out, const int* items, const int* seqItems,
    const unsigned long long* states, float* slots, const float* slopes, int heads, int mode, const int* startSlot)
{
    if (mode == 0) lightning_wgmma_pass<0>(qkv, out, items, seqItems, states, slots, slopes, heads, startSlot);
    else lightning_wgmma_pass<1>(qkv, out, items, seqItems, states, slots, slopes, heads, startSlot);
}
// ---------------------------------------------------------------------------------------------------
// Hopper prefill for few long sequences (B x heads about half the SMs), split by state COLUMNS over a pair of CTAs (a
// thread-block cluster of 2, sm_90a). lightning_wgmma splits such sequences along time instead, which reads k and v twice
// (pass 0 makes the chunk states): (4 + 2 (chunks - 1) / chunks) / 4 of the memory floor, 1.25x at two chunks. Here CTA
// c of a pair owns the channel half [64c, 64c + 64) of one (sequence, head): it loads that half of q, k and v, takes the
// SiLU of it, and sends its halves of Q, K and Kdᵀ to the other CTA (distributed shared memory, a bulk copy that
// completes on the receiver's mbarrier), so each CTA holds all of Q, K, Kdᵀ but computes and reads only half:
//   O[:, half] = diag(q_decay) Q S[:, half] + P V[:, half],   S[:, half] = exp(-s m) S[:, half] + Kdᵀ V[:, half]
// (the 64 x 64 scores P are computed in both CTAs). q, k, v are read and o written once: the memory floor.
// An earlier version multicast q and k rows to clusters of 2-8 CTAs and had every CTA take the SiLU of all of them: on
// the H100 it was slower than lightning_wgmma on every benchmark shape (it repeated each block's special-function and
// staging work in every CTA: docs/cuda.md). Sharing the SiLU's results costs 24 KB of distributed shared memory per block
// each way instead.
// Four warpgroups; each of the first three loads its tensor's half two blocks ahead (cp.async) and takes its SiLU, 32
// values per thread per block (lightning_wgmma's groups take 64 for a block of twice the columns: the SiLU staging is the
// longest step of a block): WG3 q: the stage's Q half, sent to the other CTA; WG2 k: the K and Kdᵀ halves, sent too;
// WG1 v: Vᵀ [64][64], and the state S[dk][half] (M = dk: two m64 halves, 64 registers) with its bf16 copy Sᵀ [64][128];
// WG0: the scores Q Kᵀ, Q S and P V (Q from shared memory), outputs stored from registers. With three groups (q and k
// both in WG2) a block took 2.3 us, longer than lightning_wgmma's block of twice the columns.
// A stage is written by both CTAs of the pair, so it is reused only once both have finished its previous block: after
// its own EMPTY, WG2 tells the other CTA (PEERFREE, a remote arrival) that it may send the next block into this stage,
// and waits for the same word from the other CTA before it writes the stage (which also means its own previous send out
// of the stage has landed: the other CTA consumed it).
#define LPR_STAGE 57344                  // Q [64][128], K [64][128], Kdᵀ [128][64] (16 KB each), Vᵀ [64][64] (8 KB)
#define LPR_Q 0
#define LPR_K 16384
#define LPR_KDT 32768
#define LPR_VT 49152
#define LPR_ST (2 * LPR_STAGE)           // Sᵀ [64][128] bf16 (16 KB)
#define LPR_SLOTS 3                      // raw slots: loads two blocks ahead
#define LPR_RAW (LPR_ST + 16384)         // raw q (WG3) and k (WG2) halves [64][64] (8 KB each) per slot (q loaded by WG0, k by WG2)
#define LPR_RAWV (LPR_RAW + LPR_SLOTS * 16384)   // raw v half per slot
#define LPR_TABLE (LPR_RAWV + LPR_SLOTS * 8192)
#define LPR_BARS (LPR_TABLE + 768)
#define LPR_SHARED (LPR_BARS + 256 + 1024)
#define LPR_THREADS 512
#define LPR_LANDED 0                     // [3] raw k half landed (WG2's cp.async -> WG2)
#define LPR_VLAND 3                      // [3] raw v half landed (WG1's cp.async -> WG1)
#define LPR_QLAND 6                      // [3] raw q half landed (WG3's cp.async -> WG3)
#define LPR_FULL 9                       // [2] Q, K, Kdᵀ complete: WG2, WG3 here (256, one with the expected bytes) + the other CTA's copies
#define LPR_VFULL 11                     // [2] Vᵀ staged (WG1 -> WG0, WG1)
#define LPR_EMPTY 13                     // [2] the stage's block done here (WG0, WG1 -> WG1, WG2, WG3)
#define LPR_PEERFREE 15                  // [2] the other CTA may send into this stage (its remote arrival)
#define LPR_SFULL 17                     // Sᵀ copy written (WG1 -> WG0)
#define LPR_SEMPTY 18                    // Q S has read it (WG0 -> WG1)
#define LPR_BARRIERS 19

__device__ __forceinline__ u32 cluster_rank() { u32 r; asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r)); return r; }
// All threads of all CTAs of the cluster (release / acquire: shared-memory writes before it are visible to the cluster).
__device__ __forceinline__ void cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// Makes this thread's mbarrier.init visible to the cluster's other CTAs (their copies and arrivals target our barriers).
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// One arrival that also expects `bytes` more transaction bytes in the current phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(u64* bar, u32 bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(smem_addr(bar)), "r"(bytes) : "memory");
}
// One arrival on the barrier at bar's offset in CTA `cta` of this cluster. Default semantics (release at CTA scope, as
// CUTLASS's cluster barriers): with .release.cluster each arrival cost about a microsecond of fence.
__device__ __forceinline__ void mbar_arrive_remote(u64* bar, u32 cta)
{
    asm volatile("{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\nmbarrier.arrive.shared::cluster.b64 _, [ra];\n}\n"
        :: "r"(smem_addr(bar)), "r"(cta) : "memory");
}
// `bytes` of this CTA's shared memory at src to the same offset as dst in CTA `cta` of the cluster, completing `bytes`
// transactions on the barrier at bar's offset there (distributed shared memory through the bulk-copy engine).
__device__ __forceinline__ void bulk_copy_to_cta(void* dst, const void* src, u32 bytes, u64* bar, u32 cta)
{
    asm volatile("{\n.reg .b32 rd, rb;\nmapa.shared::cluster.u32 rd, %0, %4;\nmapa.shared::cluster.u32 rb, %3, %4;\n"
        "cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [rd], [%1], %2, [rb];\n}\n"
        :: "r"(smem_addr(dst)), "r"(smem_addr(src)), "r"(bytes), "r"(smem_addr(bar)), "r"(cta) : "memory");
}

// Rows of one channel half (64 columns) of q, k or v of the block at b0 (m valid tokens) into a raw [64][64] tile
// (lw_off's 128-byte swizzle): this thread's 4 pieces of 16 bytes, rows prow + 16p; zeros past the block's end.
// arrive: one arrival on bar once this thread's earlier cp.async (these and any before) have landed.
__device__ __forceinline__ void lpr_load(unsigned char* raw, const bf16* src, i64 inWidth, int b0, int m, int wt, u64* bar, bool arrive)
{
    const int prow = wt >> 3, pcol = (wt & 7) * 8;
    unsigned char* dst = raw + lw_off(64, prow, pcol);   // rows prow + 16p share prow & 7: 2048 bytes apart
    #pragma unroll
    for (int p = 0; p < 4; p++)
    {
        const bool valid = prow + 16 * p < m;
        cp_async16(dst + 2048 * p, valid ? src + (i64)(b0 + prow + 16 * p) * inWidth + pcol : src, valid);
    }
    if (arrive) cp_async_mbar_arrive(bar);
}

// SiLU of a raw channel half by one warpgroup (lw_stage's pieces: warp w takes tokens 16w..16w+15, four 16 x 16 pieces):
// KIND 0 (q): Q's half into `normal` (the half's 64-column block of a [64][128] tile); 1 (k): K's half into `normal` and
// Kdᵀ = (K ⊙ key decays)ᵀ's 64 rows into `trans`; 2 (v): Vᵀ's 64 rows into `trans`. Raw rows past m are zeros (cp.async).
template <int KIND>
__device__ __forceinline__ void lpr_stage(const unsigned char* raw, unsigned char* normal, unsigned char* trans, const float* table, int m,
    int warp, int lane)
{
    const int R = 16 * warp, mi = lane >> 3, rr = lane & 7;
    const int srow = R + 8 * (mi & 1) + rr, dcol = R + 8 * (mi & 1);
    float kd0 = 0.0f, kd1 = 0.0f;
    if (KIND == 1)
    {
        const int j0 = R + (lane >> 2), j1 = j0 + 8;
        kd0 = j0 < m ? table[m - 1 - j0] : 0.0f;
        kd1 = j1 < m ? table[m - 1 - j1] : 0.0f;
    }
    unsigned char* t = trans + lw_off(128, 8 * (mi >> 1) + rr, dcol);   // + 2048 C: rows 16C + ...
    u32 x[4][4];
    #pragma unroll
    for (int c = 0; c < 4; c++) ldsm_x4(x[c], raw + lw_piece(64, srow, c, mi >> 1));
    u32 y[4][4], z[4][4];
    #pragma unroll
    for (int c = 0; c < 4; c++)
        #pragma unroll
        for (int i = 0; i < 4; i++)
        {
            float lo, hi;
            lw_silu2(x[c][i], lo, hi);
            y[c][i] = pack_bf16(lo, hi);
            if (KIND == 1)
            {
                const float kd = (i & 1) ? kd1 : kd0;
                z[c][i] = pack_bf16(lo * kd, hi * kd);
            }
        }
    #pragma unroll
    for (int c = 0; c < 4; c++)
    {
        if (KIND != 2) stsm_x4(normal + lw_piece(64, srow, c, mi >> 1), y[c][0], y[c][1], y[c][2], y[c][3]);
        if (KIND == 1) stsm_x4_t(t + 2048 * c, z[c][0], z[c][1], z[c][2], z[c][3]);
        if (KIND == 2) stsm_x4_t(t + 2048 * c, y[c][0], y[c][1], y[c][2], y[c][3]);
    }
}

// The bf16 copy Sᵀ [64][128] of the state half S[dk][64] (accumulators of M = dk: thread holds dk = 64 hm + 16 warp + g
// (+8), columns 8i + 2q (+1)): stmatrix .trans per 16 x 16 piece (the stored rows are S's columns).
__device__ __forceinline__ void lpr_store_state(unsigned char* St, const float (&S)[2][32], int warp, int lane)
{
    const int mi = lane >> 3, rr = lane & 7;
    #pragma unroll
    for (int hm = 0; hm < 2; hm++)
        #pragma unroll
        for (int j = 0; j < 4; j++)
        {
            const float* d = S[hm] + 8 * j;
            stsm_x4_t(St + lw_off(64, 16 * j + 8 * (mi >> 1) + rr, 64 * hm + 16 * warp + 8 * (mi & 1)),
                pack_bf16(d[0], d[1]), pack_bf16(d[2], d[3]), pack_bf16(d[4], d[5]), pack_bf16(d[6], d[7]));
        }
}

// grid (sequences x 2, heads), clusters of 2 along x; one item per sequence (items / seqItems as lightning_wgmma's with one
// chunk each): the state is read from and written back to the sequence's states.
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(LPR_THREADS, 1) lightning_pair(const bf16* qkv, bf16* out,
    const int* items, const int* seqItems, const unsigned long long* states, const float* slopes, int heads)
{
    unsigned char* base = lw_smem + ((1024 - (smem_addr(lw_smem) & 1023)) & 1023);
    float* table = (float*)(base + LPR_TABLE + 256);   // table[k] = exp(-s k), k = 0..64; table[-64..-1] = 0
    u64* bars = (u64*)(base + LPR_BARS);

    const u32 half = cluster_rank(), other = half ^ 1;
    const LcItem it = lc_item(items, seqItems, states, slopes, blockIdx.x >> 1, 1);
    const int h = blockIdx.y, tokStart = it.tokStart, count = it.count, col0 = (int)half * 64;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
    const i64 inWidth = 3LL * heads * LC_D, outWidth = (i64)heads * LC_D;
    const int nBlocks = (count + LC_BM - 1) / LC_BM;
    // this CTA's half of q of the item's first token; k, v at +128, +256
    const bf16* src = qkv + (i64)h * 3 * LC_D + (i64)tokStart * inWidth + col0;

    lw_fill_decays(table, it.slope, tid);
    if (tid == 0)
    {
        for (int i = 0; i < LPR_BARRIERS; i++)
            mbar_init(bars + i, i >= LPR_PEERFREE && i < LPR_SFULL ? 1 : (i >= LPR_FULL && i < LPR_VFULL) || (i >= LPR_EMPTY && i < LPR_PEERFREE) ? 256 : 128);
        fence_mbar_init();
    }
    cluster_sync();   // both CTAs' barriers exist before any copy or arrival reaches them

    if (wg >= 2)
    {
        // ---- WG2: the k half (K and Kdᵀ), WG3: the q half (Q): loads two blocks ahead, SiLU into the stage's halves, sent
        // to the other CTA. WG2 also tells the other CTA when a stage is free here. ----
        const bool keys = wg == 2;
        const bf16* from = keys ? src + LC_D : src;
        unsigned char* rawBase = base + LPR_RAW + (keys ? 8192 : 0);
        u64* landed = bars + (keys ? LPR_LANDED : LPR_QLAND);
        auto load = [&](int b)
        {
            lpr_load(rawBase + (b % LPR_SLOTS) * 16384, from, inWidth, b * LC_BM, min(LC_BM, count - b * LC_BM), wt, landed + b % LPR_SLOTS, true);
        };
        for (int b = 0; b < LPR_SLOTS - 1 && b < nBlocks; b++) load(b);
        for (int b = 0; b < nBlocks; b++)
        {
            const int st = b & 1, slot = b % LPR_SLOTS, m = min(LC_BM, count - b * LC_BM);
            unsigned char* stage = base + st * LPR_STAGE;
            if (b + LPR_SLOTS - 1 < nBlocks) load(b + LPR_SLOTS - 1);   // block b-1's slot: read by all of this group (named_sync below)
            if (b >= 2)
            {
                const u32 parity = ((b >> 1) + 1) & 1;
                mbar_wait(bars + LPR_EMPTY + st, parity);   // block b-2 has left this stage here
                if (keys && wt == 0) mbar_arrive_remote(bars + LPR_PEERFREE + st, other);
                mbar_wait(bars + LPR_PEERFREE + st, parity);   // and there
            }
            mbar_wait(landed + slot, (b / LPR_SLOTS) & 1);
            const unsigned char* raw = rawBase + slot * 16384;
            if (keys) lpr_stage<1>(raw, stage + LPR_K + half * 8192, stage + LPR_KDT + half * 8192, table, m, warp, lane);
            else lpr_stage<0>(raw, stage + LPR_Q + half * 8192, nullptr, table, m, warp, lane);
            fence_async_smem();
            named_sync(wg, 128);   // the halves are written (and fenced) by the whole group; the raw slot is read
            if (wt == 0)
            {
                // WG2's arrival also expects the other CTA's Q, K and Kdᵀ halves.
                if (keys) mbar_arrive_expect_tx(bars + LPR_FULL + st, 3 * 8192);
                else mbar_arrive(bars + LPR_FULL + st);
                for (int t = keys ? 1 : 0; t < (keys ? 3 : 1); t++)
                {
                    unsigned char* tile = stage + t * 16384 + half * 8192;   // Q (WG3); K, Kdᵀ (WG2)
                    bulk_copy_to_cta(tile, tile, 8192, bars + LPR_FULL + st, other);
                }
            }
            else mbar_arrive(bars + LPR_FULL + st);
        }
    }
    else if (wg == 1)
    {
        // ---- v half and the state: S[dk][col0 + c] in S[hm][4i + e]: dk = 64hm + 16 warp + g + 8(e>>1), c = 8i + 2q + (e&1) ----
        float* state = it.seqState;
        float S[2][32];
        auto eachStateElement = [&](auto f)
        {
            #pragma unroll
            for (int hm = 0; hm < 2; hm++)
                #pragma unroll
                for (int i = 0; i < 8; i++)
                    #pragma unroll
                    for (int e = 0; e < 4; e++)
                    {
                        const int dk = 64 * hm + 16 * warp + g + 8 * (e >> 1), c = col0 + 8 * i + 2 * q + (e & 1);
                        f(S[hm][4 * i + e], dk * LC_D + c);
                    }
        };
        auto load = [&](int b)
        {
            lpr_load(base + LPR_RAWV + (b % LPR_SLOTS) * 8192, src + 2 * LC_D, inWidth, b * LC_BM, min(LC_BM, count - b * LC_BM), wt,
                bars + LPR_VLAND + b % LPR_SLOTS, true);
        };
        for (int b = 0; b < LPR_SLOTS - 1 && b < nBlocks; b++) load(b);
        eachStateElement([&](float& x, int at) { x = state[at]; });
        unsigned char* St = base + LPR_ST;
        lpr_store_state(St, S, warp, lane);
        fence_async_smem();
        mbar_arrive(bars + LPR_SFULL);
        for (int b = 0; b < nBlocks; b++)
        {
            const int st = b & 1, slot = b % LPR_SLOTS, m = min(LC_BM, count - b * LC_BM);
            unsigned char* stage = base + st * LPR_STAGE;
            if (b + LPR_SLOTS - 1 < nBlocks) load(b + LPR_SLOTS - 1);   // block b-1's slot: read by all of this group (VFULL below)
            mbar_wait(bars + LPR_VLAND + slot, (b / LPR_SLOTS) & 1);
            if (b >= 2) mbar_wait(bars + LPR_EMPTY + st, ((b >> 1) + 1) & 1);   // block b-2 has left this stage
            lpr_stage<2>(base + LPR_RAWV + slot * 8192, nullptr, stage + LPR_VT, table, m, warp, lane);
            fence_async_smem();
            mbar_arrive(bars + LPR_VFULL + st);
            mbar_wait(bars + LPR_VFULL + st, (b >> 1) & 1);   // the whole Vᵀ tile (and every thread's reads of the raw slot)
            mbar_wait(bars + LPR_FULL + st, (b >> 1) & 1);    // Kdᵀ, both halves
            lw_state_step<64>(S, table[m], smem_addr(stage + LPR_KDT), smem_addr(stage + LPR_VT));   // S[:, half] += Kdᵀ V
            mbar_arrive(bars + LPR_EMPTY + st);
            if (b + 1 < nBlocks)
            {
                mbar_wait(bars + LPR_SEMPTY, b & 1);   // the outputs' Q S of block b has read the previous copy
                lpr_store_state(St, S, warp, lane);
                fence_async_smem();
                mbar_arrive(bars + LPR_SFULL);
            }
        }
        eachStateElement([&](float& x, int at) { state[at] = x; });
    }
    else
    {
        // ---- outputs: rows r0 = 16 warp + g and r0 + 8 of each block, columns col0 + 8i + 2q (+1) ----
        const int r0 = 16 * warp + g;
        const float qd0 = table[r0 + 1], qd1 = table[r0 + 9];
        const u32 stAddr = smem_addr(base + LPR_ST);
        float sc[32], o[32];
        #pragma unroll
        for (int i = 0; i < 32; i++) { sc[i] = 0.0f; o[i] = 0.0f; }
        for (int b = 0; b < nBlocks; b++)
        {
            const int st = b & 1, b0 = b * LC_BM, m = min(LC_BM, count - b0);
            unsigned char* stage = base + st * LPR_STAGE;
            const u32 qa = smem_addr(stage + LPR_Q), ka = smem_addr(stage + LPR_K), va = smem_addr(stage + LPR_VT);
            mbar_wait(bars + LPR_FULL + st, (b >> 1) & 1);
            mbar_wait(bars + LPR_SFULL, b & 1);
            wg_fence();
            #pragma unroll
            for (int k = 0; k < 8; k++)
                wgmma_n64_ss(sc, lw_desc(qa + (k >> 2) * 8192 + (k & 3) * 32), lw_desc(ka + (k >> 2) * 8192 + (k & 3) * 32), k > 0);
            wg_commit();
            #pragma unroll
            for (int k = 0; k < 8; k++)
                wgmma_n64_ss(o, lw_desc(qa + (k >> 2) * 8192 + (k & 3) * 32), lw_desc(stAddr + (k >> 2) * 8192 + (k & 3) * 32), k > 0);
            wg_commit();
            wg_wait0();
            reg_fence_all(sc);
            reg_fence_all(o);
            mbar_arrive(bars + LPR_SEMPTY);
            u32 p[4][4];
            lw_decayed_scores(sc, table, r0, q, p);
            lw_scale_rows(o, qd0, qd1);
            reg_fence_all(o);
            mbar_wait(bars + LPR_VFULL + st, (b >> 1) & 1);
            wg_fence();
            #pragma unroll
            for (int kk = 0; kk < 4; kk++) wgmma_n64_rs(o, p[kk], lw_desc(va + kk * 32), 1);
            wg_commit();
            wg_wait0();
            reg_fence_all(o);
            mbar_arrive(bars + LPR_EMPTY + st);   // the stage's Q, K and Vᵀ are read (the outputs are in registers)
            bf16* row0 = out + (i64)(tokStart + b0 + r0) * outWidth + (i64)h * LC_D + col0 + 2 * q;
            #pragma unroll
            for (int i = 0; i < 8; i++)
            {
                if (r0 < m) *(u32*)(row0 + 8 * i) = pack_bf16(o[4 * i], o[4 * i + 1]);
                if (r0 + 8 < m) *(u32*)(row0 + 8 * outWidth + 8 * i) = pack_bf16(o[4 * i + 2], o[4 * i + 3]);
            }
        }
    }
    cluster_sync();   // no CTA leaves while the other may still send into it or arrive on its barriers
}
#endif

