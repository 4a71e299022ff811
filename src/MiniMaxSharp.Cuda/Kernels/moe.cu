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

// One block; warp w handles experts w, w+warps, ... Pass 1 counts each expert's pairs, thread 0 turns the
// counts into offsets [E+1], pass 2 gives every pair its slot (expert-major, token order inside an expert):
// slotToken[slot] = token, pairSlot[pair] = slot.
extern "C" __global__ void moe_group(const int* chosen, int pairs, int k, int experts, int* offsets, int* slotToken, int* pairSlot)
{
    extern __shared__ int counts[];   // [experts + 1]
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    unsigned below = (1u << lane) - 1u;
    for (int e = warp; e < experts; e += warps)
    {
        int n = 0;
        for (int base = 0; base < pairs; base += 32)
        {
            int p = base + lane;
            unsigned hit = __ballot_sync(0xffffffffu, p < pairs && chosen[p] == e);
            n += __popc(hit);
        }
        if (lane == 0) counts[e] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        int run = 0;
        for (int e = 0; e < experts; e++) { int c = counts[e]; counts[e] = run; offsets[e] = run; run += c; }
        counts[experts] = run;
        offsets[experts] = run;
    }
    __syncthreads();
    for (int e = warp; e < experts; e += warps)
    {
        int at = counts[e];
        for (int base = 0; base < pairs; base += 32)
        {
            int p = base + lane;
            bool mine = p < pairs && chosen[p] == e;
            unsigned hit = __ballot_sync(0xffffffffu, mine);
            if (mine)
            {
                int slot = at + __popc(hit & below);
                slotToken[slot] = p / k;
                pairSlot[p] = slot;
            }
            at += __popc(hit);
        }
    }
}

// out[t] = sum_j weights[t, j] * expertOut[pairSlot[t*k + j]]  (float32 sum, in choice order).
extern "C" __global__ void moe_combine(const void* expertOut, int dtIn, const int* pairSlot, const float* weights, int k,
    void* out, int dtOut, int tokens, int hidden)
{
    i64 n = (i64)tokens * hidden;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / hidden, c = i % hidden;
        float acc = 0.0f;
        for (int j = 0; j < k; j++)
            acc += weights[t * k + j] * ld(expertOut, (i64)pairSlot[t * k + j] * hidden + c, dtIn);
        st(out, i, dtOut, acc);
    }
}
