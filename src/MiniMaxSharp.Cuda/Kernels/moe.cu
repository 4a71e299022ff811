// Mixture-of-experts routing on the device: softmax over the router logits in float32, top-k (ties: the
// lower expert index), renormalised weights; then a deterministic grouping of the (token, choice) pairs
// by expert, in token order.

// Softmax over one token's router logits, its top k (ties: the lower index) and their renormalised weights.
__device__ void topk_row(const float* row, int experts, int k, int* chosen, float* weights)
{
    float mx = NEG_INF;
    for (int e = 0; e < experts; e++) mx = fmaxf(mx, row[e]);
    float sum = 0.0f;
    for (int e = 0; e < experts; e++) sum += expf(row[e] - mx);
    float chosenSum = 0.0f;
    for (int j = 0; j < k; j++)
    {
        int best = -1;
        float bestValue = 0.0f;
        for (int e = 0; e < experts; e++)
        {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= chosen[i] == e;
            if (taken) continue;
            if (best < 0 || row[e] > bestValue) { best = e; bestValue = row[e]; }
        }
        float p = expf(bestValue - mx) / sum;
        chosen[j] = best;
        weights[j] = p;
        chosenSum += p;
    }
    for (int j = 0; j < k; j++) weights[j] /= chosenSum;
}

// One thread per token. logits [T, E] float32; chosen, weights [T, k].
extern "C" __global__ void router_topk(const float* logits, int tokens, int experts, int k, int* chosen, float* weights)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= tokens) return;
    topk_row(logits + (i64)t * experts, experts, k, chosen + (i64)t * k, weights + (i64)t * k);
}

