using System.Collections.Immutable;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Model;

/// <summary>Which rows of logits a forward step returns.</summary>
public enum LogitsSelection
{
    /// <summary>Every token of every sequence (the <c>forward</c> command).</summary>
    All,
    /// <summary>The last token of each sequence (generation).</summary>
    LastPerSequence,
    /// <summary>None (prefill chunks before the last).</summary>
    None,
}

/// <summary>Receives hidden states: index 0 the embeddings, index i the output of layer i,
/// the last one with the final norm applied (as Hugging Face reports them).</summary>
public delegate void HiddenStateObserver(int index, DeviceTensor hidden, BatchLayout layout);

/// <summary>
/// The MiniMax-01 decoder (spec: "Layer stack"), written once against the op set: it never knows
/// which backend runs it. One call of <see cref="Forward"/> is one step of a packed batch of sequences.
/// </summary>
public sealed class MiniMaxModel : IDisposable
{
    private readonly float[][] _slopes;
    private Workspace? _workspace;
    private DeviceTensor? _logits;
    private DeviceTensor? _lastRows;
    private DeviceTensor? _chosenIds;
    private GreedyDecodePipeline? _pipeline;

    /// <summary>What a step graph of a given shape issues (<see cref="StepGraphKey.Variant"/>).</summary>
    private enum StepVariant
    {
        /// <summary>Host ids in, float32 logits out.</summary>
        Logits,
        /// <summary>Host ids in, greedy ids chosen on the device out.</summary>
        GreedyIds,
        /// <summary>Ids chosen by the previous step read on the device, greedy ids out (a pipelined decode step).</summary>
        Pipelined,
    }

    /// <summary>Where a step writes its greedy choice, made among the first <see cref="Columns"/> logits of each row.</summary>
    private readonly record struct GreedyChoice(DeviceTensor Ids, int Columns);

    public MiniMaxModel(ModelConfig config, ModelWeights weights, IComputeBackend backend)
    {
        Config = config;
        Weights = weights;
        Backend = backend;
        _slopes = new float[config.NumLayers][];
        for (int l = 0; l < config.NumLayers; l++)
            _slopes[l] = LightningDecay.Slopes(config.NumHeads, l, config.NumLayers);
    }

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public IComputeBackend Backend { get; }

    /// <summary>When set, every phase of a step is timed (benchmarks; costs a synchronisation per phase).</summary>
    public StepProfiler? Profiler { get; set; }

    private void Begin() => Profiler?.Begin();
    private void End(StepPhase phase) => Profiler?.End(phase);

    /// <summary>A new, empty sequence that may hold up to <paramref name="maxTokens"/> tokens.</summary>
    public SequenceState CreateSequence(int maxTokens) => new(Backend, Config, maxTokens);

    /// <summary>
    /// Runs <paramref name="tokens"/>[i] through sequence <paramref name="sequences"/>[i], all in one packed
    /// batch, advancing each state. Returns float32 logits [rows, vocab] for the selected rows
    /// (packed order), or an empty array for <see cref="LogitsSelection.None"/>.
    /// </summary>
    public float[] Forward(IReadOnlyList<SequenceState> sequences, IReadOnlyList<ReadOnlyMemory<int>> tokens,
        LogitsSelection selection, HiddenStateObserver? observer = null)
    {
        var (ids, counts, layout) = PlanStep(sequences, tokens);
        int T = layout.TotalTokens;
        var ws = WorkspaceFor(T);
        var b = Backend;
        // Everything the step allocates is allocated before it: a step recorded as a graph may not allocate.
        int logitRows = selection switch
        {
            LogitsSelection.None => 0,
            LogitsSelection.LastPerSequence => sequences.Count,
            _ => T,
        };
        var logits = logitRows > 0 ? LogitsBuffer(logitRows) : null;
        DeviceTensor? gathered = selection == LogitsSelection.LastPerSequence && T != sequences.Count
            ? LastRowsBuffer(sequences.Count).RowSlice(0, sequences.Count) : null;
        try
        {
            void Step() => RunStep(ids, null, layout, sequences, ws, observer, gathered, logits, logitRows, null);
            // Decode steps (one token per sequence) may run as a recorded graph on a backend that has them;
            // observers and the profiler need every op eagerly.
            if (b is IStepGraphs graphs && T == sequences.Count && logits is not null && observer is null && Profiler is null)
                RunAsGraph(graphs, GraphKey(sequences.Count, StepVariant.Logits), Step);
            else
                Step();
            foreach (var (s, n) in sequences.Zip(counts)) s.Advance(n);
            if (logits is null) return [];
            using var rows = logits.RowSlice(0, logitRows);
            var result = new float[rows.ElementCount];
            b.Download(rows, result);
            End(StepPhase.LmHead);
            return result;
        }
        finally
        {
            gathered?.Dispose();
        }
    }

