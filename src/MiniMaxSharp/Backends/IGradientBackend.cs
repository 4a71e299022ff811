namespace MiniMaxSharp.Backends;

/// <summary>
/// Backward passes of the op set (<see cref="IComputeBackend"/>), for training. Each op takes the
/// forward inputs it needs (recomputing cheap intermediates rather than storing them) and the gradient
/// of the loss with respect to the forward output (dOutput). Gradients of weights are always ADDED to
/// (so several micro-batches can accumulate); gradients of activations are written unless
/// <c>accumulate</c> says otherwise. All gradients are float32 tensors of their forward input's shape.
/// Sequences of a layout are independent documents starting at position 0 from a zero state.
/// </summary>
public interface IGradientBackend
{
    /// <summary>The target value of a row that has no target (Hugging Face's ignore_index).</summary>
    public const int IgnoredTarget = -100;

    /// <summary>Sets every element of a float32 tensor to zero.</summary>
    void Clear(DeviceTensor tensor);

    /// <summary>dTable[ids[t]] += dOutput[t].</summary>
    void EmbeddingBackward(ReadOnlySpan<int> ids, DeviceTensor dOutput, DeviceTensor dTable);

    /// <summary>Backward of output = weight ⊙ x / sqrt(mean(x²) + eps): dX (= or +=), dWeight +=.</summary>
    void RmsNormBackward(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor dOutput,
        DeviceTensor dX, bool accumulate, DeviceTensor dWeight);

    /// <summary>Backward of output = x · weightᵀ: dX (= or +=) dOutput · weight (skipped when dX is null); dWeight += dOutputᵀ · x.</summary>
    void MatMulBackward(DeviceTensor x, DeviceTensor weight, DeviceTensor dOutput,
        DeviceTensor? dX, bool accumulate, DeviceTensor dWeight);

    /// <summary>Backward of output = sigmoid(gate) ⊙ x: writes dGate and dX.</summary>
    void SigmoidGateBackward(DeviceTensor gate, DeviceTensor x, DeviceTensor dOutput, DeviceTensor dGate, DeviceTensor dX);

    /// <summary>
    /// Backward of <see cref="IComputeBackend.LightningAttention"/> from zero states, including the SiLU:
    /// writes dQkv [T, 3·H·d] from dOutput [T, H·d]. The state gradient is carried backwards across blocks.
    /// </summary>
    void LightningAttentionBackward(DeviceTensor qkv, BatchLayout layout, ReadOnlySpan<float> slopes,
        int headDim, int blockSize, DeviceTensor dOutput, DeviceTensor dQkv);

    /// <summary>Backward of <see cref="IComputeBackend.Rope"/>: rotates dX back by the same angles, in place.</summary>
    void RopeBackward(DeviceTensor dX, BatchLayout layout, int headDim, int rotaryDim, double theta);

    /// <summary>
    /// Backward of causal GQA softmax attention over the step's own (rotated) q, k, v, every sequence
    /// starting at position 0: writes dQ, dK, dV.
    /// </summary>
    void SoftmaxAttentionBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        AttentionShape shape, DeviceTensor dOutput, DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV);

    /// <summary>
    /// Routing statistics for the load-balancing loss: slotCounts[e] += number of (token, slot) pairs routed
    /// to e; probabilitySums[e] += Σ_t softmax(x·routerᵀ)[t, e].
    /// </summary>
    void RouterStatistics(DeviceTensor x, DeviceTensor router, int topK, Span<double> slotCounts, Span<double> probabilitySums);

    /// <summary>
    /// Backward of <see cref="IComputeBackend.MixtureOfExperts"/>: the gradient flows through the experts and
    /// through the renormalised top-k weights into the router logits. routerProbabilityGradient[e] (may be
    /// empty) is added to ∂loss/∂p[t, e] for every token (the load-balancing loss). dX (= or +=);
    /// dRouter and the experts' gradients +=.
    /// </summary>
    void MixtureOfExpertsBackward(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK,
        DeviceTensor dOutput, ReadOnlySpan<float> routerProbabilityGradient, DeviceTensor dX, bool accumulate,
        DeviceTensor dRouter, IReadOnlyList<ExpertWeights> dExperts);

    /// <summary>
    /// The language-model head fused with cross-entropy: logits = hidden · lmHeadᵀ, processed a chunk of rows at
    /// a time so that [T, vocab] is never stored whole. targets[t] = <see cref="IgnoredTarget"/> ignores row t. Returns the SUM of the
    /// row losses (float64); writes dHidden and adds to dLmHead the gradient of gradientScale × that sum.
    /// </summary>
    double LmHeadCrossEntropy(DeviceTensor hidden, DeviceTensor lmHead, ReadOnlySpan<int> targets, float gradientScale,
        DeviceTensor dHidden, DeviceTensor dLmHead);

    // ---- optimiser ----
    /// <summary>Σ x² over a float32 tensor, accumulated in float64 (global gradient norm).</summary>
    double SumOfSquares(DeviceTensor tensor);

    /// <summary>
    /// <see cref="SumOfSquares(DeviceTensor)"/> of each tensor into <paramref name="sums"/>, the same values; a device
    /// backend brings them back in one transfer instead of one per tensor.
    /// </summary>
    void SumsOfSquares(IReadOnlyList<DeviceTensor> tensors, Span<double> sums)
    {
        if (sums.Length != tensors.Count) throw new ArgumentException($"{sums.Length} sums for {tensors.Count} tensors");
        for (int i = 0; i < tensors.Count; i++) sums[i] = SumOfSquares(tensors[i]);
    }

    /// <summary>
    /// One AdamW update of a float32 parameter from its gradient, in place (PyTorch's AdamW):
    /// p ← p·(1 − lr·weightDecay); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    /// p ← p − lr·(m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + eps). step counts from 1.
    /// </summary>
    void AdamWUpdate(DeviceTensor parameter, DeviceTensor gradient, DeviceTensor firstMoment, DeviceTensor secondMoment,
        AdamWStep step);
}

/// <summary>The hyper-parameters of one AdamW update (see <see cref="IGradientBackend.AdamWUpdate"/>).</summary>
public readonly record struct AdamWStep(double LearningRate, double Beta1, double Beta2, double Epsilon, double WeightDecay, int Step);
