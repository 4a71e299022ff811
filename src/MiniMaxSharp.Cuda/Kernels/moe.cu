// Mixture-of-experts routing on the device: softmax over the router logits in float32, top-k (ties: the
// lower expert index), renormalised weights; then a deterministic grouping of the (token, choice) pairs
// by expert, in token order.

// One thread per token. logits [T, E] float32; chosen, weights [T, k].
extern "C" __global__ void router_topk(const float* logits, int tokens, int experts, int k, int* chosen, float* weights)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= tokens) return;
    const float* row = logits + (i64)t * experts;
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
            for (int i = 0; i < j; i++) taken |= chosen[(i64)t * k + i] == e;
            if (taken) continue;
            if (best < 0 || row[e] > bestValue) { best = e; bestValue = row[e]; }
        }
        float p = expf(bestValue - mx) / sum;
        chosen[(i64)t * k + j] = best;
        weights[(i64)t * k + j] = p;
        chosenSum += p;
    }
    for (int j = 0; j < k; j++) weights[(i64)t * k + j] /= chosenSum;
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

// One warp per intermediate row r (blockIdx.x spans rows, blockIdx.y the (token, choice) pair p):
// h[p, r] = silu(x_t · w1[e][r]) · (x_t · w3[e][r]) in float32, e = chosen[p], t = p / k.
// vec: x and the weights are bf16, 16-byte aligned, hidden a multiple of 8 (uint4 loads).
extern "C" __global__ void moe_decode_up(const void* x, int dtX, const int* chosen, int k,
    const unsigned long long* w1s, const unsigned long long* w3s, int dtW, int hidden, int inter, int vec, float* h)
{
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= inter) return;
    int p = blockIdx.y, t = p / k, e = chosen[p];
    const void* w1 = (const void*)w1s[e];
    const void* w3 = (const void*)w3s[e];
    i64 row = (i64)r * hidden, xRow = (i64)t * hidden;
    float g = 0.0f, u = 0.0f;
    if (vec)
    {
        const uint4* xv = (const uint4*)((const bf16*)x + xRow);
        const uint4* av = (const uint4*)((const bf16*)w1 + row);
        const uint4* bv = (const uint4*)((const bf16*)w3 + row);
        #pragma unroll 4
        for (int i = lane; i < hidden / 8; i += 32)
        {
            uint4 xx = xv[i];
            g += dot8_bf16(av[i], xx);
            u += dot8_bf16(bv[i], xx);
        }
    }
    else
    {
        for (int c = lane; c < hidden; c += 32)
        {
            float xc = ld(x, xRow + c, dtX);
            g += ld(w1, row + c, dtW) * xc;
            u += ld(w3, row + c, dtW) * xc;
        }
    }
    g = warp_sum(g);
    u = warp_sum(u);
    if (lane == 0) h[(i64)p * inter + r] = silu(g) * u;
}

// One warp per output column c of token t = blockIdx.y: out[t, c] = Σ_j weights[t, j] · (w2[e_j][c] · h[t·k + j]),
// float32, in choice order (as moe_combine). vec: bf16 weights, 16-byte aligned, inter a multiple of 8.
extern "C" __global__ void moe_decode_down(const float* h, const int* chosen, const float* weights, int k,
    const unsigned long long* w2s, int dtW, int inter, int hidden, int vec, void* out, int dtOut)
{
    int lane = threadIdx.x & 31;
    int c = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (c >= hidden) return;
    int t = blockIdx.y;
    float acc = 0.0f;
    for (int j = 0; j < k; j++)
    {
        int p = t * k + j;
        const void* w = (const void*)w2s[chosen[p]];
        const float* hp = h + (i64)p * inter;
        i64 row = (i64)c * inter;
        float s = 0.0f;
        if (vec)
        {
            const uint4* wv = (const uint4*)((const bf16*)w + row);
            const float4* hv = (const float4*)hp;
            #pragma unroll 4
            for (int i = lane; i < inter / 8; i += 32) s += dot8_bf16_f32(wv[i], hv[2 * i], hv[2 * i + 1]);
        }
        else
        {
            for (int i = lane; i < inter; i += 32) s += ld(w, row + i, dtW) * hp[i];
        }
        acc += weights[p] * warp_sum(s);
    }
    if (lane == 0) st(out, (i64)t * hidden + c, dtOut, acc);
}
