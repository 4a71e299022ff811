// Backward passes (training), the optimiser and the fused LM head + cross-entropy's row kernel. Training runs
// in float32 throughout, so these kernels take float32 tensors only. Written for correctness first: grid-stride
// loops, one block per row where a row needs a reduction, atomics where several rows add into one weight row.

// Block reductions for blocks of exactly BW_THREADS threads.
#define BW_THREADS 256

__device__ float block_max_256(float v)
{
    __shared__ float part[BW_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float t = lane < BW_THREADS / 32 ? part[lane] : NEG_INF;
    return warp_max(t);
}

// float64 sum over the block through shared memory (no double shuffles needed); every thread gets the result.
__device__ double block_sum_double_256(double v)
{
    __shared__ double buf[BW_THREADS];
    __syncthreads();
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = BW_THREADS / 2; s > 0; s >>= 1)
    {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    return buf[0];
}

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// dTable[ids[t], c] += dOut[t, c]; repeated ids add through atomics.
extern "C" __global__ void embedding_backward(const float* dOut, const int* ids, float* dTable, int tokens, int hidden)
{
    i64 n = (i64)tokens * hidden;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / hidden, c = i % hidden;
        atomicAdd(dTable + (i64)ids[t] * hidden + c, dOut[i]);
    }
}

// One block of BW_THREADS per row. y = w ⊙ x·r, r = 1/sqrt(mean(x²)+eps):
//   dx = r·(w⊙dy) − x·(r³/n)·Σ(w⊙dy⊙x)   (written, or added when accumulate); invRms[row] = r for the weight pass.
extern "C" __global__ void rms_norm_backward(const float* x, const float* w, const float* dOut, float* dX, float* invRms,
    int cols, float eps, int accumulate)
{
    i64 base = (i64)blockIdx.x * cols;
    double ss = 0.0, dot = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
    {
        float xv = x[base + c];
        ss += (double)xv * xv;
        dot += (double)w[c] * dOut[base + c] * xv;
    }
    ss = block_sum_double_256(ss);
    dot = block_sum_double_256(dot);
    double r = 1.0 / sqrt(ss / cols + (double)eps);
    double k = r * r * r / cols * dot;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
    {
        float v = (float)(r * w[c] * dOut[base + c] - x[base + c] * k);
        dX[base + c] = accumulate ? dX[base + c] + v : v;
    }
    if (threadIdx.x == 0) invRms[blockIdx.x] = (float)r;
}

// dW[c] += Σ_rows dOut[row, c]·x[row, c]·invRms[row]. grid (column blocks, row chunks of rowsPerBlock): each
// thread sums its column over the chunk (coalesced across the block), then one atomic per chunk.
extern "C" __global__ void rms_norm_weight_grad(const float* x, const float* dOut, const float* invRms, float* dW,
    int rows, int cols, int rowsPerBlock)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    int first = blockIdx.y * rowsPerBlock;
    int last = min(rows, first + rowsPerBlock);
    float acc = 0.0f;
    for (int r = first; r < last; r++)
    {
        i64 at = (i64)r * cols + c;
        acc += dOut[at] * x[at] * invRms[r];
    }
    if (first < last) atomicAdd(dW + c, acc);
}

// out = sigmoid(gate) ⊙ x: dGate = dOut·x·s(1−s), dX = dOut·s.
extern "C" __global__ void sigmoid_gate_backward(const float* gate, const float* x, const float* dOut, float* dGate, float* dX, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        float s = sigmoidf(gate[i]);
        float d = dOut[i];
        dGate[i] = d * x[i] * s * (1.0f - s);
        dX[i] = d * s;
    }
}

// One block of BW_THREADS per row of logits [rows, vocab]: rowLoss = logsumexp − logit[target], and the row is
// overwritten with its gradient scale·(softmax − onehot(target)). A negative target (ignored row) zeroes the row
// and its loss.
extern "C" __global__ void cross_entropy_rows(float* logits, const int* targets, int vocab, float scale, double* rowLoss)
{
    float* row = logits + (i64)blockIdx.x * vocab;
    int target = targets[blockIdx.x];
    if (target < 0)
    {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) row[j] = 0.0f;
        if (threadIdx.x == 0) rowLoss[blockIdx.x] = 0.0;
        return;
    }
    float targetLogit = row[target];
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max_256(mx);
    double sum = 0.0;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += (double)expf(row[j] - mx);
    sum = block_sum_double_256(sum);   // its barriers also order every read of row[target] before the writes below
    double lse = (double)mx + log(sum);
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) row[j] = (float)(exp((double)row[j] - lse) * scale);
    __syncthreads();
    if (threadIdx.x == 0)
    {
        row[target] -= scale;
        rowLoss[blockIdx.x] = lse - (double)targetLogit;
    }
}

