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
        using var step = new Step(this, layout);
        var c = Config;
        var b = Backend;
        var W = Weights;
        int E = c.NumExperts;

        // ---- forward ----
        var x = step.Hidden();
        b.Embedding(W.Embedding, ids, x);
        var acts = new LayerActivations[c.NumLayers];
        var slotCounts = new double[E];
        var probSums = new double[E];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = W.Layers[l];
            var a = acts[l] = new LayerActivations { X = x, Y = step.Hidden(), H = step.Hidden(), Z = step.Hidden() };
            b.RmsNorm(a.X, w.InputNorm, c.RmsNormEps, a.Y);
            var branch = step.Hidden();
            if (w.Kind == LayerKind.Lightning) LightningForward(l, w, a, branch, step);
            else SoftmaxForward(w, a, branch, step);
            var ra = c.AttentionResidual(l);
            b.ScaleAdd(a.Y, ra.Alpha, branch, ra.Beta, a.H);
            b.RmsNorm(a.H, w.PostAttentionNorm, c.RmsNormEps, a.Z);
            if (includeAuxLoss) _grad.RouterStatistics(a.Z, w.Router, c.ExpertsPerToken, slotCounts, probSums);
            b.MixtureOfExperts(a.Z, w.Router, w.Experts, c.ExpertsPerToken, branch);
            x = step.Hidden();
            b.ScaleAdd(a.Z, c.MlpResidual.Alpha, branch, c.MlpResidual.Beta, x);
        }
        var finalNormed = step.Hidden();
        b.RmsNorm(x, W.FinalNorm, c.RmsNormEps, finalNormed);

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
            _grad.MixtureOfExpertsBackward(a.Z, w.Router, w.Experts, c.ExpertsPerToken, dScratch, auxGradient, dz, accumulate: false, gw.Router, gw.Experts);
            b.ScaleAdd(dz, 1f, dx, c.MlpResidual.Alpha, dz);
            _grad.RmsNormBackward(a.H, w.PostAttentionNorm, c.RmsNormEps, dz, dh, accumulate: false, gw.PostAttentionNorm);
            // h = α·y + β·Attn(y)
            var ra = c.AttentionResidual(l);
            b.ScaleAdd(dh, ra.Alpha, dh, 0f, dy);
            b.ScaleAdd(dh, ra.Beta, dh, 0f, dScratch);
            if (w.Kind == LayerKind.Lightning) LightningBackward(l, w, gw, a, dScratch, dy, step);
            else SoftmaxBackward(w, gw, a, dScratch, dy, step);
            _grad.RmsNormBackward(a.X, w.InputNorm, c.RmsNormEps, dy, dx, accumulate: false, gw.InputNorm);
        }
        _grad.EmbeddingBackward(ids, dx, G.Embedding);
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
        var states = step.Layout.Sequences.Select(_ => step.Own(b.Allocate(DType.F32, c.NumHeads, c.HeadDim, c.HeadDim))).ToArray();
        b.LightningAttention(a.Qkv, step.Layout, states, _slopes[layer], c.HeadDim, c.BlockSize, a.Attn);
        b.RmsNorm(a.Attn, w.OutputNorm!, c.LightningNormEps, a.Normed);
        b.MatMul(a.Y, w.OutputGate!, a.Gate);
        b.SigmoidGate(a.Gate, a.Normed, a.Gated);
        b.MatMul(a.Gated, w.OutProj!, output);
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
        _grad.SigmoidGateBackward(a.Gate!, a.Normed!, dGated, dGate, dNormed);
        _grad.MatMulBackward(a.Y, w.OutputGate!, dGate, dy, accumulate: true, gw.OutputGate!);
        _grad.RmsNormBackward(a.Attn!, w.OutputNorm!, c.LightningNormEps, dNormed, dAttn, accumulate: false, gw.OutputNorm!);
        _grad.LightningAttentionBackward(a.Qkv!, step.Layout, _slopes[layer], c.HeadDim, c.BlockSize, dAttn, dQkv);
        _grad.MatMulBackward(a.Y, w.QkvProj!, dQkv, dy, accumulate: true, gw.QkvProj!);
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
        b.Rope(a.Q, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        b.Rope(a.K, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        var caches = step.Layout.Sequences.Select(s => new KvCache(
            step.Own(b.Allocate(DType.F32, s.TokenCount, c.KvWidth)), step.Own(b.Allocate(DType.F32, s.TokenCount, c.KvWidth)))).ToArray();
        b.SoftmaxAttention(a.Q, a.K, a.V, step.Layout, caches, Shape, a.Attn);
        b.MatMul(a.Attn, w.OProj!, output);
    }

    private void SoftmaxBackward(LayerWeights w, LayerWeights gw, LayerActivations a, DeviceTensor dOut, DeviceTensor dy, Step step)
    {
        var c = Config;
        var dAttn = step.Tensor(c.AttentionWidth);
        var dq = step.Tensor(c.AttentionWidth);
        var dk = step.Tensor(c.KvWidth);
        var dv = step.Tensor(c.KvWidth);
        _grad.MatMulBackward(a.Attn!, w.OProj!, dOut, dAttn, accumulate: false, gw.OProj!);
        _grad.SoftmaxAttentionBackward(a.Q!, a.K!, a.V!, step.Layout, Shape, dAttn, dq, dk, dv);
        _grad.RopeBackward(dq, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        _grad.RopeBackward(dk, step.Layout, c.HeadDim, c.RotaryDim, c.RopeTheta);
        _grad.MatMulBackward(a.Y, w.QProj!, dq, dy, accumulate: true, gw.QProj!);
        _grad.MatMulBackward(a.Y, w.KProj!, dk, dy, accumulate: true, gw.KProj!);
        _grad.MatMulBackward(a.Y, w.VProj!, dv, dy, accumulate: true, gw.VProj!);
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
        Gradients.Dispose();
        Weights.Dispose();
    }

    /// <summary>What the backward needs of one layer's forward.</summary>
    private sealed class LayerActivations
    {
        public required DeviceTensor X, Y, H, Z;           // input, input-normed, after attention residual, post-normed
        public DeviceTensor? Qkv, Attn, Normed, Gate, Gated;  // lightning (Attn is also the softmax attention output)
        public DeviceTensor? Q, K, V;                       // softmax, after RoPE
    }

    /// <summary>The tensors of one forward-backward step, freed together.</summary>
    private sealed class Step(TrainingModel model, BatchLayout layout) : IDisposable
    {
        private readonly List<DeviceTensor> _owned = [];
        public BatchLayout Layout { get; } = layout;
        public DeviceTensor Own(DeviceTensor t)
        {
            _owned.Add(t);
            return t;
        }
        public DeviceTensor Tensor(int width) => Own(model.Backend.Allocate(DType.F32, Layout.TotalTokens, width));
        public DeviceTensor Hidden() => Tensor(model.Config.HiddenSize);
        public void Dispose()
        {
            foreach (var t in _owned) t.Dispose();
        }
    }
}
