using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Model;

/// <summary>
/// How the model drives a backend with step graphs (IStepGraphs), checked with a CPU backend that plays
/// the graph side: whatever the backend answers (issued, refused, aborted mid-step, off), the logits are
/// those of a plain run, only decode steps are offered as graphs, and nothing inside a step reads back,
/// allocates or synchronises.
/// </summary>
public sealed class StepGraphProtocolTests
{
    private static readonly ModelConfig Config = TestModels.SmallConfig(partialRotary: 0.5, blockSize: 8);

    /// <summary>What the fake does with a step it was asked to record.</summary>
    public enum Answer
    {
        /// <summary>Runs the ops as they come and reports the step issued (a graph launch would do the same work).</summary>
        Issue,
        /// <summary>Drops the ops (as a replay launches nothing) and reports the step not issued.</summary>
        Refuse,
        /// <summary>Throws StepGraphAbortedException at the first op (as an op that cannot be captured).</summary>
        Abort,
        /// <summary>Graphs off: BeginStep returns false.</summary>
        Off,
    }

    [Theory]
    [InlineData(Answer.Issue)]
    [InlineData(Answer.Refuse)]
    [InlineData(Answer.Abort)]
    [InlineData(Answer.Off)]
    public void DecodeLogitsDoNotDependOnHowTheBackendTreatsSteps(Answer answer)
    {
        var weights = TestModels.Weights(Config, seed: 3);
        float[] expected = Decode(TestModels.Build(Config, weights, threads: 1), out _);

        using var fake = new FakeGraphBackend(new CpuBackend(1), answer);
        float[] actual = Decode(new MiniMaxModel(Config, WeightLoader.Load(new DictionaryTensorSource(weights), Config, fake), fake), out var model);

        Assert.Equal(expected, actual);
        Assert.Null(fake.Violation);
        // Prefill steps (several tokens per sequence) are never offered; each of the 5 decode steps is.
        Assert.Equal(5, fake.BeginCalls);
        Assert.Equal(answer == Answer.Off ? 0 : 5, fake.Begun);
        Assert.Equal(answer == Answer.Abort ? 5 : 0, fake.Cancelled);
        Assert.All(fake.Keys, k => Assert.Same(model, k.Owner));
        Assert.All(fake.Keys, k => Assert.Equal(2, k.Shape));
        Assert.Contains(model, fake.Forgotten);
    }

    [Fact]
    public void RepeatedPrefillSteps_AllocateNothingOnceBuffersExist()
    {
        // Serving packs a prefill chunk of several tokens per sequence into most steps and takes each sequence's
        // last row: after the first steps (workspace, KV caches, logits, last-row buffer), such steps allocate nothing.
        var weights = TestModels.Weights(Config, seed: 3);
        using var fake = new FakeGraphBackend(new CpuBackend(1), Answer.Off);
        using var model = new MiniMaxModel(Config, WeightLoader.Load(new DictionaryTensorSource(weights), Config, fake), fake);
        using var a = model.CreateSequence(64);
        using var b = model.CreateSequence(64);
        var ids = new[] { 1, 2, 3 };
        int[] allocations = new int[5];
        for (int step = 0; step < 5; step++)
        {
            int before = fake.Allocations;
            model.Forward([a, b], [ids, ids], LogitsSelection.LastPerSequence);
            allocations[step] = fake.Allocations - before;
        }
        Assert.True(allocations[0] > 0);
        Assert.Equal([0, 0, 0], allocations[2..]);
    }

    /// <summary>Two sequences: a 6-token prefill in chunks of 4 and 2, then 5 one-token steps; every row of logits.</summary>
    private static float[] Decode(MiniMaxModel model, out MiniMaxModel used)
    {
        used = model;
        using (model)
        {
            var ids = new[] { TestModels.RandomIds(11, Config.VocabSize, seed: 1), TestModels.RandomIds(11, Config.VocabSize, seed: 2) };
            var seqs = ids.Select(_ => model.CreateSequence(16)).ToArray();
            var all = new List<float>();
            try
            {
                foreach (var (at, n) in new[] { (0, 4), (4, 2), (6, 1), (7, 1), (8, 1), (9, 1), (10, 1) })
                    all.AddRange(model.Forward(seqs, ids.Select(s => (ReadOnlyMemory<int>)s.AsMemory(at, n)).ToArray(), LogitsSelection.All));
            }
            finally
            {
                foreach (var s in seqs) s.Dispose();
            }
            return [.. all];
        }
    }

    /// <summary>A CPU backend answering step-graph requests as <see cref="Answer"/> says, noting any op a step must not contain.
    /// With <see cref="HoldSteps"/> it also takes held steps (the answer Issue only): their ops are dropped, as a held
    /// replay issues nothing, and <see cref="LaunchHeldStep"/> always reports the step no longer valid, so the model
    /// must run it again the ordinary way.</summary>
    internal sealed class FakeGraphBackend(CpuBackend inner, Answer answer) : IComputeBackend, IStepGraphs, IGreedyDecoding
    {
        private bool _inStep;
        private bool _holding;

        public bool HoldSteps { get; init; }
        public int Held { get; private set; }
        public int HeldLaunchRequests { get; private set; }
        public int HeldDiscarded { get; private set; }
        public int HeldOpsDropped { get; private set; }
        public bool HoldsAStep { get; private set; }

        public int BeginCalls { get; private set; }
        public int Begun { get; private set; }
        public int Cancelled { get; private set; }
        public List<StepGraphKey> Keys { get; } = [];
        public List<StepGraphKey> HeldKeys { get; } = [];
        public List<object> Forgotten { get; } = [];
        public string? Violation { get; private set; }

