using System.Collections.Immutable;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>
/// The MiniMax-01 decoder for training: a forward pass over packed documents that keeps the activations the
/// backward needs, then the backward layer by layer through the gradient ops (<see cref="IGradientBackend"/>).
/// Weights are float32 masters (<see cref="Weights"/>); gradients accumulate into <see cref="Gradients"/>
/// (same structure) until <see cref="ZeroGradients"/>.
/// </summary>
public sealed class TrainingModel : IDisposable
{
    private readonly IGradientBackend _grad;
    private readonly float[][] _slopes;

    /// <param name="weights">Float32 master weights (see <see cref="TrainableWeights.CopyToFloat32"/>); the model owns them.</param>
    public TrainingModel(ModelConfig config, ModelWeights weights, IComputeBackend backend)
    {
        _grad = backend as IGradientBackend ?? throw new ArgumentException($"backend '{backend.Name}' has no gradient ops");
        foreach (var t in weights.AllTensors())
            if (t.DType != DType.F32) throw new ArgumentException($"training needs float32 master weights, got {t}");
        Config = config;
        Weights = weights;
        Backend = backend;
        Gradients = TrainableWeights.ZerosLike(weights, backend);
        _slopes = new float[config.NumLayers][];
        for (int l = 0; l < config.NumLayers; l++) _slopes[l] = LightningDecay.Slopes(config.NumHeads, l, config.NumLayers);
    }

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public ModelWeights Gradients { get; }
    public IComputeBackend Backend { get; }

    /// <summary>When set, every forward + backward times its phases (synchronising at each boundary; benchmarks only).</summary>
    public TrainingProfiler? Profiler { get; set; }

    private void Mark(TrainingPhase phase) => Profiler?.Mark(phase);

    /// <summary>Loads a model folder and copies its weights to float32 masters.</summary>
    public static TrainingModel Load(string modelDir, IComputeBackend backend)
    {
        using var loaded = ModelLoader.Load(modelDir, backend);
        return new TrainingModel(loaded.Config, TrainableWeights.CopyToFloat32(loaded.Weights, backend), backend);
    }

    public void ZeroGradients()
    {
        foreach (var (_, g) in TrainableWeights.Named(Gradients)) _grad.Clear(g);
    }

    /// <summary>
    /// Forward and backward over one batch: ADDS the gradient of the batch's loss (mean cross-entropy, plus the
    /// load-balancing loss when <paramref name="includeAuxLoss"/>) to <see cref="Gradients"/>, returns the loss.
    /// For gradient accumulation over micro-batches, <paramref name="stepTargets"/> is the number of targets of the
    /// whole step (the cross-entropy gradient is of sum / stepTargets) and <paramref name="auxWeight"/> weighs this
    /// micro-batch's load-balancing gradient; the returned losses are always this batch's own.
    /// </summary>
    public LossReport ForwardBackward(IReadOnlyList<TrainingExample> batch, bool includeAuxLoss = false, int? stepTargets = null, float auxWeight = 1f)
    {
        var (ids, targets, layout) = Pack(batch);
        int count = targets.Count(t => t != TrainingExample.IgnoreIndex);
        if (count == 0) throw new ArgumentException("no position of the batch has a label to predict (all labels are -100 or documents are one token long)");
        int normaliser = stepTargets ?? count;
        if (normaliser < count) throw new ArgumentException($"the step has {normaliser} targets but this batch alone has {count}");
        // In bf16 product mode the backend may convert each weight to bf16 once for this forward + backward: the
        // weights do not change until the optimiser runs, after it.
        using var weightCopies = (Backend as IMixedPrecisionTraining)?.WeightCopyScope();
        using var step = new Step(this, layout);
        var c = Config;
        var b = Backend;
        var W = Weights;
        int E = c.NumExperts;

        // ---- forward ----
        var x = step.Hidden();
        b.Embedding(W.Embedding, ids, x);
        Mark(TrainingPhase.ForwardOther);
        var acts = new LayerActivations[c.NumLayers];
        var slotCounts = new double[E];
        var probSums = new double[E];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = W.Layers[l];
            var a = acts[l] = new LayerActivations { X = x, Y = step.Hidden(), H = step.Hidden(), Z = step.Hidden() };
            b.RmsNorm(a.X, w.InputNorm, c.RmsNormEps, a.Y);
            var branch = step.Hidden();
            Mark(TrainingPhase.ForwardOther);
            if (w.Kind == LayerKind.Lightning) LightningForward(l, w, a, branch, step);
            else SoftmaxForward(w, a, branch, step);
            var ra = c.AttentionResidual(l);
            b.ScaleAdd(a.Y, ra.Alpha, branch, ra.Beta, a.H);
            b.RmsNorm(a.H, w.PostAttentionNorm, c.RmsNormEps, a.Z);
            Mark(TrainingPhase.ForwardOther);
            if (includeAuxLoss) _grad.RouterStatistics(a.Z, w.Router, c.ExpertsPerToken, slotCounts, probSums);
            b.MixtureOfExperts(a.Z, w.Router, w.Experts, c.ExpertsPerToken, branch);
            Mark(TrainingPhase.ForwardMoe);
            x = step.Hidden();
            b.ScaleAdd(a.Z, c.MlpResidual.Alpha, branch, c.MlpResidual.Beta, x);
        }
        var finalNormed = step.Hidden();
        b.RmsNorm(x, W.FinalNorm, c.RmsNormEps, finalNormed);
        Mark(TrainingPhase.ForwardOther);

