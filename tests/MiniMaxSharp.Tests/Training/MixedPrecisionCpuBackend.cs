using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Training;

/// <summary>
/// The CPU backend behind the bf16 product-mode interface, for host-side tests of the code that drives that mode (the
/// products stay float32 here): it records the precision set and the weight-copy scopes opened and closed. With
/// <see cref="EmulateBf16Operands"/> and the bf16 precision set, the operands of the products the CUDA mode runs in bf16
/// (matmuls and their backward, the experts, the LM head; not the router) are rounded to bf16 first: an estimate of that
/// mode's error from the host (the products' own intermediates, e.g. the experts' SwiGLU output, are not rounded here).
/// </summary>
internal sealed class MixedPrecisionCpuBackend(int threads) : IComputeBackend, IGradientBackend, IMixedPrecisionTraining
{
    private readonly CpuBackend _cpu = new(threads);
    private IGradientBackend Grad => _cpu;

    public TrainingPrecision ProductPrecision { get; set; }
    public bool EmulateBf16Operands { get; init; }
    private bool Rounding => EmulateBf16Operands && ProductPrecision == TrainingPrecision.BF16;

    /// <summary>The tensor itself, or (rounding) a new float32 copy rounded to bf16, listed in <paramref name="temporaries"/>.</summary>
    private DeviceTensor Operand(DeviceTensor t, List<DeviceTensor> temporaries)
    {
        if (!Rounding) return t;
        var values = new float[t.ElementCount];
        _cpu.Download(t, values);
        for (int i = 0; i < values.Length; i++)
            values[i] = BFloat16Conversions.BFloat16ToSingle(BFloat16Conversions.SingleToBFloat16(values[i]));
        var copy = _cpu.Allocate(DType.F32, t.Shape);
        _cpu.Upload(values, copy);
        temporaries.Add(copy);
        return copy;
    }

    private IReadOnlyList<ExpertWeights> Operands(IReadOnlyList<ExpertWeights> experts, List<DeviceTensor> temporaries) =>
        Rounding ? [.. experts.Select(e => new ExpertWeights(Operand(e.W1, temporaries), Operand(e.W2, temporaries), Operand(e.W3, temporaries)))] : experts;

    private static void Free(List<DeviceTensor> temporaries)
    {
        foreach (var t in temporaries) t.Dispose();
    }
    public List<TrainingPrecision> PrecisionInScopes { get; } = [];
    public int OpenScopes { get; private set; }
    public int ScopesOpened { get; private set; }

    public int DeepestNesting { get; private set; }

    public IDisposable WeightCopyScope()
    {
        OpenScopes++;
        ScopesOpened++;
        DeepestNesting = Math.Max(DeepestNesting, OpenScopes);
        PrecisionInScopes.Add(ProductPrecision);
        return new Scope(this);
    }

    private sealed class Scope(MixedPrecisionCpuBackend owner) : IDisposable
    {
        public void Dispose() => owner.OpenScopes--;
    }

