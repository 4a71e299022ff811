using MiniMaxSharp.Config;
using MiniMaxSharp.Training;
using Xunit.Abstractions;

namespace MiniMaxSharp.Tests.Training;

/// <summary>
/// Every parameter tensor's gradient against float64 central differences of the loss computed by the float64
/// reference model (lightning in its recurrent form, so the blocked backward is checked against the definition).
/// Each check covers the backward of every op between that parameter and the loss.
/// </summary>
public sealed class FiniteDifferenceTests(ITestOutputHelper output)
{
    /// <summary>Lightning and softmax layers alternating, attention width 16 on hidden 12, GQA (4 query heads on 2 KV heads), RoPE on half of each head,
    /// block size 4 with documents of 11, 6, 5 and 1 tokens (not multiples of it), some labels ignored.</summary>
    private static ModelConfig Config() => TestModels.SmallConfig(layers: 4, hidden: 12, heads: 4, kvHeads: 2, headDim: 4,
        experts: 4, topK: 2, inter: 12, vocab: 23, blockSize: 4, partialRotary: 0.5, softmaxEvery: 2);

    private static TrainingExample[] Batch(ModelConfig c)
    {
        var a = TestModels.RandomIds(11, c.VocabSize, 5);
        var b = TestModels.RandomIds(6, c.VocabSize, 6);
        var labelsB = (int[])b.Clone();
        labelsB[2] = TrainingExample.IgnoreIndex;
        // A packed row with one-token documents (the decode path of the forward, nothing to predict) around a 5-token one.
        var packed = TestModels.RandomIds(7, c.VocabSize, 7);
        return [TrainingExample.FromIds(a), new TrainingExample(b, labelsB), TrainingExample.FromIds(packed, [1, 5, 1])];
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void EveryParameterMatchesCentralDifferences(bool aux, bool tied)
    {
        // A large coefficient makes the load-balancing gradient a visible part of every router's gradient.
        var c = Config() with { RouterAuxLossCoef = aux ? 0.5f : 0.001f, TieWordEmbeddings = tied };
        Assert.Equal(2, c.RotaryDim);
        var weights = TestModels.Weights(c, seed: 11);
        Assert.Equal(!tied, weights.ContainsKey("lm_head.weight"));
        var batch = Batch(c);
        using var model = TrainingTestModels.Build(c, weights);
        var report = model.ForwardBackward(batch, aux);
        var analytic = TrainingTestModels.Gradients(model);
        var w = TrainingTestModels.ToDouble(weights);

        double reference = TrainingTestModels.ReferenceLoss(c, w, batch, aux);
        Assert.True(Math.Abs(report.Total - reference) <= 1e-5 * reference, $"loss {report.Total} vs float64 reference {reference}");
        if (aux) Assert.True(report.AuxLoss > 0);
        else Assert.Equal(0, report.AuxLoss);

        double scale = analytic.Values.Max(g => g.Max(MathF.Abs));
        var rng = new Random(3);
        double worst = 0;
        string worstAt = "";
        const double h = 1e-5;
        foreach (var (name, g) in analytic)
        {
            int argmax = 0;
            for (int i = 1; i < g.Length; i++) if (Math.Abs(g[i]) > Math.Abs(g[argmax])) argmax = i;
            foreach (int i in new[] { argmax, rng.Next(g.Length), rng.Next(g.Length) })
            {
                var p = w[name];
                double orig = p[i];
                p[i] = orig + h;
                double plus = TrainingTestModels.ReferenceLoss(c, w, batch, aux);
                p[i] = orig - h;
                double minus = TrainingTestModels.ReferenceLoss(c, w, batch, aux);
                p[i] = orig;
                double fd = (plus - minus) / (2 * h);
                double err = Math.Abs(g[i] - fd) / Math.Max(Math.Abs(fd), 1e-3 * scale);
                if (err > worst) (worst, worstAt) = (err, $"{name}[{i}]: analytic {g[i]:E4}, finite difference {fd:E4}");
            }
        }
        Assert.Equal(!tied, analytic.ContainsKey("lm_head.weight"));
        output.WriteLine($"aux={aux}, tied={tied}: {analytic.Count} tensors; worst relative error {worst:E3} at {worstAt}");
        Assert.True(worst <= 1e-3, $"worst relative error {worst:E3} at {worstAt}");
    }
}
