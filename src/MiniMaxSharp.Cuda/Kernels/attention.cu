// Causal softmax attention with GQA over per-sequence KV caches (rotated keys, values: [capacity, KV*d]),
// reference-grade version: one warp per (token, query head), online softmax over the keys 0..position.
// Each lane holds channels lane, lane+32, ... of q and of the output (d <= 32*MAX_PER_LANE).
#define MAX_PER_LANE 8

extern "C" __global__ void softmax_attention_simple(const void* q, int dtQ, void* out, int dtOut,
    const int* tokenSeq, const int* tokenPos, const unsigned long long* keyCaches, const unsigned long long* valueCaches, int dtCache,
    int tokens, int heads, int kvHeads, int d, float scale)
{
    int lane = threadIdx.x & 31;
    int h = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int t = blockIdx.x;
    if (h >= heads || t >= tokens) return;
    int seq = tokenSeq[t], pos = tokenPos[t];
    int kvh = h / (heads / kvHeads);
    i64 kvWidth = (i64)kvHeads * d;
    const void* K = (const void*)keyCaches[seq];
    const void* V = (const void*)valueCaches[seq];
    float qv[MAX_PER_LANE], acc[MAX_PER_LANE];
    int per = (d + 31) / 32;
    for (int c = 0; c < MAX_PER_LANE; c++)
    {
        int ch = lane + 32 * c;
        qv[c] = (c < per && ch < d) ? ld(q, (i64)t * heads * d + (i64)h * d + ch, dtQ) * scale : 0.0f;
        acc[c] = 0.0f;
    }
    float m = NEG_INF, l = 0.0f;
    for (int p = 0; p <= pos; p++)
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
    for (int c = 0; c < MAX_PER_LANE; c++)
    {
        int ch = lane + 32 * c;
        if (c < per && ch < d) st(out, (i64)t * heads * d + (i64)h * d + ch, dtOut, acc[c] / l);
    }
}