    public string Name => "mixed-cpu";
    public DType ActivationType => _cpu.ActivationType;
    public DType ResidualType => ((IComputeBackend)_cpu).ResidualType;
    public DeviceTensor Allocate(DType type, params int[] shape) => _cpu.Allocate(type, shape);
    public DeviceTensor LoadWeight(HostTensor source) => _cpu.LoadWeight(source);
    public void Upload(ReadOnlySpan<float> source, DeviceTensor destination) => _cpu.Upload(source, destination);
    public void Download(DeviceTensor source, Span<float> destination) => _cpu.Download(source, destination);
    public void CopyRows(DeviceTensor source, DeviceTensor destination, int rows) => _cpu.CopyRows(source, destination, rows);
    public void GatherRows(DeviceTensor source, ReadOnlySpan<int> rowIndices, DeviceTensor destination) => _cpu.GatherRows(source, rowIndices, destination);
    public void Embedding(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output) => _cpu.Embedding(table, ids, output);
    public void RmsNorm(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor output) => _cpu.RmsNorm(x, weight, eps, output);
    public void ScaleAdd(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor output) => _cpu.ScaleAdd(a, alpha, b, beta, output);
    public void MatMul(DeviceTensor x, DeviceTensor weight, DeviceTensor output)
    {
        var temporaries = new List<DeviceTensor>();
        _cpu.MatMul(Operand(x, temporaries), Operand(weight, temporaries), output);
        Free(temporaries);
    }
    public void SigmoidGate(DeviceTensor gate, DeviceTensor x, DeviceTensor output) => _cpu.SigmoidGate(gate, x, output);
    public void LightningAttention(DeviceTensor qkv, BatchLayout layout, IReadOnlyList<DeviceTensor> states, ReadOnlySpan<float> slopes, int headDim, int blockSize, DeviceTensor output) =>
        _cpu.LightningAttention(qkv, layout, states, slopes, headDim, blockSize, output);
    public void Rope(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta) => _cpu.Rope(x, layout, headDim, rotaryDim, theta);
    public void SoftmaxAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout, IReadOnlyList<KvCache> caches, AttentionShape shape, DeviceTensor output) =>
        _cpu.SoftmaxAttention(q, k, v, layout, caches, shape, output);
    public void MixtureOfExperts(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK, DeviceTensor output)
    {
        var temporaries = new List<DeviceTensor>();
        _cpu.MixtureOfExperts(x, router, Operands(experts, temporaries), topK, output);
        Free(temporaries);
    }
    public void Synchronize() => _cpu.Synchronize();
    public void Dispose() => _cpu.Dispose();

    public void Clear(DeviceTensor tensor) => Grad.Clear(tensor);
    public void EmbeddingBackward(ReadOnlySpan<int> ids, DeviceTensor dOutput, DeviceTensor dTable) => Grad.EmbeddingBackward(ids, dOutput, dTable);
    public void RmsNormBackward(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor dOutput, DeviceTensor dX, bool accumulate, DeviceTensor dWeight) =>
        Grad.RmsNormBackward(x, weight, eps, dOutput, dX, accumulate, dWeight);
    public void MatMulBackward(DeviceTensor x, DeviceTensor weight, DeviceTensor dOutput, DeviceTensor? dX, bool accumulate, DeviceTensor dWeight)
    {
        var temporaries = new List<DeviceTensor>();
        Grad.MatMulBackward(Operand(x, temporaries), Operand(weight, temporaries), Operand(dOutput, temporaries), dX, accumulate, dWeight);
        Free(temporaries);
    }
    public void SigmoidGateBackward(DeviceTensor gate, DeviceTensor x, DeviceTensor dOutput, DeviceTensor dGate, DeviceTensor dX) =>
        Grad.SigmoidGateBackward(gate, x, dOutput, dGate, dX);
    public void LightningAttentionBackward(DeviceTensor qkv, BatchLayout layout, ReadOnlySpan<float> slopes, int headDim, int blockSize, DeviceTensor dOutput, DeviceTensor dQkv) =>
        Grad.LightningAttentionBackward(qkv, layout, slopes, headDim, blockSize, dOutput, dQkv);
    public void RopeBackward(DeviceTensor dX, BatchLayout layout, int headDim, int rotaryDim, double theta) => Grad.RopeBackward(dX, layout, headDim, rotaryDim, theta);
    public void SoftmaxAttentionBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout, AttentionShape shape, DeviceTensor dOutput, DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV) =>
        Grad.SoftmaxAttentionBackward(q, k, v, layout, shape, dOutput, dQ, dK, dV);
    public void RouterStatistics(DeviceTensor x, DeviceTensor router, int topK, Span<double> slotCounts, Span<double> probabilitySums) =>
        Grad.RouterStatistics(x, router, topK, slotCounts, probabilitySums);
    public void MixtureOfExpertsBackward(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK, DeviceTensor dOutput,
        ReadOnlySpan<float> routerProbabilityGradient, DeviceTensor dX, bool accumulate, DeviceTensor dRouter, IReadOnlyList<ExpertWeights> dExperts)
    {
        // x stays as it is: the router's products are float32 in the CUDA mode too (and routing must match the forward's).
        var temporaries = new List<DeviceTensor>();
        Grad.MixtureOfExpertsBackward(x, router, Operands(experts, temporaries), topK, Operand(dOutput, temporaries), routerProbabilityGradient, dX, accumulate, dRouter, dExperts);
        Free(temporaries);
    }
    public double LmHeadCrossEntropy(DeviceTensor hidden, DeviceTensor lmHead, ReadOnlySpan<int> targets, float gradientScale, DeviceTensor dHidden, DeviceTensor dLmHead)
    {
        var temporaries = new List<DeviceTensor>();
        double loss = Grad.LmHeadCrossEntropy(Operand(hidden, temporaries), Operand(lmHead, temporaries), targets, gradientScale, dHidden, dLmHead);
        Free(temporaries);
        return loss;
    }
    public double SumOfSquares(DeviceTensor tensor) => Grad.SumOfSquares(tensor);
    public void AdamWUpdate(DeviceTensor parameter, DeviceTensor gradient, DeviceTensor firstMoment, DeviceTensor secondMoment, AdamWStep step) =>
        Grad.AdamWUpdate(parameter, gradient, firstMoment, secondMoment, step);
}