    /// <summary>Whether greedy decoding can choose tokens on the device (<see cref="ForwardGreedy"/>,
    /// <see cref="StartGreedyDecode"/>): the backend implements <see cref="IGreedyDecoding"/>.</summary>
    public bool HasDeviceGreedy => Backend is IGreedyDecoding;

    /// <summary>
    /// <see cref="Forward"/> with <see cref="LogitsSelection.LastPerSequence"/> followed by the greedy choice
    /// (argmax, ties to the lowest index, as <see cref="Generation.Sampler"/> with temperature 0 and no penalties) of
    /// each sequence's next token, made on the device: 4 bytes per sequence come back instead of a row of logits.
    /// With <paramref name="emittableTokens"/> the choice is among ids below it (a tokenizer smaller than the vocabulary).
    /// </summary>
    public int[] ForwardGreedy(IReadOnlyList<SequenceState> sequences, IReadOnlyList<ReadOnlyMemory<int>> tokens, int? emittableTokens = null)
    {
        var greedy = GreedyBackend();
        int choiceColumns = Math.Min(emittableTokens ?? Config.VocabSize, Config.VocabSize);
        if (choiceColumns < 1) throw new ArgumentOutOfRangeException(nameof(emittableTokens), $"at least one token must be emittable, got {emittableTokens}");
        var (ids, counts, layout) = PlanStep(sequences, tokens);
        int T = layout.TotalTokens, count = sequences.Count;
        var ws = WorkspaceFor(T);
        var logits = LogitsBuffer(count);
        var chosen = ChosenIdsBuffer(count);
        DeviceTensor? gathered = T != count ? LastRowsBuffer(count).RowSlice(0, count) : null;
        try
        {
            void Step() => RunStep(ids, null, layout, sequences, ws, null, gathered, logits, count, new(chosen, choiceColumns));
            if (Backend is IStepGraphs graphs && T == count && Profiler is null)
                RunAsGraph(graphs, GraphKey(count, StepVariant.GreedyIds), Step);
            else
                Step();
            foreach (var (s, n) in sequences.Zip(counts)) s.Advance(n);
            var result = new int[count];
            greedy.StartIdsDownload(chosen, count);
            greedy.FinishIdsDownload(result);
            End(StepPhase.LmHead);
            return result;
        }
        finally
        {
            gathered?.Dispose();
        }
    }

    /// <summary>
    /// Starts a greedy decode of <paramref name="sequences"/> (one token per sequence per step) whose tokens never
    /// need the host to be fed back: <paramref name="firstTokens"/>[i] is sequence i's next input, each step's choice
    /// (as <see cref="ForwardGreedy"/>) is the next step's input on the device, and the host code of step n+1 runs
    /// while step n is on the GPU (see <see cref="GreedyDecodePipeline"/>). The decode ends after
    /// <paramref name="maxSteps"/> steps, when a sequence is full, or after a step whose ids <paramref name="stopsAfter"/>
    /// says end it. One pipeline per model at a time; while it runs, its sequences must not be stepped otherwise.
    /// </summary>
    public GreedyDecodePipeline StartGreedyDecode(IReadOnlyList<SequenceState> sequences, ReadOnlySpan<int> firstTokens,
        int maxSteps, Func<int[], bool>? stopsAfter = null)
    {
        var greedy = GreedyBackend();
        if (firstTokens.Length != sequences.Count) throw new ArgumentException($"{sequences.Count} sequences but {firstTokens.Length} first tokens");
        if (maxSteps < 0) throw new ArgumentOutOfRangeException(nameof(maxSteps), "the step limit must be >= 0");
        var tokens = firstTokens.ToArray().Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray();
        PlanStep(sequences, tokens, reserve: false);   // the same checks as a step: ids in the vocabulary, distinct sequences
        var chosen = ChosenIdsBuffer(sequences.Count);
        greedy.UploadIds(firstTokens, chosen);
        _pipeline = new GreedyDecodePipeline(this, [.. sequences], maxSteps, stopsAfter);
        return _pipeline;
    }