        // Load-balancing loss over every (layer, token) router output: coef · E · Σ_e f_e P_e with f_e the fraction
        // of token-slots routed to e and P_e the mean probability of e. f is piecewise constant, so
        // ∂/∂p[l, t, e] = coef · E · f_e / N.
        double aux = 0;
        float[] auxGradient = [];
        if (includeAuxLoss)
        {
            double n = (double)c.NumLayers * layout.TotalTokens;
            auxGradient = new float[E];
            for (int e = 0; e < E; e++)
            {
                double f = slotCounts[e] / (n * c.ExpertsPerToken);
                aux += c.RouterAuxLossCoef * E * f * probSums[e] / n;
                auxGradient[e] = (float)(auxWeight * c.RouterAuxLossCoef * E * f / n);
            }
        }

        // ---- backward ----
        var G = Gradients;
        var dNormed = step.Hidden();
        double ceSum = _grad.LmHeadCrossEntropy(finalNormed, W.LmHead, targets, (float)(1.0 / normaliser), dNormed, G.LmHead);
        Mark(TrainingPhase.LmHeadCrossEntropy);
        var dx = step.Hidden();
        _grad.RmsNormBackward(x, W.FinalNorm, c.RmsNormEps, dNormed, dx, accumulate: false, G.FinalNorm);
        var dScratch = step.Hidden();
        var dz = step.Hidden();
        var dh = step.Hidden();
        var dy = step.Hidden();
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            var w = W.Layers[l];
            var gw = G.Layers[l];
            var a = acts[l];
            // x_{l+1} = α_mlp·z + β_mlp·MoE(z)
            b.ScaleAdd(dx, c.MlpResidual.Beta, dx, 0f, dScratch);
            Mark(TrainingPhase.BackwardOther);
            _grad.MixtureOfExpertsBackward(a.Z, w.Router, w.Experts, c.ExpertsPerToken, dScratch, auxGradient, dz, accumulate: false, gw.Router, gw.Experts);
            Mark(TrainingPhase.BackwardMoe);
            b.ScaleAdd(dz, 1f, dx, c.MlpResidual.Alpha, dz);
            _grad.RmsNormBackward(a.H, w.PostAttentionNorm, c.RmsNormEps, dz, dh, accumulate: false, gw.PostAttentionNorm);
            // h = α·y + β·Attn(y)
            var ra = c.AttentionResidual(l);
            b.ScaleAdd(dh, ra.Alpha, dh, 0f, dy);
            b.ScaleAdd(dh, ra.Beta, dh, 0f, dScratch);
            Mark(TrainingPhase.BackwardOther);
            if (w.Kind == LayerKind.Lightning) LightningBackward(l, w, gw, a, dScratch, dy, step);
            else SoftmaxBackward(w, gw, a, dScratch, dy, step);
            _grad.RmsNormBackward(a.X, w.InputNorm, c.RmsNormEps, dy, dx, accumulate: false, gw.InputNorm);
        }
        _grad.EmbeddingBackward(ids, dx, G.Embedding);
        Mark(TrainingPhase.BackwardOther);
        return new LossReport(ceSum / count, aux, count);
    }

    private void LightningForward(int layer, LayerWeights w, LayerActivations a, DeviceTensor output, Step step)
    {
        var c = Config;
        var b = Backend;
        a.Qkv = step.Tensor(3 * c.AttentionWidth);
        a.Attn = step.Tensor(c.AttentionWidth);
        a.Normed = step.Tensor(c.AttentionWidth);
        a.Gate = step.Tensor(c.AttentionWidth);
        a.Gated = step.Tensor(c.AttentionWidth);
        b.MatMul(a.Y, w.QkvProj!, a.Qkv);
        Mark(TrainingPhase.ForwardProjections);
        var states = step.Layout.Sequences.Select(_ => step.Take(c.NumHeads, c.HeadDim, c.HeadDim)).ToArray();
        b.LightningAttention(a.Qkv, step.Layout, states, _slopes[layer], c.HeadDim, c.BlockSize, a.Attn);
        Mark(TrainingPhase.ForwardLightning);
        b.RmsNorm(a.Attn, w.OutputNorm!, c.LightningNormEps, a.Normed);
        Mark(TrainingPhase.ForwardOther);
        b.MatMul(a.Y, w.OutputGate!, a.Gate);
        Mark(TrainingPhase.ForwardProjections);
        b.SigmoidGate(a.Gate, a.Normed, a.Gated);
        Mark(TrainingPhase.ForwardOther);
        b.MatMul(a.Gated, w.OutProj!, output);
        Mark(TrainingPhase.ForwardProjections);
    }

    private void LightningBackward(int layer, LayerWeights w, LayerWeights gw, LayerActivations a, DeviceTensor dOut, DeviceTensor dy, Step step)
    {
        var c = Config;
        var dGated = step.Tensor(c.AttentionWidth);
        var dGate = step.Tensor(c.AttentionWidth);
        var dNormed = step.Tensor(c.AttentionWidth);
        var dAttn = step.Tensor(c.AttentionWidth);
        var dQkv = step.Tensor(3 * c.AttentionWidth);
        _grad.MatMulBackward(a.Gated!, w.OutProj!, dOut, dGated, accumulate: false, gw.OutProj!);
        Mark(TrainingPhase.BackwardProjections);
        _grad.SigmoidGateBackward(a.Gate!, a.Normed!, dGated, dGate, dNormed);
        Mark(TrainingPhase.BackwardOther);
        _grad.MatMulBackward(a.Y, w.OutputGate!, dGate, dy, accumulate: true, gw.OutputGate!);
        Mark(TrainingPhase.BackwardProjections);
        _grad.RmsNormBackward(a.Attn!, w.OutputNorm!, c.LightningNormEps, dNormed, dAttn, accumulate: false, gw.OutputNorm!);
        Mark(TrainingPhase.BackwardOther);
        _grad.LightningAttentionBackward(a.Qkv!, step.Layout, _slopes[layer], c.HeadDim, c.BlockSize, dAttn, dQkv);
        Mark(TrainingPhase.BackwardLightning);
        _grad.MatMulBackward(a.Y, w.QkvProj!, dQkv, dy, accumulate: true, gw.QkvProj!);
        Mark(TrainingPhase.BackwardProjections);
    }

    private void SoftmaxForward(LayerWeights w, LayerActivations a, DeviceTensor output, Step step)
    {
        var c = Config;
        var b = Backend;
        a.Q = step.Tensor(c.AttentionWidth);
        a.K = step.Tensor(c.KvWidth);
        a.V = step.Tensor(c.KvWidth);
        a.Attn = step.Tensor(c.AttentionWidth);
        b.MatMul(a.Y, w.QProj!, a.Q);
        b.MatMul(a.Y, w.KProj!, a.K);
        b.MatMul(a.Y, w.VProj!, a.V);
        Mark(TrainingPhase.ForwardProjections);
        b.Rope(a.Q, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        b.Rope(a.K, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        Mark(TrainingPhase.ForwardOther);
        var caches = step.Layout.Sequences.Select(s => new KvCache(step.Take(s.TokenCount, c.KvWidth), step.Take(s.TokenCount, c.KvWidth))).ToArray();
        b.SoftmaxAttention(a.Q, a.K, a.V, step.Layout, caches, Shape, a.Attn);
        Mark(TrainingPhase.ForwardSoftmax);
        b.MatMul(a.Attn, w.OProj!, output);
        Mark(TrainingPhase.ForwardProjections);
    }

    private void SoftmaxBackward(LayerWeights w, LayerWeights gw, LayerActivations a, DeviceTensor dOut, DeviceTensor dy, Step step)
    {
        var c = Config;
        var dAttn = step.Tensor(c.AttentionWidth);
        var dq = step.Tensor(c.AttentionWidth);
        var dk = step.Tensor(c.KvWidth);
        var dv = step.Tensor(c.KvWidth);
        _grad.MatMulBackward(a.Attn!, w.OProj!, dOut, dAttn, accumulate: false, gw.OProj!);
        Mark(TrainingPhase.BackwardProjections);
        _grad.SoftmaxAttentionBackward(a.Q!, a.K!, a.V!, step.Layout, Shape, dAttn, dq, dk, dv);
        Mark(TrainingPhase.BackwardSoftmax);
        _grad.RopeBackward(dq, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        _grad.RopeBackward(dk, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        Mark(TrainingPhase.BackwardOther);
        _grad.MatMulBackward(a.Y, w.QProj!, dq, dy, accumulate: true, gw.QProj!);
        _grad.MatMulBackward(a.Y, w.KProj!, dk, dy, accumulate: true, gw.KProj!);
        _grad.MatMulBackward(a.Y, w.VProj!, dv, dy, accumulate: true, gw.VProj!);
        Mark(TrainingPhase.BackwardProjections);
    }

    private AttentionShape Shape => new(Config.NumHeads, Config.NumKvHeads, Config.HeadDim);

    /// <summary>How many positions of the batch have a target (what the mean cross-entropy divides by).</summary>
    public int CountTargets(IReadOnlyList<TrainingExample> batch) => Pack(batch).Targets.Count(t => t != TrainingExample.IgnoreIndex);

    /// <summary>Every document of every row as its own sequence of one packed layout; targets shifted inside each document.</summary>
    private (int[] Ids, int[] Targets, BatchLayout Layout) Pack(IReadOnlyList<TrainingExample> batch)
    {
        if (batch.Count == 0) throw new ArgumentException("a training batch needs at least one example");
        var ids = new List<int>();
        var targets = new List<int>();
        var spans = ImmutableArray.CreateBuilder<SequenceSpan>();
        int V = Config.VocabSize;
        for (int r = 0; r < batch.Count; r++)
        {
            var ex = batch[r];
            int n = ex.InputIds.Length;
            if (n == 0) throw new ArgumentException($"example {r} has no tokens");
            if (ex.Labels.Length != n) throw new ArgumentException($"example {r}: {n} input ids but {ex.Labels.Length} labels");
            for (int t = 0; t < n; t++)
            {
                if ((uint)ex.InputIds[t] >= (uint)V) throw new ArgumentOutOfRangeException(nameof(batch), $"example {r}: input id {ex.InputIds[t]} at position {t} is outside the vocabulary 0..{V - 1}");
                if (ex.Labels[t] != TrainingExample.IgnoreIndex && (uint)ex.Labels[t] >= (uint)V)
                    throw new ArgumentOutOfRangeException(nameof(batch), $"example {r}: label {ex.Labels[t]} at position {t} is outside the vocabulary 0..{V - 1} and is not -100");
            }
            int[] docs = ex.DocumentLengths ?? [n];
            if (docs.Any(d => d <= 0) || docs.Sum() != n)
                throw new ArgumentException($"example {r}: document lengths [{string.Join(", ", docs)}] must be positive and add up to its {n} tokens");
            int at = 0;
            foreach (int len in docs)
            {
                spans.Add(new SequenceSpan(ids.Count, len, 0));
                for (int t = at; t < at + len; t++)
                {
                    ids.Add(ex.InputIds[t]);
                    targets.Add(t + 1 < at + len ? ex.Labels[t + 1] : TrainingExample.IgnoreIndex);
                }
                at += len;
            }
        }
        return ([.. ids], [.. targets], new BatchLayout(spans.ToImmutable()));
    }

    public void Dispose()
    {
        ReleaseSpareTensors();
        Gradients.Dispose();
        Weights.Dispose();
    }

    // Activations of a step are kept for the next step of the same token count (training repeats one shape): no device
    // allocation or free per step (on CUDA a free waits for the GPU). A step of another token count releases them.
    private readonly Dictionary<string, Stack<DeviceTensor>> _spareTensors = [];
    private int _spareTokens = -1;

    private DeviceTensor TakeTensor(params int[] shape)
    {
        if (_spareTensors.TryGetValue(string.Join(",", shape), out var spare) && spare.Count > 0)
        {
            var t = spare.Pop();
            _grad.Clear(t);   // as fresh as Allocate's
            return t;
        }
        return Backend.Allocate(DType.F32, shape);
    }

    private void ReturnTensors(IEnumerable<DeviceTensor> tensors, int totalTokens)
    {
        if (totalTokens != _spareTokens) ReleaseSpareTensors();
        _spareTokens = totalTokens;
        foreach (var t in tensors)
        {
            string key = string.Join(",", t.Shape);
            if (!_spareTensors.TryGetValue(key, out var spare)) _spareTensors[key] = spare = new Stack<DeviceTensor>();
            spare.Push(t);
        }
    }

    private void ReleaseSpareTensors()
    {
        foreach (var spare in _spareTensors.Values)
            while (spare.Count > 0) spare.Pop().Dispose();
        _spareTensors.Clear();
        _spareTokens = -1;
    }

    /// <summary>What the backward needs of one layer's forward.</summary>
    private sealed class LayerActivations
    {
        public required DeviceTensor X, Y, H, Z;           // input, input-normed, after attention residual, post-normed
        public DeviceTensor? Qkv, Attn, Normed, Gate, Gated;  // lightning (Attn is also the softmax attention output)
        public DeviceTensor? Q, K, V;                       // softmax, after RoPE
    }

    /// <summary>The float32 tensors of one forward-backward step (zeroed when taken), handed back together for the next step.</summary>
    private sealed class Step : IDisposable
    {
        private readonly TrainingModel _model;
        private readonly List<DeviceTensor> _owned = [];

        public Step(TrainingModel model, BatchLayout layout)
        {
            _model = model;
            Layout = layout;
            if (layout.TotalTokens != model._spareTokens) model.ReleaseSpareTensors();
        }

        public BatchLayout Layout { get; }

        public DeviceTensor Take(params int[] shape)
        {
            var t = _model.TakeTensor(shape);
            _owned.Add(t);
            return t;
        }

        public DeviceTensor Tensor(int width) => Take(Layout.TotalTokens, width);
        public DeviceTensor Hidden() => Tensor(_model.Config.HiddenSize);
        public void Dispose() => _model.ReturnTensors(_owned, Layout.TotalTokens);
    }
}