        public bool StepGraphsEnabled { get; set; } = answer != Answer.Off;
        public StepGraphCounters StepGraphCounters => default;

        public bool BeginStep(StepGraphKey key)
        {
            BeginCalls++;
            Keys.Add(key);
            if (!StepGraphsEnabled) return false;
            Begun++;
            _inStep = true;
            return true;
        }

        public bool EndStep()
        {
            _inStep = false;
            return answer == Answer.Issue;
        }

        public void CancelStep(string reason)
        {
            Assert.Contains("fake abort", reason);
            _inStep = false;
            Cancelled++;
        }

        public void ForgetStepGraphs(object owner) => Forgotten.Add(owner);

        public bool BeginHeldStep(StepGraphKey key)
        {
            if (!HoldSteps || answer != Answer.Issue || _inStep || _holding) return false;
            HeldKeys.Add(key);
            _holding = true;
            return true;
        }

        public bool HoldStep()
        {
            if (!_holding) Violation ??= "HoldStep without BeginHeldStep";
            _holding = false;
            Held++;
            HoldsAStep = true;
            return true;
        }

        public bool LaunchHeldStep()
        {
            if (!HoldsAStep) Violation ??= "LaunchHeldStep without a held step";
            HeldLaunchRequests++;
            HoldsAStep = false;
            return false;
        }

        public void DiscardHeldStep()
        {
            if (HoldsAStep) HeldDiscarded++;
            HoldsAStep = false;
        }

        public void ArgMaxRows(DeviceTensor logits, int columns, DeviceTensor ids) => Op(() => inner.ArgMaxRows(logits, columns, ids));
        public void EmbeddingFromDevice(DeviceTensor table, DeviceTensor ids, DeviceTensor output) => Op(() => inner.EmbeddingFromDevice(table, ids, output));

        public void UploadIds(ReadOnlySpan<int> values, DeviceTensor ids)
        {
            NotInStep("UploadIds");
            inner.UploadIds(values, ids);
        }

        public void StartIdsDownload(DeviceTensor ids, int count)
        {
            NotInStep("StartIdsDownload");
            inner.StartIdsDownload(ids, count);
        }

        public void FinishIdsDownload(Span<int> destination)
        {
            NotInStep("FinishIdsDownload");
            inner.FinishIdsDownload(destination);
        }

        /// <summary>An op of the step: run, dropped, or refused by throwing, as the answer says (dropped in a held step).</summary>
        private void Op(Action run)
        {
            if (_holding) HeldOpsDropped++;
            else if (!_inStep || answer == Answer.Issue) run();
            else if (answer == Answer.Abort) throw new StepGraphAbortedException("fake abort");
        }

        /// <summary>Something a recorded step may not do.</summary>
        private void NotInStep(string what)
        {
            if (_inStep || _holding) Violation ??= what;
        }

        public string Name => "fake-graphs";
        public DType ActivationType => inner.ActivationType;
        public DType ResidualType => ((IComputeBackend)inner).ResidualType;

        public int Allocations { get; private set; }

        public DeviceTensor Allocate(DType type, params int[] shape)
        {
            NotInStep("Allocate");
            Allocations++;
            return inner.Allocate(type, shape);
        }

        public DeviceTensor LoadWeight(HostTensor source)
        {
            NotInStep("LoadWeight");
            return inner.LoadWeight(source);
        }

        public void Upload(ReadOnlySpan<float> source, DeviceTensor destination)
        {
            NotInStep("Upload");
            inner.Upload(source, destination);
        }

        public void Download(DeviceTensor source, Span<float> destination)
        {
            NotInStep("Download");
            inner.Download(source, destination);
        }

        public void CopyRows(DeviceTensor source, DeviceTensor destination, int rows)
        {
            NotInStep("CopyRows");
            inner.CopyRows(source, destination, rows);
        }

        public void GatherRows(DeviceTensor source, ReadOnlySpan<int> rowIndices, DeviceTensor destination)
        {
            int[] idx = rowIndices.ToArray();
            Op(() => inner.GatherRows(source, idx, destination));
        }

        public void Embedding(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output)
        {
            int[] copy = ids.ToArray();
            Op(() => inner.Embedding(table, copy, output));
        }

        public void RmsNorm(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor output) => Op(() => inner.RmsNorm(x, weight, eps, output));
        public void ScaleAdd(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor output) => Op(() => inner.ScaleAdd(a, alpha, b, beta, output));
        public void MatMul(DeviceTensor x, DeviceTensor weight, DeviceTensor output) => Op(() => inner.MatMul(x, weight, output));
        public void SigmoidGate(DeviceTensor gate, DeviceTensor x, DeviceTensor output) => Op(() => inner.SigmoidGate(gate, x, output));

        public void LightningAttention(DeviceTensor qkv, BatchLayout layout, IReadOnlyList<DeviceTensor> states, ReadOnlySpan<float> slopes,
            int headDim, int blockSize, DeviceTensor output)
        {
            float[] s = slopes.ToArray();
            Op(() => inner.LightningAttention(qkv, layout, states, s, headDim, blockSize, output));
        }

        public void Rope(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta) => Op(() => inner.Rope(x, layout, headDim, rotaryDim, theta));

        public void SoftmaxAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout, IReadOnlyList<KvCache> caches,
            AttentionShape shape, DeviceTensor output) => Op(() => inner.SoftmaxAttention(q, k, v, layout, caches, shape, output));

        public void MixtureOfExperts(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK, DeviceTensor output) =>
            Op(() => inner.MixtureOfExperts(x, router, experts, topK, output));

        public void Synchronize()
        {
            NotInStep("Synchronize");
            inner.Synchronize();
        }

        public void Dispose() => inner.Dispose();
    }
}