// Few tokens (decode): the router product and the top-k in one launch, one block per token. Warp w computes the
// logits of experts w, w + warps, ... (bf16 x and router rows, 16-byte aligned, hidden a multiple of 8), every
// 16-byte load of a row issued before the products; thread 0 then routes from the logits in shared memory.
// The logits also go to logits [T, E] as the two-launch path leaves them.
#define ROUTER_UNROLL 8
extern "C" __global__ void router_decode(const bf16* x, const bf16* router, int hidden, int experts, int k,
    float* logits, int* chosen, float* weights)
{
    extern __shared__ float rowLogits[];   // [experts]
    const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int n8 = hidden / 8;
    const uint4* xv = (const uint4*)(x + (i64)t * hidden);
    for (int e = warp; e < experts; e += warps)
    {
        const uint4* rv = (const uint4*)(router + (i64)e * hidden);
        float acc = 0.0f;
        for (int base = 0; base < n8; base += 32 * ROUTER_UNROLL)
        {
            uint4 a[ROUTER_UNROLL];
            #pragma unroll
            for (int u = 0; u < ROUTER_UNROLL; u++)
            {
                int i = base + 32 * u + lane;
                a[u] = i < n8 ? rv[i] : mk_uint4(0u, 0u, 0u, 0u);
            }
            #pragma unroll
            for (int u = 0; u < ROUTER_UNROLL; u++)
            {
                int i = base + 32 * u + lane;
                if (i < n8) acc += dot8_bf16(a[u], xv[i]);
            }
        }
        acc = warp_sum(acc);
        if (lane == 0)
        {
            rowLogits[e] = acc;
            logits[(i64)t * experts + e] = acc;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) topk_row(rowLogits, experts, k, chosen + (i64)t * k, weights + (i64)t * k);
}

// The post-attention residual add and norm (as scale_add_rms_norm_vec8, the norm reading the residual as stored)
// and the routing of its bf16 output (as router_decode) in one block per token, for few tokens: thread i holds the
// row's 8-column piece i (cols / 8 <= blockDim.x), multiplies its normed values, rounded to bf16 as the router
// reads them, with each router row's piece, and the per-warp sums are added in warp order (deterministic).
// The first ROUTE_GROUP router pieces are requested with the row's inputs, before the norm's reduction.
#define ROUTE_GROUP 8
#define ROUTE_MAX_EXPERTS 64
extern "C" __global__ void scale_add_rms_norm_route(const void* a, int dtA, float alpha, const void* b, int dtB, float beta,
    void* residual, int dtRes, const void* w, int dtW, bf16* out, int cols, float eps,
    const bf16* router, int experts, int k, float* logits, int* chosen, float* weights)
{
    __shared__ float warpSums[32][ROUTE_MAX_EXPERTS];
    __shared__ float rowLogits[ROUTE_MAX_EXPERTS];
    const int t = blockIdx.x, i = threadIdx.x, lane = i & 31, warp = i >> 5, warps = blockDim.x >> 5;
    const i64 base = (i64)t * cols;
    const bool live = i < cols / 8;
    uint4 rr[ROUTE_GROUP];
    #pragma unroll
    for (int j = 0; j < ROUTE_GROUP; j++)
        rr[j] = live && j < experts ? *(const uint4*)(router + (i64)j * cols + 8 * i) : mk_uint4(0u, 0u, 0u, 0u);
    float r[8], wv[8];
    float ss = 0.0f;
    if (live)
    {
        float av[8], bv[8];
        load8(a, base + 8 * i, dtA, av);
        load8(b, base + 8 * i, dtB, bv);
        load8(w, 8 * i, dtW, wv);
        #pragma unroll
        for (int e = 0; e < 8; e++) r[e] = alpha * av[e] + beta * bv[e];
        store8(residual, base + 8 * i, dtRes, r);
        #pragma unroll
        for (int e = 0; e < 8; e++)
        {
            r[e] = as_stored(r[e], dtRes);
            ss += r[e] * r[e];
        }
    }
    const float scale = rsqrtf(block_sum(ss) / cols + eps);
    float y[8];
    #pragma unroll
    for (int e = 0; e < 8; e++) y[e] = 0.0f;
    if (live)
    {
        #pragma unroll
        for (int e = 0; e < 8; e++) y[e] = as_stored(wv[e] * (r[e] * scale), DT_BF16);
        store8(out, base + 8 * i, DT_BF16, y);
    }
    for (int e0 = 0; e0 < experts; e0 += ROUTE_GROUP)
    {
        if (e0 > 0)
        {
            #pragma unroll
            for (int j = 0; j < ROUTE_GROUP; j++)
                rr[j] = live && e0 + j < experts ? *(const uint4*)(router + (i64)(e0 + j) * cols + 8 * i) : mk_uint4(0u, 0u, 0u, 0u);
        }
        #pragma unroll
        for (int j = 0; j < ROUTE_GROUP; j++)
        {
            if (e0 + j >= experts) break;
            u32 q[4] = { rr[j].x, rr[j].y, rr[j].z, rr[j].w };
            float p = 0.0f;
            #pragma unroll
            for (int c = 0; c < 4; c++)
                p += __uint_as_float(q[c] << 16) * y[2 * c] + __uint_as_float(q[c] & 0xffff0000u) * y[2 * c + 1];
            p = warp_sum(p);
            if (lane == 0) warpSums[warp][e0 + j] = p;
        }
    }
    __syncthreads();
    if (i < experts)
    {
        float sum = 0.0f;
        for (int u = 0; u < warps; u++) sum += warpSums[u][i];
        rowLogits[i] = sum;
        logits[(i64)t * experts + i] = sum;
    }
    __syncthreads();
    if (i == 0) topk_row(rowLogits, experts, k, chosen + (i64)t * k, weights + (i64)t * k);
}

// Grouping of (token, choice) pairs by expert: expert-major slots, pair order inside an expert (deterministic).
// Three passes so that every SM takes part (one block did the whole job before: 0.9 ms for 64k pairs):
// moe_group_count counts each chunk's pairs per expert, moe_group_scan turns the counts into the experts'
// offsets [E+1] and each chunk's first slot per expert, moe_group_scatter gives every pair its slot:
// slotToken[slot] = token, pairSlot[pair] = slot.
extern "C" __global__ void moe_group_count(const int* chosen, int pairs, int experts, int chunk, int* chunkCounts)
{
    extern __shared__ int counts[];   // [experts]
    for (int e = threadIdx.x; e < experts; e += blockDim.x) counts[e] = 0;
    __syncthreads();
    int start = blockIdx.x * chunk, end = min(start + chunk, pairs);
    for (int p = start + threadIdx.x; p < end; p += blockDim.x) atomicAdd(&counts[chosen[p]], 1);
    __syncthreads();
    for (int e = threadIdx.x; e < experts; e += blockDim.x) chunkCounts[(i64)blockIdx.x * experts + e] = counts[e];
}

// One block. chunkCounts [chunks, experts] in, each chunk's first slot per expert out (in place).
extern "C" __global__ void moe_group_scan(int* chunkCounts, int chunks, int experts, int* offsets)
{
    extern __shared__ int totals[];   // [experts]
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
    {
        int s = 0;
        for (int c = 0; c < chunks; c++) s += chunkCounts[(i64)c * experts + e];
        totals[e] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        int run = 0;
        for (int e = 0; e < experts; e++) { int t = totals[e]; totals[e] = run; offsets[e] = run; run += t; }
        offsets[experts] = run;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
    {
        int run = totals[e];
        for (int c = 0; c < chunks; c++) { i64 i = (i64)c * experts + e; int n = chunkCounts[i]; chunkCounts[i] = run; run += n; }
    }
}

// One block of MOE_GROUP_THREADS per chunk, in rounds of one pair per thread. Inside a warp, lanes with the same
// expert find each other with __match_any_sync (rank = earlier lanes of the group); warps' counts go through
// shared memory, so a pair's slot = chunk's next slot for its expert + pairs of that expert in earlier warps + rank.
#define MOE_GROUP_THREADS 256
extern "C" __global__ void __launch_bounds__(MOE_GROUP_THREADS) moe_group_scatter(const int* chosen, int pairs, int k, int experts,
    int chunk, const int* chunkBase, int* slotToken, int* pairSlot)
{
    extern __shared__ int smem[];
    const int warps = MOE_GROUP_THREADS / 32;
    int* next = smem;                  // [experts]: the chunk's next free slot per expert
    int* warpCounts = smem + experts;  // [warps][experts]
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned below = (1u << lane) - 1u;
    for (int e = threadIdx.x; e < experts; e += MOE_GROUP_THREADS) next[e] = chunkBase[(i64)blockIdx.x * experts + e];
    for (int i = threadIdx.x; i < warps * experts; i += MOE_GROUP_THREADS) warpCounts[i] = 0;
    __syncthreads();
    int start = blockIdx.x * chunk, end = min(start + chunk, pairs);
    for (int base = start; base < end; base += MOE_GROUP_THREADS)
    {
        int p = base + threadIdx.x;
        int e = p < end ? chosen[p] : -1;
        unsigned same = __match_any_sync(0xffffffffu, e);
        int rank = __popc(same & below);
        if (e >= 0 && rank == 0) warpCounts[warp * experts + e] = __popc(same);
        __syncthreads();
        if (e >= 0)
        {
            int slot = next[e] + rank;
            for (int w = 0; w < warp; w++) slot += warpCounts[w * experts + e];
            slotToken[slot] = p / k;
            pairSlot[p] = slot;
        }
        __syncthreads();
        for (int x = threadIdx.x; x < experts; x += MOE_GROUP_THREADS)
        {
            int n = 0;
            for (int w = 0; w < warps; w++) { n += warpCounts[w * experts + x]; warpCounts[w * experts + x] = 0; }
            next[x] += n;
        }
        __syncthreads();
    }
}

// Padded groups (CudaBackend.MixtureOfExpertsPadded): every expert gets `tokens` rows, its group's tokens first, so the
// products have fixed shapes. rowToken[e * tokens + r] = the token of slot offsets[e] + r, or token 0 for a padding row
// (a real row whose outputs nobody reads); pairRow[p] = the padded row of pair p. One thread per row and per pair.
extern "C" __global__ void moe_pad_rows(const int* chosen, const int* offsets, const int* slotToken, const int* pairSlot,
    int pairs, int tokens, int experts, int* rowToken, int* pairRow)
{
    const int rows = experts * tokens;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < max(rows, pairs); i += gridDim.x * blockDim.x)
    {
        if (i < rows)
        {
            const int e = i / tokens, r = i - e * tokens;
            rowToken[i] = r < offsets[e + 1] - offsets[e] ? slotToken[offsets[e] + r] : 0;
        }
        if (i < pairs)
        {
            const int e = chosen[i];
            pairRow[i] = e * tokens + (pairSlot[i] - offsets[e]);
        }
    }
}

// out[t] = sum_j weights[t, j] * expertOut[pairSlot[t*k + j]]  (float32 sum, in choice order).
extern "C" __global__ void moe_combine(const void* expertOut, int dtIn, const int* pairSlot, const float* weights, int k,
    void* out, int dtOut, int tokens, int hidden)
{
    // A block per token at a time (no 64-bit division per element).
    for (int t = blockIdx.x; t < tokens; t += gridDim.x)
        for (int c = threadIdx.x; c < hidden; c += blockDim.x)
        {
            float acc = 0.0f;
            for (int j = 0; j < k; j++)
                acc += weights[(i64)t * k + j] * ld(expertOut, (i64)pairSlot[(i64)t * k + j] * hidden + c, dtIn);
            st(out, (i64)t * hidden + c, dtOut, acc);
        }
}

// ---- Few-token path (decode): the chosen experts' weights are read through pointer tables on the device,
// so the host never learns the group sizes and no synchronisation is needed. ----

// 16-byte loads per lane and weight row issued before any product in the few-token kernels (the step is bound
// by reading the experts' weights; a loop that waits on each load leaves the memory system idle).
// Loads per lane and weight row in one round of the few-token kernels: a 2048-wide (up) or 1536-wide (down)
// bf16 row is then one round, every load of it in flight at once.
#define MOE_UP_UNROLL 8
#define MOE_DOWN_UNROLL 6

// One warp per intermediate row r (blockIdx.x spans rows, blockIdx.y the (token, choice) pair p):
// h[p, r] = silu(x_t · w1[e][r]) · (x_t · w3[e][r]) in float32, e = chosen[p], t = p / k.
// vec: x and the weights are bf16, 16-byte aligned, hidden a multiple of 8 (uint4 loads).
extern "C" __global__ void moe_decode_up(const void* x, int dtX, const int* chosen, int k,
    const unsigned long long* w1s, const unsigned long long* w3s, int dtW, int hidden, int inter, int vec, float* h)
{
    // vec 2: the token's x row is staged in shared memory (launched with hidden·2 bytes of it) and read there by
    // every warp of the block; vec 1 reads it from global memory (rows too wide to stage).
    extern __shared__ uint4 moe_x[];
    int lane = threadIdx.x & 31;
    int p = blockIdx.y, t = p / k;
    if (vec == 2)
    {
        const uint4* src = (const uint4*)((const bf16*)x + (i64)t * hidden);
        for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) moe_x[i] = src[i];
        __syncthreads();
    }
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= inter) return;
    int e = chosen[p];
    const void* w1 = (const void*)w1s[e];
    const void* w3 = (const void*)w3s[e];
    i64 row = (i64)r * hidden, xRow = (i64)t * hidden;
    float g = 0.0f, up = 0.0f;
    if (vec)
    {
        const uint4* xv = vec == 2 ? moe_x : (const uint4*)((const bf16*)x + xRow);
        const uint4* av = (const uint4*)((const bf16*)w1 + row);
        const uint4* bv = (const uint4*)((const bf16*)w3 + row);
        const int n8 = hidden / 8;
        for (int base = 0; base < n8; base += 32 * MOE_UP_UNROLL)
        {
            uint4 a[MOE_UP_UNROLL], b[MOE_UP_UNROLL];
            #pragma unroll
            for (int u = 0; u < MOE_UP_UNROLL; u++)
            {
                int i = base + 32 * u + lane;
                a[u] = i < n8 ? av[i] : mk_uint4(0u, 0u, 0u, 0u);
                b[u] = i < n8 ? bv[i] : mk_uint4(0u, 0u, 0u, 0u);
            }
            #pragma unroll
            for (int u = 0; u < MOE_UP_UNROLL; u++)
            {
                int i = base + 32 * u + lane;
                if (i >= n8) break;
                uint4 xx = xv[i];
                g += dot8_bf16(a[u], xx);
                up += dot8_bf16(b[u], xx);
            }
        }
    }
    else
    {
        for (int c = lane; c < hidden; c += 32)
        {
            float xc = ld(x, xRow + c, dtX);
            g += ld(w1, row + c, dtW) * xc;
            up += ld(w3, row + c, dtW) * xc;
        }
    }
    g = warp_sum(g);
    up = warp_sum(up);
    if (lane == 0) h[(i64)p * inter + r] = silu(g) * up;
}

