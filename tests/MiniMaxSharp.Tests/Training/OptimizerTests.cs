using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

/// <summary>AdamW, the learning-rate schedule, clipping and accumulation against values worked out by hand.</summary>
public sealed class OptimizerTests
{
    [Fact]
    public void AdamWUpdateMatchesTwoHandComputedSteps()
    {
        using var backend = new CpuBackend(1);
        using var p = backend.Allocate(DType.F32, 2);
        using var g = backend.Allocate(DType.F32, 2);
        using var m = backend.Allocate(DType.F32, 2);
        using var v = backend.Allocate(DType.F32, 2);
        backend.Upload([1f, -2f], p);
        var values = new float[2];
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/|g| after the decay p·(1 − lr·wd).
        backend.Upload([0.5f, 0.1f], g);
        backend.AdamWUpdate(p, g, m, v, new AdamWStep(0.1, 0.9, 0.999, 1e-8, 0.01, 1));
        backend.Download(p, values);
        Assert.Equal(0.899, values[0], 6);
        Assert.Equal(-2.098, values[1], 6);
        // Step 2: m = 0.9·0.05 − 0.1·0.25 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
        // p = 0.899·0.999 − 0.1·(0.02/0.19)/(sqrt(0.00031225/0.001999)) = 0.8714673.
        backend.Upload([-0.25f, 0.1f], g);
        backend.AdamWUpdate(p, g, m, v, new AdamWStep(0.1, 0.9, 0.999, 1e-8, 0.01, 2));
        backend.Download(p, values);
        Assert.Equal(0.8714673, values[0], 6);
        Assert.Equal(-2.1959020, values[1], 6);
        backend.Download(m, values);
        Assert.Equal(0.02, values[0], 7);
        backend.Download(v, values);
        Assert.Equal(0.00031225, values[0], 9);
    }

    [Fact]
    public void AdamWDecaysEveryWeightButTheNorms()
    {
        var c = TestModels.SmallConfig(layers: 2, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, experts: 2, topK: 1, inter: 8, vocab: 11, softmaxEvery: 2);
        var weights = TestModels.Weights(c, seed: 4);
        using var model = TrainingTestModels.Build(c, weights, threads: 1);
        using var adam = new AdamW(model, new AdamWOptions { WeightDecay = 0.5 });
        var before = TrainableWeights.Named(model.Weights).ToDictionary(p => p.Name, p => Download(model.Backend, p.Tensor));
        adam.Step(0.1);   // zero gradients: only the decay moves the weights, by the factor 1 − 0.1·0.5
        foreach (var (name, t) in TrainableWeights.Named(model.Weights))
        {
            var after = Download(model.Backend, t);
            bool norm = name.EndsWith("norm.weight", StringComparison.Ordinal);
            Assert.Equal(!norm, adam.Decays(name));
            for (int i = 0; i < after.Length; i++)
            {
                double expected = norm ? before[name][i] : before[name][i] * 0.95;
                Assert.True(Math.Abs(after[i] - expected) <= 1e-6 * Math.Abs(expected), $"{name}[{i}]: {after[i]} vs {expected}");
            }
        }
        Assert.Equal(1, adam.StepCount);
    }

    [Fact]
    public void WarmupThenCosine()
    {
        var s = new WarmupCosineSchedule(Peak: 1e-3, WarmupSteps: 4, TotalSteps: 12, Minimum: 1e-4);
        Assert.Equal(2.5e-4, s.At(0), 12);
        Assert.Equal(7.5e-4, s.At(2), 12);
        Assert.Equal(1e-3, s.At(3), 12);
        Assert.Equal(1e-3, s.At(4), 12);                     // cosine at progress 0
        Assert.Equal(5.5e-4, s.At(8), 12);                   // half-way: min + (peak − min)/2
        Assert.Equal(1e-4 + 9e-4 * 0.5 * (1 + Math.Cos(Math.PI / 4)), s.At(6), 12);
        Assert.Equal(1e-4, s.At(12), 12);
        Assert.Equal(1e-4, s.At(30), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.At(-1));
    }

    [Fact]
    public void ClippingScalesAllGradientsToTheMaximumNorm()
    {
        var c = TestModels.SmallConfig(layers: 2, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, experts: 2, topK: 1, inter: 8, vocab: 11, softmaxEvery: 2);
        using var model = TrainingTestModels.Build(c, TestModels.Weights(c, seed: 4), threads: 1);
        var norm = model.Gradients.FinalNorm;
        var router = model.Gradients.Layers[1].Router;
        var routerValues = new float[router.ElementCount];
        routerValues[3] = 4f;
        var normValues = new float[norm.ElementCount];
        normValues[0] = 3f;
        model.Backend.Upload(routerValues, router);
        model.Backend.Upload(normValues, norm);
        Assert.Equal(5.0, GradientClipping.ClipByGlobalNorm(model, 10.0), 12);   // under the limit: unchanged
        Assert.Equal(3f, Download(model.Backend, norm)[0]);
        Assert.Equal(5.0, GradientClipping.ClipByGlobalNorm(model, 1.0), 12);
        Assert.Equal(0.6f, Download(model.Backend, norm)[0], 6);
        Assert.Equal(0.8f, Download(model.Backend, router)[3], 6);
        Assert.Equal(1.0, GradientClipping.ClipByGlobalNorm(model, 0), 5);
    }

    [Fact]
    public void AccumulatedMicroBatchesGiveTheGradientsOfOneBatch()
    {
        var c = TestModels.SmallConfig(layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, experts: 4, topK: 2, inter: 12, vocab: 23, blockSize: 4, softmaxEvery: 2);
        var weights = TestModels.Weights(c, seed: 8);
        TrainingExample[] all =
        [
            TrainingExample.FromIds(TestModels.RandomIds(9, c.VocabSize, 1)),
            TrainingExample.FromIds(TestModels.RandomIds(14, c.VocabSize, 2), [6, 8]),
            TrainingExample.FromIds(TestModels.RandomIds(5, c.VocabSize, 3)),
        ];
        using var whole = TrainingTestModels.Build(c, weights);
        using var split = TrainingTestModels.Build(c, weights);
        using var adamWhole = new AdamW(whole, new AdamWOptions());
        using var adamSplit = new AdamW(split, new AdamWOptions());
        var a = TrainingStep.Run(whole, adamWhole, [all], 1e-3, maxGradientNorm: 0);
        var b = TrainingStep.Run(split, adamSplit, [all[..1], all[1..]], 1e-3, maxGradientNorm: 0);
        Assert.Equal(a.TargetCount, b.TargetCount);
        Assert.Equal(a.CrossEntropy, b.CrossEntropy, 6);
        Assert.True(Math.Abs(a.GradientNorm - b.GradientNorm) <= 1e-5 * a.GradientNorm);
        var ga = TrainingTestModels.Gradients(whole);
        var gb = TrainingTestModels.Gradients(split);
        foreach (var (name, g) in ga)
        {
            double err = TestModels.RelativeError(gb[name], g);
            Assert.True(err <= 1e-5, $"{name}: relative error {err:E3}");
        }
    }

    private static float[] Download(IComputeBackend backend, DeviceTensor t)
    {
        var v = new float[t.ElementCount];
        backend.Download(t, v);
        return v;
    }
}
