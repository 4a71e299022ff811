using System.Numerics.Tensors;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Config;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;
using static MiniMaxSharp.Tests.Model.StepGraphProtocolTests;

namespace MiniMaxSharp.Tests.Model;

/// <summary>
/// Greedy decoding with the choice made by the backend (IGreedyDecoding) gives token for token what the host path
/// gives (logits downloaded, argmax on the host): one step at a time (ForwardGreedy), pipelined
/// (GreedyDecodePipeline) whatever the backend answers to graph and held-step requests, and through TokenGenerator.
/// A pipelined decode never issues a step it did not need: the sequences end exactly as long as the steps taken.
/// </summary>
public sealed class GreedyDecodeTests
{
    private static readonly ModelConfig Config = TestModels.SmallConfig(partialRotary: 0.5, blockSize: 8);
    private static readonly Dictionary<string, HostTensor> Weights = TestModels.Weights(Config, seed: 21);
    private static readonly int[][] Prompts = [TestModels.RandomIds(9, Config.VocabSize, seed: 4), TestModels.RandomIds(3, Config.VocabSize, seed: 5)];

    [Fact]
    public void ForwardGreedyChoosesTheHostsTokens()
    {
        int[][] expected = HostGreedy(Prompts, 6);
        using var model = TestModels.Build(Config, Weights, threads: 1);
        var seqs = Prompts.Select(_ => model.CreateSequence(32)).ToArray();
        try
        {
            // Prompts of 9 and 3 tokens (the last rows gathered), then one-token steps.
            int[] next = model.ForwardGreedy(seqs, Prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray());
            var got = Prompts.Select(_ => new List<int>()).ToArray();
            for (int step = 0; ; step++)
            {
                for (int i = 0; i < next.Length; i++) got[i].Add(next[i]);
                if (step == 6) break;
                next = model.ForwardGreedy(seqs, next.Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray());
            }
            Assert.Equal(expected, got.Select(g => g.ToArray()).ToArray());
            Assert.Equal([9 + 6, 3 + 6], seqs.Select(s => s.Length));   // the prompts and 6 chosen tokens consumed
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
    }

    [Theory]
    [InlineData(Answer.Issue)]
    [InlineData(Answer.Refuse)]
    [InlineData(Answer.Abort)]
    [InlineData(Answer.Off)]
    public void APipelinedDecodeGivesTheHostsTokensAndTakesOnlyItsSteps(Answer answer)
    {
        int[][] expected = HostGreedy(Prompts, 6);
        using var fake = new FakeGraphBackend(new CpuBackend(1), answer) { HoldSteps = true };
        var (got, lengths) = Pipelined(fake, maxSteps: 6, stopAfterStep: null);
        Assert.Equal(expected, got);
        Assert.Null(fake.Violation);
        Assert.Equal([9 + 6, 3 + 6], lengths);   // the prompts, then exactly 6 steps of one token
        if (answer == Answer.Issue)
        {
            // Steps 2 to 6 had their host code run during the previous step (step 1 has no recorded predecessor here:
            // the fake holds any step); the held ops were dropped, and every hold was asked for or dropped.
            Assert.Equal(5, fake.Held);
            Assert.True(fake.HeldOpsDropped > 0);
            Assert.Equal(fake.Held, fake.HeldLaunchRequests + fake.HeldDiscarded);
            Assert.All(fake.HeldKeys, k => Assert.Equal((2, 2), (k.Shape, k.Variant)));
        }
        else Assert.Equal(0, fake.Held);
    }

    [Fact]
    public void AStepHeldWhenTheDecodeStopsIsNeverIssued()
    {
        int[][] expected = HostGreedy(Prompts, 3);
        using var fake = new FakeGraphBackend(new CpuBackend(1), Answer.Issue) { HoldSteps = true };
        var (got, lengths) = Pipelined(fake, maxSteps: 10, stopAfterStep: 3);
        Assert.Equal(expected, got);
        Assert.Null(fake.Violation);
        // Step 4's host code ran during step 3, but step 3's ids stopped the decode: step 4 was dropped unissued and
        // the sequences hold exactly the prompts and 3 steps.
        Assert.Equal([9 + 3, 3 + 3], lengths);
        Assert.Equal(1, fake.HeldDiscarded);
        Assert.False(fake.HoldsAStep);
    }

    [Fact]
    public void APipelineStopsWhenASequenceIsFull()
    {
        using var model = TestModels.Build(Config, Weights, threads: 1);
        using var seq = model.CreateSequence(12);
        int first = model.ForwardGreedy([seq], [Prompts[0]])[0];
        using var pipeline = model.StartGreedyDecode([seq], [first], maxSteps: 100);
        int steps = 0;
        while (pipeline.Next() is not null) steps++;
        Assert.Equal(12 - 9, steps);
        Assert.Equal(12, seq.Length);
        Assert.Null(pipeline.Next());
    }

    [Fact]
    public void OnePipelineAtATimeAndNoOtherDeviceGreedyStepWhileItRuns()
    {
        using var model = TestModels.Build(Config, Weights, threads: 1);
        using var a = model.CreateSequence(32);
        using var b = model.CreateSequence(32);
        int first = model.ForwardGreedy([a], [Prompts[0]])[0];
        var pipeline = model.StartGreedyDecode([a], [first], maxSteps: 4);
        pipeline.Next();
        Assert.Throws<InvalidOperationException>(() => model.StartGreedyDecode([b], [first], maxSteps: 4));
        Assert.Throws<InvalidOperationException>(() => model.ForwardGreedy([b], [Prompts[1]]));
        pipeline.Dispose();   // waits for step 2, issued when step 1's ids did not end the decode
        Assert.Throws<ObjectDisposedException>(() => pipeline.Next());
        Assert.Equal(9 + 2, a.Length);
        model.ForwardGreedy([b], [Prompts[1]]);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.StartGreedyDecode([b], [Config.VocabSize], maxSteps: 1));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, false)]
    [InlineData(7, false)]
    [InlineData(7, true)]
    public void GreedyGenerationTakesTheDevicePathAndGivesTheHostsTokens(int maxNewTokens, bool stopOnThird)
    {
        int[] host = HostGreedy([Prompts[0]], Math.Max(0, maxNewTokens - 1))[0][..maxNewTokens];
        int[] stops = stopOnThird ? [host[2]] : [];
        int stopAt = stopOnThird ? Array.IndexOf(host, host[2]) + 1 : maxNewTokens;   // the first occurrence ends it
        using var fake = new FakeGraphBackend(new CpuBackend(1), Answer.Issue) { HoldSteps = true };
        using var model = new MiniMaxModel(Config, WeightLoader.Load(new DictionaryTensorSource(Weights), Config, fake), fake);
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, StopTokenIds = stops, PrefillChunk = 4 };
        int[] got = TokenGenerator.GenerateAsync(model, Prompts[0], options).ToBlockingEnumerable().ToArray();
        Assert.Equal(host[..stopAt], got);
        Assert.Null(fake.Violation);
        if (maxNewTokens > 2) Assert.True(fake.Held > 0, "the decode steps ran pipelined");
    }

    /// <summary>Prefill of every prompt, then greedy steps on the host: the first token and <paramref name="steps"/> more per sequence.</summary>
    private static int[][] HostGreedy(int[][] prompts, int steps)
    {
        using var model = TestModels.Build(Config, Weights, threads: 1);
        var seqs = prompts.Select(_ => model.CreateSequence(64)).ToArray();
        try
        {
            var got = prompts.Select(_ => new List<int>()).ToArray();
            float[] logits = model.Forward(seqs, prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray(), LogitsSelection.LastPerSequence);
            for (int step = 0; ; step++)
            {
                var next = Enumerable.Range(0, prompts.Length)
                    .Select(i => TensorPrimitives.IndexOfMax(logits.AsSpan(i * Config.VocabSize, Config.VocabSize))).ToArray();
                for (int i = 0; i < next.Length; i++) got[i].Add(next[i]);
                if (step == steps) break;
                logits = model.Forward(seqs, next.Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray(), LogitsSelection.LastPerSequence);
            }
            return got.Select(g => g.ToArray()).ToArray();
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
    }

    /// <summary>ForwardGreedy over the prompts, then a pipeline of at most <paramref name="maxSteps"/> steps, ended after
    /// step <paramref name="stopAfterStep"/> when given; the tokens per sequence and the sequences' final lengths.</summary>
    private static (int[][] Tokens, int[] Lengths) Pipelined(FakeGraphBackend fake, int maxSteps, int? stopAfterStep)
    {
        using var model = new MiniMaxModel(Config, WeightLoader.Load(new DictionaryTensorSource(Weights), Config, fake), fake);
        var seqs = Prompts.Select(_ => model.CreateSequence(32)).ToArray();
        try
        {
            int[] first = model.ForwardGreedy(seqs, Prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray());
            var got = first.Select(t => new List<int> { t }).ToArray();
            int step = 0;
            using (var pipeline = model.StartGreedyDecode(seqs, first, maxSteps, _ => ++step == stopAfterStep))
                while (pipeline.Next() is { } ids)
                    for (int i = 0; i < ids.Length; i++) got[i].Add(ids[i]);
            return (got.Select(g => g.ToArray()).ToArray(), seqs.Select(s => s.Length).ToArray());
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
    }
}
