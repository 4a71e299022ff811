using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends;

/// <summary>The weights of one expert of a mixture-of-experts layer: w1, w3 [I, hidden], w2 [hidden, I].</summary>
public sealed record ExpertWeights(DeviceTensor W1, DeviceTensor W2, DeviceTensor W3);

/// <summary>A softmax layer's cache of one sequence: rotated keys and values, [capacity, kvHeads·headDim] each.</summary>
public sealed record KvCache(DeviceTensor Keys, DeviceTensor Values) : IDisposable
{
    public int Capacity => (int)Keys.Rows;

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}

/// <summary>Shape of a softmax attention layer.</summary>
public readonly record struct AttentionShape(int Heads, int KvHeads, int HeadDim)
{
    public int Width => Heads * HeadDim;
    public int KvWidth => KvHeads * HeadDim;
}

/// <summary>
/// The op set of the model. The model code only calls these; each backend (CPU reference, CUDA)
/// implements every op, and each op of a non-reference backend is tested against the CPU backend.
/// Activations are float32 [tokens, width] tensors; weights may be F32, BF16 or F16.
/// Ops run in order on the backend's own stream: nothing implies a copy to the host
/// except <see cref="Download"/>.
/// </summary>
public interface IComputeBackend : IDisposable
{
    string Name { get; }

    /// <summary>Element type of activations and KV caches on this backend (F32 on the CPU, BF16 on CUDA).
    /// Lightning states, router probabilities and logits are always F32.</summary>
    DType ActivationType { get; }

    /// <summary>Element type of the model's residual stream (the hidden state between layers and the
    /// branch outputs added to it). A backend with narrow activations may keep it wider, because every
    /// layer adds to it and its roundings accumulate over the layer stack.</summary>
    DType ResidualType => ActivationType;

    // ---- memory ----
    /// <summary>A new zero-filled tensor.</summary>
    DeviceTensor Allocate(DType type, params int[] shape);
    /// <summary>Makes a weight usable by the ops; the CPU backend aliases host memory (no copy).</summary>
    DeviceTensor LoadWeight(HostTensor source);
    void Upload(ReadOnlySpan<float> source, DeviceTensor destination);
    void Download(DeviceTensor source, Span<float> destination);
    /// <summary>Copies rows [0, rows) of <paramref name="source"/> to the first rows of <paramref name="destination"/> (same width).</summary>
    void CopyRows(DeviceTensor source, DeviceTensor destination, int rows);
    /// <summary>destination[i] = source[rowIndices[i]] for float32 [rows, width] tensors.</summary>
    void GatherRows(DeviceTensor source, ReadOnlySpan<int> rowIndices, DeviceTensor destination);

    // ---- ops ----
    /// <summary>output[t] = table[ids[t]] widened to float32. table [vocab, hidden], output [T, hidden].</summary>
    void Embedding(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output);

    /// <summary>output[t] = weight ⊙ x[t] / sqrt(mean(x[t]²) + eps), row by row. output may alias x.</summary>
    void RmsNorm(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor output);

    /// <summary>output = alpha·a + beta·b element-wise; output may alias a or b.</summary>
    void ScaleAdd(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor output);

    /// <summary>residual = alpha·a + beta·b element-wise, then output = RmsNorm(residual, weight, eps): the
    /// model's residual add and the norm that follows it, which a backend may fuse into one pass.
    /// output may alias a.</summary>
    void ScaleAddRmsNorm(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor residual,
        DeviceTensor weight, float eps, DeviceTensor output)
    {
        ScaleAdd(a, alpha, b, beta, residual);
        RmsNorm(residual, weight, eps, output);
    }

    /// <summary>output[T, out] = x[T, in] · weight[out, in]ᵀ (a Linear layer without bias).</summary>
    void MatMul(DeviceTensor x, DeviceTensor weight, DeviceTensor output);

    /// <summary>outputs[i] = x · weights[i]ᵀ for every i: products of one input (a layer's q, k and v projections),
    /// which a backend may run as one.</summary>
    void MatMulMany(DeviceTensor x, IReadOnlyList<DeviceTensor> weights, IReadOnlyList<DeviceTensor> outputs)
    {
        if (weights.Count != outputs.Count) throw new ArgumentException($"{weights.Count} weights but {outputs.Count} outputs");
        for (int i = 0; i < weights.Count; i++) MatMul(x, weights[i], outputs[i]);
    }

    /// <summary>output = sigmoid(gate) ⊙ x element-wise; output may alias either.</summary>
    void SigmoidGate(DeviceTensor gate, DeviceTensor x, DeviceTensor output);

    /// <summary>output = sigmoid(gate) ⊙ RmsNorm(x, weight, eps): the lightning block's output norm and its gate,
    /// which a backend may fuse into one pass. output may alias x (not gate).</summary>
    void RmsNormSigmoidGate(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor gate, DeviceTensor output)
    {
        RmsNorm(x, weight, eps, output);
        SigmoidGate(gate, output, output);
    }

    /// <summary>
    /// Lightning attention over a packed batch. qkv [T, 3·H·d] is the raw projection
    /// (per head [q|k|v]); the op applies SiLU to it, runs the decayed linear recurrence from each
    /// sequence's state [H, d, d] (updated in place) and writes output [T, H·d].
    /// slopes[h] is the decay rate s_h of this layer.
    /// </summary>
    void LightningAttention(DeviceTensor qkv, BatchLayout layout, IReadOnlyList<DeviceTensor> states,
        ReadOnlySpan<float> slopes, int headDim, int blockSize, DeviceTensor output);

    /// <summary>
    /// Rotates the first rotaryDim channels of every head of x [T, heads·headDim] in place (NeoX halves),
    /// token t of sequence s at position StartPosition + (t - TokenOffset).
    /// </summary>
    void Rope(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta);

    /// <summary>
    /// Causal softmax attention with GQA: appends k, v [T, KV·d] (already rotated) to each sequence's
    /// cache at its positions, then attends q [T, H·d] over the cache up to each token's position.
    /// output [T, H·d]. Scale 1/sqrt(d).
    /// </summary>
    void SoftmaxAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        IReadOnlyList<KvCache> caches, AttentionShape shape, DeviceTensor output);

    /// <summary>
    /// Top-k mixture of experts: p = softmax(x·routerᵀ) in float32, the k largest renormalised,
    /// output[t] = Σ w_e · w2_e(silu(w1_e x) ⊙ w3_e x). x, output [T, hidden].
    /// </summary>
    void MixtureOfExperts(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts,
        int topK, DeviceTensor output);

    /// <summary>ScaleAddRmsNorm into <paramref name="normed"/>, then MixtureOfExperts of <paramref name="normed"/>
    /// into <paramref name="output"/>: a layer's post-attention residual add and norm and its MoE, which a backend may
    /// partly fuse (the norm and the routing in one pass). normed may alias a.</summary>
    void ScaleAddRmsNormMoe(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor residual,
        DeviceTensor weight, float eps, DeviceTensor normed, DeviceTensor router, IReadOnlyList<ExpertWeights> experts,
        int topK, DeviceTensor output)
    {
        ScaleAddRmsNorm(a, alpha, b, beta, residual, weight, eps, normed);
        MixtureOfExperts(normed, router, experts, topK, output);
    }

    /// <summary>Blocks until every op issued so far has finished.</summary>
    void Synchronize();
}
