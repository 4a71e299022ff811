using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Model;

/// <summary>The CPU backend's model against the float64 reference of the spec, on random weights.</summary>
public class ModelVsReferenceTests
{
    [Theory]
    [InlineData(1.0, DType.F32, 37)]
    [InlineData(0.5, DType.F32, 37)]     // partial RoPE: half of each head rotated
    [InlineData(0.25, DType.BF16, 29)]   // bf16 weights, widened in the kernels
    [InlineData(1.0, DType.F16, 20)]
    public void LogitsMatchReference(double partialRotary, DType dtype, int length)
    {
        var config = TestModels.SmallConfig(partialRotary: partialRotary);
        var weights = TestModels.Weights(config, seed: 7, dtype);
        using var model = TestModels.Build(config, weights);
        var ids = TestModels.RandomIds(length, config.VocabSize, seed: 3);
        using var seq = model.CreateSequence(256);
        float[] logits = model.Forward([seq], [ids], LogitsSelection.All);
        var (refLogits, _) = TestModels.Reference(config, weights).Run(ids);
        double err = TestModels.RelativeError(logits, TestModels.Flatten(refLogits));
        Assert.True(err <= 1e-4, $"relative error {err:E3}");
    }
}
