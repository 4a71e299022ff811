using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>Settings of a training run.</summary>
public sealed record TrainingOptions
{
    public int Steps { get; init; } = 100;
    public int BatchRows { get; init; } = 1;
    public int Accumulation { get; init; } = 1;
    public double LearningRate { get; init; } = 1e-4;
    public double MinLearningRate { get; init; }
    public int WarmupSteps { get; init; }
    public double WeightDecay { get; init; } = 0.1;
    public double ClipNorm { get; init; } = 1.0;
    public bool AuxLoss { get; init; }
    /// <summary>Seed of the row order (the only randomness of a step).</summary>
    public int Seed { get; init; }
    /// <summary>Save a checkpoint every this many steps (0: only at the end).</summary>
    public int SaveEvery { get; init; }
    /// <summary>Evaluate on the held-out rows every this many steps (0: only at the end).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Held-out rows used per evaluation (0: all).</summary>
    public int EvalRows { get; init; }
    /// <summary>Storage type of model.safetensors (the training state keeps float32 masters regardless).</summary>
    public DType SaveAs { get; init; } = DType.F32;

    public void Validate()
    {
        if (Steps <= 0) throw new ArgumentException($"the number of steps must be positive, got {Steps}");
        if (BatchRows <= 0) throw new ArgumentException($"rows per micro-batch must be positive, got {BatchRows}");
        if (Accumulation <= 0) throw new ArgumentException($"micro-batches per step must be positive, got {Accumulation}");
        if (WarmupSteps < 0 || WarmupSteps > Steps) throw new ArgumentException($"warm-up steps {WarmupSteps} must be in 0..{Steps}");
        if (SaveEvery < 0 || EvalEvery < 0 || EvalRows < 0) throw new ArgumentException("save/eval intervals and eval rows cannot be negative");
    }
}

/// <summary>One point of a loss curve.</summary>
public readonly record struct LossPoint(int Step, double Loss);

/// <summary>What the run reports after each step.</summary>
public sealed record StepProgress(int Step, int TotalSteps, StepReport Report, double TokensPerSecond, TimeSpan Remaining, double? EvalLoss);