    internal void PipelineEnded(GreedyDecodePipeline pipeline)
    {
        if (ReferenceEquals(_pipeline, pipeline)) _pipeline = null;
    }

    private IGreedyDecoding GreedyBackend()
    {
        if (Backend is not IGreedyDecoding greedy) throw new NotSupportedException($"the {Backend.Name} backend cannot choose tokens on the device");
        if (_pipeline is not null) throw new InvalidOperationException("a greedy decode pipeline is running on this model; dispose it first");
        return greedy;
    }

    /// <summary>
    /// Issues one pipelined decode step over <paramref name="sequences"/>: the held one when the backend still has it
    /// valid, else the step's host code now (as a graph or eagerly). Advances every sequence by one token.
    /// Returns true when the held step was the one issued.
    /// </summary>
    internal bool IssuePipelinedStep(SequenceState[] sequences, bool held)
    {
        foreach (var s in sequences) s.Reserve(1);
        var graphs = Backend as IStepGraphs;
        if (held && graphs is not null && graphs.LaunchHeldStep())
        {
            foreach (var s in sequences) s.Advance(1);
            return true;
        }
        var (layout, ws, logits, chosen) = PipelinedStepBuffers(sequences);
        void Step() => RunStep(null, chosen, layout, sequences, ws, null, null, logits, sequences.Length, new(chosen, Config.VocabSize));
        if (graphs is not null && Profiler is null) RunAsGraph(graphs, GraphKey(sequences.Length, StepVariant.Pipelined), Step);
        else Step();
        foreach (var s in sequences) s.Advance(1);
        return false;
    }

    /// <summary>Drops a step <see cref="HoldPipelinedStep"/> held (the decode ended before it was needed).</summary>
    internal void DiscardHeldStep() => (Backend as IStepGraphs)?.DiscardHeldStep();

    /// <summary>Runs the host code of the next pipelined step as a held graph step (nothing issued, nothing of the
    /// sequences changed); true when the backend holds it. Only when the step needs no allocation (the KV caches
    /// have room) and would replay a recording.</summary>
    internal bool HoldPipelinedStep(SequenceState[] sequences)
    {
        if (Backend is not IStepGraphs graphs || Profiler is not null) return false;
        int n = sequences.Length;
        if (_workspace is not { } kept || kept.Capacity < n || _logits is not { } l || l.Rows < n || _chosenIds is not { } c || c.Rows < n) return false;
        foreach (var s in sequences)
            if (!s.HasRoomWithoutGrowing(1)) return false;
        if (!graphs.BeginHeldStep(GraphKey(sequences.Length, StepVariant.Pipelined))) return false;
        try
        {
            var (layout, ws, logits, chosen) = PipelinedStepBuffers(sequences);
            RunStep(null, chosen, layout, sequences, ws, null, null, logits, sequences.Length, new(chosen, Config.VocabSize));
        }
        catch (Exception e)
        {
            graphs.CancelStep(e.Message);
            return false;
        }
        return graphs.HoldStep();
    }

    /// <summary>Starts reading back the ids the last pipelined step chose.</summary>
    internal void StartPipelinedIdsDownload(int count) => ((IGreedyDecoding)Backend).StartIdsDownload(ChosenIdsBuffer(count), count);

    internal void FinishPipelinedIdsDownload(Span<int> destination) => ((IGreedyDecoding)Backend).FinishIdsDownload(destination);

    /// <summary>The layout and buffers of a pipelined step: kept across steps, so a held step's host code allocates
    /// nothing (the buffers exist after the pipeline's first step).</summary>
    private (BatchLayout Layout, Workspace Ws, DeviceTensor Logits, DeviceTensor Chosen) PipelinedStepBuffers(SequenceState[] sequences)
    {
        var counts = new int[sequences.Length];
        var starts = new int[sequences.Length];
        for (int i = 0; i < sequences.Length; i++)
        {
            counts[i] = 1;
            starts[i] = sequences[i].Length;
        }
        return (BatchLayout.Create(counts, starts), WorkspaceFor(sequences.Length), LogitsBuffer(sequences.Length), ChosenIdsBuffer(sequences.Length));
    }