// Σ x² in float64: partial[block] per block of BW_THREADS (the host adds the partials).
extern "C" __global__ void sum_of_squares(const float* x, i64 n, double* partial)
{
    double acc = 0.0;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        acc += (double)x[i] * x[i];
    acc = block_sum_double_256(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// PyTorch's AdamW, in float64 arithmetic as the CPU reference: stepSize = lr/(1−β1^t), correction2 = sqrt(1−β2^t),
// decay = 1 − lr·weightDecay.
extern "C" __global__ void adamw_update(float* p, const float* g, float* m, float* v, i64 n,
    double b1, double b2, double stepSize, double correction2, double eps, double decay)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        double gi = g[i];
        double mi = b1 * m[i] + (1.0 - b1) * gi;
        double vi = b2 * v[i] + (1.0 - b2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        p[i] = (float)(p[i] * decay - stepSize * mi / (sqrt(vi) / correction2 + eps));
    }
}

// ---- mixture of experts ----

// One thread per token: probs[t] = softmax(logits[t]) in float32.
extern "C" __global__ void router_probabilities(const float* logits, int tokens, int experts, float* probs)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= tokens) return;
    const float* row = logits + (i64)t * experts;
    float mx = NEG_INF;
    for (int e = 0; e < experts; e++) mx = fmaxf(mx, row[e]);
    float sum = 0.0f;
    for (int e = 0; e < experts; e++) sum += expf(row[e] - mx);
    for (int e = 0; e < experts; e++) probs[(i64)t * experts + e] = expf(row[e] - mx) / sum;
}

// One block of BW_THREADS per expert e: out[e] = #pairs routed to e, out[experts + e] = Σ_t probs[t, e] (float64).
extern "C" __global__ void router_statistics(const float* probs, const int* chosen, int tokens, int experts, int k, double* out)
{
    int e = blockIdx.x;
    double count = 0.0, sum = 0.0;
    for (i64 p = threadIdx.x; p < (i64)tokens * k; p += blockDim.x) count += chosen[p] == e ? 1.0 : 0.0;
    for (i64 t = threadIdx.x; t < tokens; t += blockDim.x) sum += probs[t * experts + e];
    count = block_sum_double_256(count);
    sum = block_sum_double_256(sum);
    if (threadIdx.x == 0)
    {
        out[e] = count;
        out[experts + e] = sum;
    }
}

// act = silu(h1) ⊙ h3 (kept apart from h1, which the backward needs).
extern "C" __global__ void silu_mul_into(const float* h1, const float* h3, float* act, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        act[i] = silu(h1[i]) * h3[i];
}

// One block of BW_THREADS per (token, choice) pair p (token t = p / k, slot = pairSlot[p]):
// dWeights[p] = dOut[t]·yg[slot] (∂L/∂w), dyg[slot] = weights[p]·dOut[t] (the expert output's gradient).
extern "C" __global__ void moe_pair_backward(const float* dOut, const float* yg, const int* pairSlot, const float* weights,
    int k, int hidden, float* dWeights, float* dyg)
{
    int p = blockIdx.x;
    i64 t = p / k, slot = pairSlot[p];
    float w = weights[p];
    double dot = 0.0;
    for (int c = threadIdx.x; c < hidden; c += blockDim.x)
    {
        float g = dOut[t * hidden + c];
        dot += (double)g * yg[slot * hidden + c];
        dyg[slot * hidden + c] = w * g;
    }
    dot = block_sum_double_256(dot);
    if (threadIdx.x == 0) dWeights[p] = (float)dot;
}

// SwiGLU backward in place: h1 ← dact·h3·silu'(h1), h3 ← dact·silu(h1).
extern "C" __global__ void swiglu_backward(float* h1, float* h3, const float* dact, i64 n)
{
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        float a = h1[i], u = h3[i], da = dact[i];
        float s = sigmoidf(a);
        h1[i] = da * u * (s * (1.0f + a * (1.0f - s)));
        h3[i] = da * (a * s);
    }
}

// dX[t, c] (= or +=) Σ_j dxg[pairSlot[t·k + j], c], in choice order (deterministic; no atomics).
extern "C" __global__ void moe_scatter_add(const float* dxg, const int* pairSlot, int k, float* dX, int tokens, int hidden, int accumulate)
{
    i64 n = (i64)tokens * hidden;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / hidden, c = i % hidden;
        float acc = 0.0f;
        for (int j = 0; j < k; j++) acc += dxg[(i64)pairSlot[t * k + j] * hidden + c];
        dX[i] = accumulate ? dX[i] + acc : acc;
    }
}

// One thread per token: the router logits' gradient through the renormalised top-k weights and the softmax.
// ∂L/∂p_j = (∂L/∂w_j − Σ_i w_i ∂L/∂w_i) / N for chosen j (N = Σ of the chosen probabilities), plus aux[e] for every
// e (load-balancing loss; aux may be null); ∂L/∂z_e = p_e (∂L/∂p_e − Σ_f p_f ∂L/∂p_f). float64 as the reference.
extern "C" __global__ void moe_router_backward(const float* probs, const int* chosen, const float* weights, const float* dWeights,
    const float* aux, int tokens, int experts, int k, float* dLogits)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= tokens) return;
    const float* p = probs + (i64)t * experts;
    const int* ch = chosen + (i64)t * k;
    double norm = 0.0, weighted = 0.0;
    for (int j = 0; j < k; j++)
    {
        norm += p[ch[j]];
        weighted += (double)weights[(i64)t * k + j] * dWeights[(i64)t * k + j];
    }
    double mean = 0.0;
    for (int pass = 0; pass < 2; pass++)
    {
        for (int e = 0; e < experts; e++)
        {
            double dp = aux ? (double)aux[e] : 0.0;
            for (int j = 0; j < k; j++)
                if (ch[j] == e) dp += (dWeights[(i64)t * k + j] - weighted) / norm;
            if (pass == 0) mean += p[e] * dp;
            else dLogits[(i64)t * experts + e] = (float)(p[e] * (dp - mean));
        }
    }
}