/// <summary>
/// A training run over packed rows with checkpoints that resume exactly: the output folder holds the model
/// (model.safetensors, config.json in the Hugging Face dialect, tokenizer.json) and training_state.safetensors
/// (float32 master weights, AdamW moments, and in its metadata the step, the data position and the loss history),
/// each written atomically. The state file alone is consistent (one atomic write), so resuming reads only it.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    public const string StateFileName = "training_state.safetensors";
    public const string CurveFileName = "loss_curve.png";

    private readonly TrainingModel _model;
    private readonly IReadOnlyList<TrainingExample> _train;
    private readonly IReadOnlyList<TrainingExample> _heldOut;
    private readonly string _outputDir;
    private readonly string? _tokenizerFile;
    private readonly AdamW _adam;
    private readonly WarmupCosineSchedule _schedule;
    private readonly RowOrder _order;

    public TrainingRun(TrainingModel model, IReadOnlyList<TrainingExample> trainRows, IReadOnlyList<TrainingExample> heldOutRows,
        TrainingOptions options, string outputDir, string? tokenizerFile = null)
    {
        options.Validate();
        if (trainRows.Count == 0) throw new ArgumentException("there are no training rows");
        _model = model;
        _train = trainRows;
        _heldOut = heldOutRows;
        Options = options;
        _outputDir = outputDir;
        _tokenizerFile = tokenizerFile;
        _adam = new AdamW(model, new AdamWOptions { WeightDecay = options.WeightDecay });
        _schedule = new WarmupCosineSchedule(options.LearningRate, options.WarmupSteps, options.Steps, options.MinLearningRate);
        _order = new RowOrder(trainRows.Count, options.Seed);
    }

    public TrainingOptions Options { get; }

    /// <summary>Steps done so far.</summary>
    public int Step { get; private set; }

    public List<LossPoint> TrainLosses { get; } = [];
    public List<LossPoint> EvalLosses { get; } = [];

    /// <summary>
    /// Runs steps until <see cref="TrainingOptions.Steps"/>, or until <paramref name="stopAfter"/> steps are done, or
    /// until cancelled (between steps); then saves a checkpoint. Evaluates and saves on the option's intervals.
    /// </summary>
    public void Run(Action<StepProgress>? progress = null, int? stopAfter = null, CancellationToken cancel = default)
    {
        int last = Math.Min(Options.Steps, stopAfter ?? Options.Steps);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        int startStep = Step;
        while (Step < last && !cancel.IsCancellationRequested)
        {
            var batches = new IReadOnlyList<TrainingExample>[Options.Accumulation];
            for (int m = 0; m < batches.Length; m++)
            {
                var rows = new TrainingExample[Options.BatchRows];
                for (int r = 0; r < rows.Length; r++) rows[r] = _train[_order.Next()];
                batches[m] = rows;
                tokens += rows.Sum(r => (long)r.InputIds.Length);
            }
            var report = TrainingStep.Run(_model, _adam, batches, _schedule.At(Step), Options.ClipNorm, Options.AuxLoss);
            Step++;
            TrainLosses.Add(new LossPoint(Step, report.CrossEntropy));
            double? eval = null;
            if ((Options.EvalEvery > 0 && Step % Options.EvalEvery == 0) || Step == Options.Steps) eval = EvaluateAndRecord();
            double seconds = clock.Elapsed.TotalSeconds;
            double perStep = seconds / (Step - startStep);
            progress?.Invoke(new StepProgress(Step, Options.Steps, report, tokens / Math.Max(seconds, 1e-9),
                TimeSpan.FromSeconds(perStep * (Options.Steps - Step)), eval));
            if (Options.SaveEvery > 0 && Step % Options.SaveEvery == 0 && Step < last) SaveCheckpoint();
        }
        SaveCheckpoint();
    }

    /// <summary>Mean cross-entropy over the held-out rows (the first <see cref="TrainingOptions.EvalRows"/>), NaN when there are none.</summary>
    public double Evaluate()
    {
        int count = Options.EvalRows > 0 ? Math.Min(Options.EvalRows, _heldOut.Count) : _heldOut.Count;
        double sum = 0;
        long targets = 0;
        for (int at = 0; at < count; at += Options.BatchRows)
        {
            var batch = _heldOut.Skip(at).Take(Math.Min(Options.BatchRows, count - at)).ToArray();
            if (_model.CountTargets(batch) == 0) continue;
            // The gradients this adds are discarded: every training step starts by zeroing them.
            var r = _model.ForwardBackward(batch);
            sum += r.CrossEntropy * r.TargetCount;
            targets += r.TargetCount;
        }
        _model.ZeroGradients();
        return targets == 0 ? double.NaN : sum / targets;
    }

    private double EvaluateAndRecord()
    {
        double loss = Evaluate();
        if (!double.IsNaN(loss)) EvalLosses.Add(new LossPoint(Step, loss));
        return loss;
    }

    /// <summary>Writes the model, the tokenizer, the training state and the loss curve into the output folder.</summary>
    public void SaveCheckpoint()
    {
        Directory.CreateDirectory(_outputDir);
        TrainingCheckpoint.Save(_outputDir, _model, Options.SaveAs);
        if (_tokenizerFile is not null)
        {
            string target = Path.Combine(_outputDir, "tokenizer.json");
            if (!string.Equals(Path.GetFullPath(_tokenizerFile), Path.GetFullPath(target), StringComparison.Ordinal))
            {
                using var copy = new AtomicFileWriter(target);
                using (var source = File.OpenRead(_tokenizerFile)) source.CopyTo(copy.Stream);
                copy.Commit();
            }
        }
        var tensors = new List<SafeTensorToWrite>();
        void Add(string name, DeviceTensor t)
        {
            var values = new float[t.ElementCount];
            _model.Backend.Download(t, values);
            tensors.Add(SafeTensorToWrite.FromFloat32(name, t.Shape.Select(d => (long)d).ToArray(), values, DType.F32));
        }
        foreach (var (name, t) in TrainableWeights.Named(_model.Weights)) Add("weight." + name, t);
        foreach (var (name, m, v) in _adam.Moments)
        {
            Add("adam_m." + name, m);
            Add("adam_v." + name, v);
        }
        var state = new SavedTrainingState(Step, _adam.StepCount, _order.Pass, _order.Position, Options.Seed, _train.Count,
            TrainLosses.Select(p => new[] { p.Step, p.Loss }).ToArray(), EvalLosses.Select(p => new[] { p.Step, p.Loss }).ToArray());
        SafeTensorsWriter.Write(Path.Combine(_outputDir, StateFileName), tensors, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["training_state"] = JsonSerializer.Serialize(state, TrainingStateJson.Default.SavedTrainingState),
        });
        LossCurvePng.Write(Path.Combine(_outputDir, CurveFileName), TrainLosses, EvalLosses);
    }

    /// <summary>
    /// Continues from the checkpoint in the output folder: master weights, AdamW moments, step, data position and
    /// loss history. The data (row count) and seed must be those of the saved run.
    /// </summary>
    public void Resume()
    {
        string path = Path.Combine(_outputDir, StateFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"no training state to resume from: {path}", path);
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("training_state", out var json))
            throw new InvalidDataException($"{path}: metadata has no \"training_state\"");
        var state = JsonSerializer.Deserialize(json, TrainingStateJson.Default.SavedTrainingState) ?? throw new InvalidDataException($"{path}: empty training_state");
        if (state.Seed != Options.Seed) throw new ArgumentException($"{path}: the run was saved with seed {state.Seed}, not {Options.Seed}");
        if (state.TrainRows != _train.Count)
            throw new ArgumentException($"{path}: the run was saved with {state.TrainRows} training rows, this data packs into {_train.Count} (different data or row length)");
        if (state.Step > Options.Steps) throw new ArgumentException($"{path}: the run is at step {state.Step}, past --steps {Options.Steps}");
        void Read(string name, DeviceTensor t)
        {
            if (!file.Tensors.TryGetValue(name, out var info)) throw new InvalidDataException($"{path}: tensor '{name}' is missing");
            if (info.ElementCount != t.ElementCount) throw new InvalidDataException($"{path}: tensor '{name}' has {info.ElementCount} values, the model needs {t.ElementCount}");
            _model.Backend.Upload(file.ReadAsFloat32(name), t);
        }
        foreach (var (name, t) in TrainableWeights.Named(_model.Weights)) Read("weight." + name, t);
        foreach (var (name, m, v) in _adam.Moments)
        {
            Read("adam_m." + name, m);
            Read("adam_v." + name, v);
        }
        _adam.RestoreStepCount(state.AdamSteps);
        _order.Restore(state.Pass, state.Position);
        Step = state.Step;
        TrainLosses.Clear();
        TrainLosses.AddRange(state.TrainLosses.Select(p => new LossPoint((int)p[0], p[1])));
        EvalLosses.Clear();
        EvalLosses.AddRange(state.EvalLosses.Select(p => new LossPoint((int)p[0], p[1])));
    }

    public void Dispose() => _adam.Dispose();


    /// <summary>
    /// Rows in a seeded random order, reshuffled for every pass; pass p's order depends only on (seed, p), so the
    /// position (pass, index) is the whole state.
    /// </summary>
    private sealed class RowOrder(int count, int seed)
    {
        private int[] _order = [];

        public int Pass { get; private set; } = -1;
        public int Position { get; private set; }

        public int Next()
        {
            if (Pass < 0 || Position == count) Restore(Pass + 1, 0);
            return _order[Position++];
        }

        public void Restore(int pass, int position)
        {
            if (pass < 0) (Pass, Position, _order) = (-1, 0, []);
            else
            {
                if (position < 0 || position > count) throw new InvalidDataException($"data position {position} is outside 0..{count}");
                _order = Enumerable.Range(0, count).ToArray();
                new Random(unchecked(seed * 1_000_003 + pass)).Shuffle(_order);   // seeded System.Random is stable across runs
                (Pass, Position) = (pass, position);
            }
        }
    }
}

/// <summary>The metadata of a training state file.</summary>
internal sealed record SavedTrainingState(int Step, int AdamSteps, int Pass, int Position, int Seed, int TrainRows, double[][] TrainLosses, double[][] EvalLosses);

[JsonSerializable(typeof(SavedTrainingState))]
internal sealed partial class TrainingStateJson : JsonSerializerContext;