    private StepGraphKey GraphKey(int sequences, StepVariant variant) => new(this, sequences, (int)variant);

    /// <summary>Checks a step's inputs, packs its ids and (when <paramref name="reserve"/>) makes room in each sequence.</summary>
    private (int[] Ids, int[] Counts, BatchLayout Layout) PlanStep(IReadOnlyList<SequenceState> sequences,
        IReadOnlyList<ReadOnlyMemory<int>> tokens, bool reserve = true)
    {
        if (sequences.Count != tokens.Count) throw new ArgumentException($"{sequences.Count} sequences but {tokens.Count} token lists");
        if (sequences.Count == 0) throw new ArgumentException("a forward step needs at least one sequence");
        if (sequences.Distinct().Count() != sequences.Count) throw new ArgumentException("a sequence appears twice in one batch");
        var c = Config;
        var counts = new int[sequences.Count];
        var starts = new int[sequences.Count];
        for (int i = 0; i < sequences.Count; i++)
        {
            counts[i] = tokens[i].Length;
            starts[i] = sequences[i].Length;
            if (counts[i] == 0) throw new ArgumentException($"sequence {i} has no tokens in this step");
        }
        var ids = new int[counts.Sum()];
        for (int i = 0, at = 0; i < tokens.Count; at += counts[i], i++)
        {
            var span = tokens[i].Span;
            for (int j = 0; j < span.Length; j++)
                if ((uint)span[j] >= (uint)c.VocabSize)
                    throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {span[j]} (sequence {i}, index {j}) is outside the vocabulary 0..{c.VocabSize - 1}");
            span.CopyTo(ids.AsSpan(at));
        }
        if (reserve)
            foreach (var (s, n) in sequences.Zip(counts)) s.Reserve(n);
        return (ids, counts, BatchLayout.Create(counts, starts));
    }

    /// <summary>Runs <paramref name="step"/> as a graph when the backend records or replays it, else (or when
    /// that fails, which leaves no trace on the device) eagerly.</summary>
    private static void RunAsGraph(IStepGraphs graphs, StepGraphKey key, Action step)
    {
        if (graphs.BeginStep(key))
        {
            bool recorded;
            try
            {
                step();
                recorded = true;
            }
            catch (Exception e)
            {
                // Anything a recorded step cannot do, or any failure in it: nothing was issued, so the eager
                // run below is the whole step (and raises the error again if it was not about graphs).
                graphs.CancelStep(e.Message);
                recorded = false;
            }
            // EndStep stays outside the catch: once it may have launched the graph, the step must not run again.
            if (recorded && graphs.EndStep()) return;
        }
        step();
    }

