using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Tensors;
using Xunit.Abstractions;

namespace MiniMaxSharp.Tests.Training;

/// <summary>
/// Each backward op of <see cref="IGradientBackend"/> on tiny random shapes against central differences of its own
/// forward op: loss = Σ r ⊙ op(inputs) with random r, so the op's backward with dOutput = r must give ∂loss/∂input.
/// The forward runs in float32, so steps are large (1e-2) and the tolerance is 2e-3 relative (observed: ≤ 1.5e-4); the model-level
/// <see cref="FiniteDifferenceTests"/> check the same ops tightly in float64.
/// </summary>
public sealed class BackwardOpTests(ITestOutputHelper output) : IDisposable
{
    private readonly CpuBackend _b = new(2);
    private readonly List<DeviceTensor> _owned = [];
    private readonly Random _rng = new(17);

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _b.Dispose();
    }

    private DeviceTensor Random(float scale, params int[] shape)
    {
        var t = Zeros(shape);
        var v = new float[t.ElementCount];
        for (int i = 0; i < v.Length; i++) v[i] = (float)((_rng.NextDouble() * 2 - 1) * scale);
        _b.Upload(v, t);
        return t;
    }

    private DeviceTensor Zeros(params int[] shape)
    {
        var t = _b.Allocate(DType.F32, shape);
        _owned.Add(t);
        return t;
    }

    private float[] Values(DeviceTensor t)
    {
        var v = new float[t.ElementCount];
        _b.Download(t, v);
        return v;
    }

    private static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    /// <summary>Compares analytic gradients of each input with central differences of <paramref name="loss"/> on sampled entries.</summary>
    private void Check(string op, Func<double> loss, params (string Name, DeviceTensor Input, float[] Gradient)[] inputs)
    {
        const float h = 1e-2f;
        double worst = 0;
        foreach (var (name, input, gradient) in inputs)
        {
            var x = Values(input);
            double scale = gradient.Max(MathF.Abs);
            Assert.True(scale > 0, $"{op}: the gradient of {name} is zero");
            for (int s = 0; s < 8; s++)
            {
                int i = _rng.Next(x.Length);
                float orig = x[i];
                x[i] = orig + h;
                _b.Upload(x, input);
                double plus = loss();
                x[i] = orig - h;
                _b.Upload(x, input);
                double minus = loss();
                x[i] = orig;
                _b.Upload(x, input);
                double fd = (plus - minus) / (2 * h);
                double err = Math.Abs(gradient[i] - fd) / Math.Max(Math.Abs(fd), 0.05 * scale);
                worst = Math.Max(worst, err);
                Assert.True(err <= 2e-3, $"{op}: d/d{name}[{i}] analytic {gradient[i]:E4}, finite difference {fd:E4}");
            }
        }
        output.WriteLine($"{op}: worst relative error {worst:E2}");
    }

    [Fact]
    public void RmsNorm()
    {
        var x = Random(1.5f, 5, 12);
        var w = Random(1f, 12);
        var r = Values(Random(1f, 5, 12));
        var y = Zeros(5, 12);
        double Loss()
        {
            _b.RmsNorm(x, w, 1e-5f, y);
            return Dot(Values(y), r);
        }
        var dy = Zeros(5, 12);
        _b.Upload(r, dy);
        var dx = Zeros(5, 12);
        var dw = Zeros(12);
        _b.RmsNormBackward(x, w, 1e-5f, dy, dx, accumulate: false, dw);
        Check("RmsNorm", Loss, ("x", x, Values(dx)), ("weight", w, Values(dw)));
    }

    [Fact]
    public void MatMulAndSigmoidGate()
    {
        var x = Random(1f, 6, 9);
        var w = Random(0.5f, 7, 9);
        var gate = Random(2f, 6, 7);
        var r = Values(Random(1f, 6, 7));
        var y = Zeros(6, 7);
        double Loss()
        {
            _b.MatMul(x, w, y);
            _b.SigmoidGate(gate, y, y);
            return Dot(Values(y), r);
        }
        var dOut = Zeros(6, 7);
        _b.Upload(r, dOut);
        _b.MatMul(x, w, y);
        var dy = Zeros(6, 7);
        var dGate = Zeros(6, 7);
        _b.SigmoidGateBackward(gate, y, dOut, dGate, dy);
        var dx = Zeros(6, 9);
        var dw = Zeros(7, 9);
        _b.MatMulBackward(x, w, dy, dx, accumulate: false, dw);
        Check("MatMul+SigmoidGate", Loss, ("x", x, Values(dx)), ("weight", w, Values(dw)), ("gate", gate, Values(dGate)));
    }

    [Fact]
    public void LightningAttentionAcrossBlocksAndSequences()
    {
        // Two sequences of 7 and 5 tokens, block size 3: partial last blocks, state carried across blocks.
        int H = 2, d = 4;
        var layout = BatchLayout.Create([7, 5], [0, 0]);
        float[] slopes = [0.3f, 0.05f];
        var qkv = Random(1.5f, 12, 3 * H * d);
        var r = Values(Random(1f, 12, H * d));
        var o = Zeros(12, H * d);
        double Loss()
        {
            var states = new[] { _b.Allocate(DType.F32, H, d, d), _b.Allocate(DType.F32, H, d, d) };
            _b.LightningAttention(qkv, layout, states, slopes, d, 3, o);
            foreach (var s in states) s.Dispose();
            return Dot(Values(o), r);
        }
        var dOut = Zeros(12, H * d);
        _b.Upload(r, dOut);
        var dQkv = Zeros(12, 3 * H * d);
        _b.LightningAttentionBackward(qkv, layout, slopes, d, 3, dOut, dQkv);
        Check("LightningAttention", Loss, ("qkv", qkv, Values(dQkv)));
    }

    [Fact]
    public void LightningAttentionBackwardBlockSizeOnlyChangesRounding()
    {
        // head_dim above the block length (the block's transpose buffer must hold m×d, not only m×m), and
        // every entry compared, not a sample: block 3 against one block per sequence.
        int H = 2, d = 8;
        var layout = BatchLayout.Create([11, 4, 1], [0, 0, 0]);
        float[] slopes = [0.3f, 0.05f];
        var qkv = Random(1.5f, 16, 3 * H * d);
        var dOut = Random(1f, 16, H * d);
        var blocked = Zeros(16, 3 * H * d);
        var whole = Zeros(16, 3 * H * d);
        _b.LightningAttentionBackward(qkv, layout, slopes, d, 3, dOut, blocked);
        _b.LightningAttentionBackward(qkv, layout, slopes, d, 1000, dOut, whole);
        float[] a = Values(blocked), b = Values(whole);
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            num += ((double)a[i] - b[i]) * (a[i] - b[i]);
            den += (double)b[i] * b[i];
        }
        Assert.True(den > 0);
        Assert.True(Math.Sqrt(num / den) < 1e-5, $"block 3 vs one block: relative difference {Math.Sqrt(num / den):E2}");
    }

    [Fact]
    public void RopeAndSoftmaxAttentionWithGqa()
    {
        // 4 query heads on 2 KV heads, RoPE on 4 of 6 channels, two sequences.
        var shape = new AttentionShape(4, 2, 6);
        var layout = BatchLayout.Create([6, 4], [0, 0]);
        var q = Random(1f, 10, shape.Width);
        var k = Random(1f, 10, shape.KvWidth);
        var v = Random(1f, 10, shape.KvWidth);
        var r = Values(Random(1f, 10, shape.Width));
        var qr = Zeros(10, shape.Width);
        var kr = Zeros(10, shape.KvWidth);
        var o = Zeros(10, shape.Width);
        double Loss()
        {
            _b.CopyRows(q, qr, 10);
            _b.CopyRows(k, kr, 10);
            _b.Rope(qr, layout, 6, 4, 100.0);
            _b.Rope(kr, layout, 6, 4, 100.0);
            var caches = layout.Sequences.Select(s => new KvCache(_b.Allocate(DType.F32, s.TokenCount, shape.KvWidth), _b.Allocate(DType.F32, s.TokenCount, shape.KvWidth))).ToArray();
            _b.SoftmaxAttention(qr, kr, v, layout, caches, shape, o);
            foreach (var c in caches) c.Dispose();
            return Dot(Values(o), r);
        }
        Loss();
        var dOut = Zeros(10, shape.Width);
        _b.Upload(r, dOut);
        var dq = Zeros(10, shape.Width);
        var dk = Zeros(10, shape.KvWidth);
        var dv = Zeros(10, shape.KvWidth);
        _b.SoftmaxAttentionBackward(qr, kr, v, layout, shape, dOut, dq, dk, dv);
        _b.RopeBackward(dq, layout, 6, 4, 100.0);
        _b.RopeBackward(dk, layout, 6, 4, 100.0);
        Check("Rope+SoftmaxAttention", Loss, ("q", q, Values(dq)), ("k", k, Values(dk)), ("v", v, Values(dv)));
    }

    [Fact]
    public void MixtureOfExpertsWithRouterProbabilityGradient()
    {
        int T = 7, hidden = 6, inter = 5, E = 4, topK = 2;
        var x = Random(1f, T, hidden);
        var router = Random(1f, E, hidden);
        var experts = Enumerable.Range(0, E).Select(_ => new ExpertWeights(Random(0.6f, inter, hidden), Random(0.6f, hidden, inter), Random(0.6f, inter, hidden))).ToArray();
        var r = Values(Random(1f, T, hidden));
        float[] probGrad = [0.7f, -0.4f, 0.2f, 1.1f];   // stands for ∂loss/∂p of a load-balancing term
        var y = Zeros(T, hidden);
        double Loss()
        {
            _b.MixtureOfExperts(x, router, experts, topK, y);
            var counts = new double[E];
            var sums = new double[E];
            _b.RouterStatistics(x, router, topK, counts, sums);
            double aux = 0;
            for (int e = 0; e < E; e++) aux += probGrad[e] * sums[e];
            return Dot(Values(y), r) + aux;
        }
        var dOut = Zeros(T, hidden);
        _b.Upload(r, dOut);
        var dx = Zeros(T, hidden);
        var dRouter = Zeros(E, hidden);
        var dExperts = Enumerable.Range(0, E).Select(_ => new ExpertWeights(Zeros(inter, hidden), Zeros(hidden, inter), Zeros(inter, hidden))).ToArray();
        _b.MixtureOfExpertsBackward(x, router, experts, topK, dOut, probGrad, dx, accumulate: false, dRouter, dExperts);
        var used = Enumerable.Range(0, E).First(e => Values(dExperts[e].W1).Any(g => g != 0));
        Check("MixtureOfExperts", Loss, ("x", x, Values(dx)), ("router", router, Values(dRouter)),
            ("w1", experts[used].W1, Values(dExperts[used].W1)), ("w2", experts[used].W2, Values(dExperts[used].W2)), ("w3", experts[used].W3, Values(dExperts[used].W3)));
    }

    [Fact]
    public void LmHeadCrossEntropyOverSeveralChunksAndEmbedding()
    {
        // More rows than one chunk of logits, some ignored.
        int T = CpuBackend.CrossEntropyChunkRows + 9, hidden = 5, V = 11;
        var table = Random(1f, V, hidden);
        var lmHead = Random(1f, V, hidden);
        int[] ids = Enumerable.Range(0, T).Select(_ => _rng.Next(V)).ToArray();
        int[] targets = Enumerable.Range(0, T).Select(t => t % 7 == 3 ? IGradientBackend.IgnoredTarget : _rng.Next(V)).ToArray();
        var h = Zeros(T, hidden);
        var dh = Zeros(T, hidden);
        var dScratch = Zeros(V, hidden);
        float scale = 1f / targets.Count(t => t >= 0);
        double Loss()
        {
            _b.Embedding(table, ids, h);
            return scale * _b.LmHeadCrossEntropy(h, lmHead, targets, scale, dh, dScratch);
        }
        Loss();
        var dLmHead = Zeros(V, hidden);
        _b.LmHeadCrossEntropy(h, lmHead, targets, scale, dh, dLmHead);
        var dTable = Zeros(V, hidden);
        _b.EmbeddingBackward(ids, dh, dTable);
        Check("LmHeadCrossEntropy+Embedding", Loss, ("lm_head", lmHead, Values(dLmHead)), ("embedding", table, Values(dTable)));
    }
}
