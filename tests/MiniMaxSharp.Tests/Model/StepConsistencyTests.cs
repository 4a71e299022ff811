using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests.Model;

/// <summary>Chunked prefill, decode steps and varlen batches must give the one-pass logits.</summary>
public class StepConsistencyTests
{
    private static readonly MiniMaxSharp.Config.ModelConfig Config = TestModels.SmallConfig(partialRotary: 0.5, blockSize: 8);

    private static float[] OnePass(MiniMaxModel model, int[] ids)
    {
        using var seq = model.CreateSequence(512);
        return model.Forward([seq], [ids], LogitsSelection.All);
    }

    /// <summary>Feeds ids in chunks of the given sizes (cycled), concatenating every row's logits.</summary>
    private static float[] Chunked(MiniMaxModel model, int[] ids, params int[] chunkSizes)
    {
        using var seq = model.CreateSequence(512);
        var all = new List<float>();
        for (int at = 0, c = 0; at < ids.Length; c++)
        {
            int n = Math.Min(chunkSizes[c % chunkSizes.Length], ids.Length - at);
            all.AddRange(model.Forward([seq], [ids.AsMemory(at, n)], LogitsSelection.All));
            at += n;
        }
        Assert.Equal(ids.Length, seq.Length);
        return [.. all];
    }

    [Theory]
    [InlineData(1)]          // pure decode from the first token
    [InlineData(3)]          // does not divide the block size
    [InlineData(8)]          // exactly one block
    [InlineData(13)]
    [InlineData(5, 1, 1, 11)]
    public void ChunkedPrefillEqualsOnePass(params int[] chunks)
    {
        using var model = TestModels.Build(Config, TestModels.Weights(Config, seed: 11));
        var ids = TestModels.RandomIds(45, Config.VocabSize, seed: 5);
        double err = TestModels.RelativeError(Chunked(model, ids, chunks), OnePass(model, ids));
        Assert.True(err <= 1e-5, $"relative error {err:E3}");
    }

    [Fact]
    public void VarlenBatchEqualsSequencesAlone()
    {
        using var model = TestModels.Build(Config, TestModels.Weights(Config, seed: 12));
        int[][] seqs = [TestModels.RandomIds(19, Config.VocabSize, 1), TestModels.RandomIds(1, Config.VocabSize, 2),
                        TestModels.RandomIds(33, Config.VocabSize, 3), TestModels.RandomIds(8, Config.VocabSize, 4)];
        var states = seqs.Select(_ => model.CreateSequence(128)).ToArray();
        try
        {
            float[] batched = model.Forward(states, seqs.Select(s => (ReadOnlyMemory<int>)s).ToArray(), LogitsSelection.All);
            float[] alone = seqs.SelectMany(s => OnePass(model, s)).ToArray();
            double err = TestModels.RelativeError(batched, alone);
            Assert.True(err <= 1e-5, $"prefill: relative error {err:E3}");

            // Then one decode step for all four at different positions, against each sequence run alone.
            int[] next = [5, 6, 7, 8];
            float[] step = model.Forward(states, next.Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray(), LogitsSelection.LastPerSequence);
            int V = Config.VocabSize;
            for (int i = 0; i < seqs.Length; i++)
            {
                var full = OnePass(model, [.. seqs[i], next[i]]);
                double e = TestModels.RelativeError(step.AsSpan(i * V, V), full.AsSpan(full.Length - V, V));
                Assert.True(e <= 1e-5, $"decode of sequence {i}: relative error {e:E3}");
            }
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
    }

    [Fact]
    public void ContextLimitIsEnforcedWithoutChangingState()
    {
        using var model = TestModels.Build(Config, TestModels.Weights(Config, seed: 13));
        using var seq = model.CreateSequence(10);
        model.Forward([seq], [new[] { 1, 2, 3, 4, 5, 6 }], LogitsSelection.None);
        var e = Assert.Throws<MiniMaxSharp.Inference.ContextLimitException>(() =>
            model.Forward([seq], [new[] { 1, 2, 3, 4, 5 }], LogitsSelection.None));
        Assert.Contains("limit is 10", e.Message);
        Assert.Equal(6, seq.Length);
    }

    [Fact]
    public void TokenIdOutOfRangeIsAClearError()
    {
        using var model = TestModels.Build(Config, TestModels.Weights(Config, seed: 14));
        using var seq = model.CreateSequence(10);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([seq], [new[] { 1, Config.VocabSize }], LogitsSelection.None));
        Assert.Contains($"token id {Config.VocabSize}", e.Message);
        Assert.Equal(0, seq.Length);
    }

    [Fact]
    public void StateSizeIsReportedAndLightningStateIsConstant()
    {
        using var model = TestModels.Build(Config, TestModels.Weights(Config, seed: 15));
        using var seq = model.CreateSequence(1000);
        model.Forward([seq], [TestModels.RandomIds(100, Config.VocabSize, 1)], LogitsSelection.None);
        long lightning = (long)Config.NumLightningLayers * Config.NumHeads * Config.HeadDim * Config.HeadDim * 4;
        long perToken = (long)Config.NumSoftmaxLayers * 2 * Config.KvWidth * 4;
        Assert.Equal(lightning + perToken * seq.CacheCapacity, seq.StateBytes);
        Assert.Equal(lightning + perToken * 100, MiniMaxSharp.Inference.SequenceState.BytesFor(Config, 100));
    }
}