    /// <summary>The device work of one step, from the embedding of <paramref name="ids"/> (or of the ids in
    /// <paramref name="deviceIds"/>) to the LM head product into <paramref name="logits"/> (when given) and the greedy
    /// choice of each row (among its first columns) into <paramref name="chosen"/> (when given); issues ops only, reads
    /// nothing back.</summary>
    private void RunStep(int[]? ids, DeviceTensor? deviceIds, BatchLayout layout, IReadOnlyList<SequenceState> sequences, Workspace ws,
        HiddenStateObserver? observer, DeviceTensor? gathered, DeviceTensor? logits, int logitRows, GreedyChoice? chosen)
    {
        var c = Config;
        var b = Backend;
        int T = layout.TotalTokens;
        using var x = ws.Hidden.RowSlice(0, T);
        using var y = ws.Normed.RowSlice(0, T);
        using var branch = ws.Branch.RowSlice(0, T);
        Begin();
        if (deviceIds is not null) ((IGreedyDecoding)b).EmbeddingFromDevice(Weights.Embedding, deviceIds, x);
        else b.Embedding(Weights.Embedding, ids ?? throw new ArgumentNullException(nameof(ids)), x);
        End(StepPhase.Embedding);
        observer?.Invoke(0, x, layout);

        Begin();
        b.RmsNorm(x, Weights.Layers[0].InputNorm, c.RmsNormEps, y);
        End(StepPhase.Norms);
        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = Weights.Layers[l];
            if (w.Kind == LayerKind.Lightning) LightningBlock(l, w, y, branch, layout, sequences, ws);
            else SoftmaxBlock(l, w, y, branch, layout, sequences, ws);
            var ra = c.AttentionResidual(l);
            // The residual over the normed input, the post-attention norm and the MoE: one op (a backend may fuse the
            // norm with the routing), or two when the profiler times the phases apart.
            if (Profiler is null)
                b.ScaleAddRmsNormMoe(y, ra.Alpha, branch, ra.Beta, x, w.PostAttentionNorm, c.RmsNormEps, y,
                    w.Router, w.Experts, c.ExpertsPerToken, branch);
            else
            {
                Begin();
                b.ScaleAddRmsNorm(y, ra.Alpha, branch, ra.Beta, x, w.PostAttentionNorm, c.RmsNormEps, y);
                End(StepPhase.Norms);
                Begin();
                b.MixtureOfExperts(y, w.Router, w.Experts, c.ExpertsPerToken, branch);
                End(StepPhase.MixtureOfExperts);
            }
            // The residual add and the next layer's input norm (the final norm after the last layer) in one op.
            var nextNorm = l + 1 < c.NumLayers ? Weights.Layers[l + 1].InputNorm : Weights.FinalNorm;
            Begin();
            b.ScaleAddRmsNorm(y, c.MlpResidual.Alpha, branch, c.MlpResidual.Beta, x, nextNorm, c.RmsNormEps, y);
            End(StepPhase.Norms);
            if (observer is not null && l < c.NumLayers - 1) observer(l + 1, x, layout);
        }
        observer?.Invoke(c.NumLayers, y, layout);

