// Lightning attention, reference-grade version: the recurrence S = lambda*S + k^T v, o = q S token by
// token. One block of 32 threads per (32 state columns, head, sequence); thread j owns column j of its
// slice of the float32 state [d, d], kept in shared memory, and reads/writes it in place in the
// sequence's state. SiLU is applied to q, k and v as they are read.
extern "C" __global__ void lightning_recurrent(const void* qkv, int dtIn, void* out, int dtOut,
    const int* tokenOffset, const int* tokenCount, const unsigned long long* states, const float* slopes, int heads, int d)
{
    extern __shared__ float shared[];
    float* S = shared;                 // [d][32]
    float* qs = S + d * 32;            // [d]
    float* ks = qs + d;                // [d]
    int j = threadIdx.x, col = blockIdx.x * 32 + j, h = blockIdx.y, seq = blockIdx.z;
    bool live = col < d;
    float* state = (float*)states[seq] + (i64)h * d * d;
    float lambda = (float)exp(-(double)slopes[h]);
    for (int i = 0; i < d; i++) S[i * 32 + j] = live ? state[(i64)i * d + col] : 0.0f;
    int offset = tokenOffset[seq], count = tokenCount[seq];
    i64 inWidth = 3LL * heads * d, outWidth = (i64)heads * d;
    for (int t = 0; t < count; t++)
    {
        const i64 row = (i64)(offset + t) * inWidth + (i64)h * 3 * d;
        __syncthreads();
        for (int i = j; i < d; i += 32)
        {
            qs[i] = silu(ld(qkv, row + i, dtIn));
            ks[i] = silu(ld(qkv, row + d + i, dtIn));
        }
        float v = live ? silu(ld(qkv, row + 2 * d + col, dtIn)) : 0.0f;
        __syncthreads();
        float acc = 0.0f;
        for (int i = 0; i < d; i++)
        {
            float s = S[i * 32 + j] * lambda + ks[i] * v;
            S[i * 32 + j] = s;
            acc += qs[i] * s;
        }
        if (live) st(out, (i64)(offset + t) * outWidth + (i64)h * d + col, dtOut, acc);
    }
    if (live)
        for (int i = 0; i < d; i++) state[(i64)i * d + col] = S[i * 32 + j];
}
