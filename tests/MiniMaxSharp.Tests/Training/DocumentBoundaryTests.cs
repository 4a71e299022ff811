using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

/// <summary>Packed rows: a document boundary resets the lightning state and masks softmax attention.</summary>
public sealed class DocumentBoundaryTests
{
    [Fact]
    public void PackedRowGivesTheLossAndGradientsOfItsDocumentsRunSeparately()
    {
        // Block size 4; documents of 13 and 9 tokens (a boundary inside a block), a softmax layer with GQA and partial RoPE.
        var c = TestModels.SmallConfig(layers: 4, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, experts: 4, topK: 2, inter: 12,
            vocab: 29, blockSize: 4, partialRotary: 0.5, softmaxEvery: 2);
        var weights = TestModels.Weights(c, seed: 21);
        var a = TestModels.RandomIds(13, c.VocabSize, 1);
        var b = TestModels.RandomIds(9, c.VocabSize, 2);
        using var model = TrainingTestModels.Build(c, weights);

        var packed = model.ForwardBackward([TrainingExample.FromIds([.. a, .. b], [13, 9])], includeAuxLoss: false);
        var packedGrads = TrainingTestModels.Gradients(model);

        // Separately: each document alone; the packed loss is the mean over both documents' targets.
        model.ZeroGradients();
        var lossA = model.ForwardBackward([TrainingExample.FromIds(a)]);
        var gradsA = TrainingTestModels.Gradients(model);
        model.ZeroGradients();
        var lossB = model.ForwardBackward([TrainingExample.FromIds(b)]);
        var gradsB = TrainingTestModels.Gradients(model);

        Assert.Equal(lossA.TargetCount + lossB.TargetCount, packed.TargetCount);
        double n = packed.TargetCount;
        double separate = (lossA.CrossEntropy * lossA.TargetCount + lossB.CrossEntropy * lossB.TargetCount) / n;
        Assert.True(Math.Abs(packed.CrossEntropy - separate) <= 1e-6 * separate, $"packed loss {packed.CrossEntropy} vs separate {separate}");
        foreach (var (name, g) in packedGrads)
        {
            var expected = new double[g.Length];
            for (int i = 0; i < g.Length; i++)
                expected[i] = (gradsA[name][i] * (double)lossA.TargetCount + gradsB[name][i] * (double)lossB.TargetCount) / n;
            double err = TestModels.RelativeError(g, expected);
            Assert.True(err <= 1e-5, $"{name}: packed vs separate relative error {err:E3}");
        }

        // Without the boundary (same targets: the first token of b is not predicted) b would see a: the loss must differ.
        model.ZeroGradients();
        int[] joinedIds = [.. a, .. b];
        var joinedLabels = (int[])joinedIds.Clone();
        joinedLabels[a.Length] = TrainingExample.IgnoreIndex;
        var joined = model.ForwardBackward([new TrainingExample(joinedIds, joinedLabels)]);
        Assert.Equal(packed.TargetCount, joined.TargetCount);
        Assert.True(Math.Abs(joined.CrossEntropy - packed.CrossEntropy) > 1e-3, "a row without the boundary gave the packed loss");
    }
}