        if (logits is null) return;
        DeviceTensor rows = y;
        if (gathered is not null)
        {
            var last = layout.Sequences.Select(s => s.TokenOffset + s.TokenCount - 1).ToArray();
            b.GatherRows(y, last, gathered);
            rows = gathered;
        }
        Begin();   // the LM head phase ends after the download, in Forward
        using var logitRowsView = logits.RowSlice(0, logitRows);
        b.MatMul(rows, Weights.LmHead, logitRowsView);
        if (chosen is { } choice) ((IGreedyDecoding)b).ArgMaxRows(logitRowsView, choice.Columns, choice.Ids);
    }

    private void LightningBlock(int layer, LayerWeights w, DeviceTensor y, DeviceTensor output, BatchLayout layout,
        IReadOnlyList<SequenceState> sequences, Workspace ws)
    {
        var c = Config;
        var b = Backend;
        int T = layout.TotalTokens;
        using var qkv = ws.Qkv.RowSlice(0, T);
        using var o = ws.Attn.RowSlice(0, T);
        using var gate = ws.Gate.RowSlice(0, T);
        Begin();
        b.MatMulMany(y, [w.QkvProj!, w.OutputGate!], [qkv, gate]);   // the output gate reads the same input
        End(StepPhase.Projections);
        var states = sequences.Select(s => s.LightningState(layer)).ToArray();
        Begin();
        b.LightningAttention(qkv, layout, states, _slopes[layer], c.HeadDim, c.BlockSize, o);
        End(StepPhase.LightningCore);
        Begin();
        b.RmsNormSigmoidGate(o, w.OutputNorm!, c.LightningNormEps, gate, o);
        b.MatMul(o, w.OutProj!, output);
        End(StepPhase.Projections);
    }

    private void SoftmaxBlock(int layer, LayerWeights w, DeviceTensor y, DeviceTensor output, BatchLayout layout,
        IReadOnlyList<SequenceState> sequences, Workspace ws)
    {
        var c = Config;
        var b = Backend;
        int T = layout.TotalTokens;
        using var q = ws.Attn.RowSlice(0, T);
        using var k = ws.Keys.RowSlice(0, T);
        using var v = ws.Values.RowSlice(0, T);
        using var o = ws.Gate.RowSlice(0, T);
        Begin();
        b.MatMulMany(y, [w.QProj!, w.KProj!, w.VProj!], [q, k, v]);
        End(StepPhase.Projections);
        var caches = sequences.Select(s => s.Cache(layer)).ToArray();
        Begin();
        b.Rope(q, layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        b.Rope(k, layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        b.SoftmaxAttention(q, k, v, layout, caches, new AttentionShape(c.NumHeads, c.NumKvHeads, c.HeadDim), o);
        End(StepPhase.SoftmaxCore);
        Begin();
        b.MatMul(o, w.OProj!, output);
        End(StepPhase.Projections);
    }

    private Workspace WorkspaceFor(int tokens)
    {
        if (_workspace is { } ws && ws.Capacity >= tokens) return ws;
        _workspace?.Dispose();
        int capacity = Math.Max(tokens, _workspace?.Capacity * 2 ?? 0);
        _workspace = new Workspace(Backend, Config, capacity);
        return _workspace;
    }

    /// <summary>Float32 logits for at least <paramref name="rows"/> rows (see <see cref="KeptBuffer"/>).</summary>
    private DeviceTensor LogitsBuffer(int rows) => KeptBuffer(ref _logits, DType.F32, rows, Config.VocabSize);

    /// <summary>Int32 token ids chosen on the device, one per sequence (see <see cref="KeptBuffer"/>): the same buffer
    /// every step, so graphs of pipelined steps stay valid from one decode to the next.</summary>
    private DeviceTensor ChosenIdsBuffer(int rows) => KeptBuffer(ref _chosenIds, DType.I32, rows, 1);

    /// <summary>The last hidden row of each sequence, a prefill step's LM-head input (see <see cref="KeptBuffer"/>).</summary>
    private DeviceTensor LastRowsBuffer(int rows) => KeptBuffer(ref _lastRows, Backend.ActivationType, rows, Config.HiddenSize);

    /// <summary>A buffer of at least <paramref name="rows"/> rows kept across steps and regrown only when a step needs
    /// more: allocating and freeing per step cost a device allocation and a synchronising free each time (every decode
    /// step for the logits; most serving steps, which carry a prefill chunk, for the last rows).</summary>
    private DeviceTensor KeptBuffer(ref DeviceTensor? buffer, DType type, int rows, int cols)
    {
        if (buffer is { } kept && kept.Rows >= rows) return kept;
        buffer?.Dispose();
        buffer = null;
        buffer = Backend.Allocate(type, rows, cols);
        return buffer;
    }

    public void Dispose()
    {
        _pipeline?.Dispose();
        (Backend as IStepGraphs)?.ForgetStepGraphs(this);
        _logits?.Dispose();
        _chosenIds?.Dispose();
        _lastRows?.Dispose();
        _workspace?.Dispose();
        Weights.Dispose();
    }

    /// <summary>Activation buffers for up to <see cref="Capacity"/> tokens, reused across steps.</summary>
    private sealed class Workspace : IDisposable
    {
        public Workspace(IComputeBackend b, ModelConfig c, int capacity)
        {
            Capacity = capacity;
            var a = b.ActivationType;
            Hidden = b.Allocate(b.ResidualType, capacity, c.HiddenSize);
            Normed = b.Allocate(a, capacity, c.HiddenSize);
            Branch = b.Allocate(b.ResidualType, capacity, c.HiddenSize);
            Attn = b.Allocate(a, capacity, c.AttentionWidth);
            Gate = b.Allocate(a, capacity, c.AttentionWidth);
            Qkv = b.Allocate(a, c.NumLightningLayers > 0 ? capacity : 1, 3 * c.AttentionWidth);
            Keys = b.Allocate(a, c.NumSoftmaxLayers > 0 ? capacity : 1, c.KvWidth);
            Values = b.Allocate(a, c.NumSoftmaxLayers > 0 ? capacity : 1, c.KvWidth);
        }

        public int Capacity { get; }
        public DeviceTensor Hidden { get; }
        public DeviceTensor Normed { get; }
        public DeviceTensor Branch { get; }
        public DeviceTensor Attn { get; }
        public DeviceTensor Gate { get; }
        public DeviceTensor Qkv { get; }
        public DeviceTensor Keys { get; }
        public DeviceTensor Values { get; }

        public void Dispose()
        {
            foreach (var t in new[] { Hidden, Normed, Branch, Attn, Gate, Qkv, Keys, Values }) t.Dispose();
        }
    }
}