// One warp per output column c of token t = blockIdx.y: out[t, c] = Σ_j weights[t, j] · (w2[e_j][c] · h[t·k + j]),
// float32, in choice order (as moe_combine). vec: bf16 weights, 16-byte aligned, inter a multiple of 8; then two
// choices are read at a time, both rows' loads of a round issued before any product.
// Under PDL the first round of weight loads is issued before waiting for moe_decode_up: the chosen experts come from
// the routing kernel before it, which has finished once moe_decode_up's blocks have all passed their own wait (the
// condition for this kernel to start).
// PDL_MANUAL
extern "C" __global__ void moe_decode_down(const float* h, const int* chosen, const float* weights, int k,
    const unsigned long long* w2s, int dtW, int inter, int hidden, int vec, void* out, int dtOut)
{
    // vec 2: the token's k activation rows are staged in shared memory (launched with k·inter·4 bytes of it) and
    // read there by every warp; vec 1 reads them from global memory.
    extern __shared__ float4 moe_h[];
    int lane = threadIdx.x & 31;
    int t = blockIdx.y;
    int c = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    i64 row = (i64)c * inter;
    const int n8 = inter / 8;
    uint4 a[MOE_DOWN_UNROLL], b[MOE_DOWN_UNROLL];
    if (vec && c < hidden)
    {
        const bool second = 1 < k;
        const uint4* w0 = (const uint4*)((const bf16*)w2s[chosen[t * k]] + row);
        const uint4* w1 = (const uint4*)((const bf16*)w2s[chosen[second ? t * k + 1 : t * k]] + row);
        #pragma unroll
        for (int u = 0; u < MOE_DOWN_UNROLL; u++)
        {
            int i = 32 * u + lane;
            a[u] = i < n8 ? w0[i] : mk_uint4(0u, 0u, 0u, 0u);
            b[u] = i < n8 && second ? w1[i] : mk_uint4(0u, 0u, 0u, 0u);
        }
    }
    pdl_wait_then_release();
    if (vec == 2)
    {
        const float4* src = (const float4*)(h + (i64)t * k * inter);
        for (int i = threadIdx.x; i < k * inter / 4; i += blockDim.x) moe_h[i] = src[i];
        __syncthreads();
    }
    if (c >= hidden) return;
    float acc = 0.0f;
    if (vec)
    {
        for (int j = 0; j < k; j += 2)
        {
            const bool second = j + 1 < k;
            const int p0 = t * k + j, p1 = second ? p0 + 1 : p0;
            const uint4* w0 = (const uint4*)((const bf16*)w2s[chosen[p0]] + row);
            const uint4* w1 = (const uint4*)((const bf16*)w2s[chosen[p1]] + row);
            const float4* h0 = vec == 2 ? moe_h + (i64)j * inter / 4 : (const float4*)(h + (i64)p0 * inter);
            const float4* h1 = vec == 2 ? moe_h + (i64)(p1 - t * k) * inter / 4 : (const float4*)(h + (i64)p1 * inter);
            float s0 = 0.0f, s1 = 0.0f;
            for (int base = 0; base < n8; base += 32 * MOE_DOWN_UNROLL)
            {
                // The first round of the first pair was loaded before the wait.
                if (j > 0 || base > 0)
                {
                    #pragma unroll
                    for (int u = 0; u < MOE_DOWN_UNROLL; u++)
                    {
                        int i = base + 32 * u + lane;
                        a[u] = i < n8 ? w0[i] : mk_uint4(0u, 0u, 0u, 0u);
                        b[u] = i < n8 && second ? w1[i] : mk_uint4(0u, 0u, 0u, 0u);
                    }
                }
                #pragma unroll
                for (int u = 0; u < MOE_DOWN_UNROLL; u++)
                {
                    int i = base + 32 * u + lane;
                    if (i >= n8) break;
                    s0 += dot8_bf16_f32(a[u], h0[2 * i], h0[2 * i + 1]);
                    if (second) s1 += dot8_bf16_f32(b[u], h1[2 * i], h1[2 * i + 1]);
                }
            }
            acc += weights[p0] * warp_sum(s0);
            if (second) acc += weights[p1] * warp_sum(s1);
        }
    }
    else
    {
        for (int j = 0; j < k; j++)
        {
            int p = t * k + j;
            const void* w = (const void*)w2s[chosen[p]];
            const float* hp = h + (i64)p * inter;
            float s = 0.0f;
            for (int i = lane; i < inter; i += 32) s += ld(w, row + i, dtW) * hp[i];
            acc += weights[p] * warp_sum(s);
        }
    }
    if (lane == 0) st(out, (i64)t * hidden + c, dtOut, acc);
}
