using MiniMaxSharp.Config;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests.Reference;

/// <summary>
/// The spec written out literally in float64, one sequence at a time, lightning layers in their
/// recurrent form (the definition). Slow and plain on purpose: the CPU backend is checked against it.
/// Weights are read by their original checkpoint names, widened to double.
/// </summary>
internal sealed class ReferenceModel(ModelConfig c, Func<string, double[]> weight)
{
    /// <summary>Called with (layer, router probabilities) for every token's MoE (the load-balancing loss).</summary>
    public Action<int, double[]>? RouterObserver { get; set; }

    /// <summary>Logits [T, vocab] and hidden states [L+1][T, hidden] (the last final-normed).</summary>
    public (double[][] Logits, double[][][] Hidden) Run(int[] ids)
    {
        int T = ids.Length, Hd = c.HiddenSize;
        var emb = weight("model.embed_tokens.weight");
        var x = new double[T][];
        for (int t = 0; t < T; t++) x[t] = emb.AsSpan(ids[t] * Hd, Hd).ToArray();
        var hidden = new double[c.NumLayers + 1][][];
        hidden[0] = Clone(x);
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var y = x.Select(r => RmsNorm(r, weight(p + "input_layernorm.weight"), c.RmsNormEps)).ToArray();
            var a = c.LayerKinds[l] == LayerKind.Lightning ? Lightning(l, y) : Softmax(l, y);
            var ra = c.AttentionResidual(l);
            var h = new double[T][];
            for (int t = 0; t < T; t++) h[t] = Axpby(ra.Alpha, y[t], ra.Beta, a[t]);
            var z = h.Select(r => RmsNorm(r, weight(p + "post_attention_layernorm.weight"), c.RmsNormEps)).ToArray();
            for (int t = 0; t < T; t++) x[t] = Axpby(c.MlpResidual.Alpha, z[t], c.MlpResidual.Beta, Moe(l, z[t]));
            hidden[l + 1] = Clone(x);
        }
        var final = x.Select(r => RmsNorm(r, weight("model.norm.weight"), c.RmsNormEps)).ToArray();
        hidden[c.NumLayers] = final;
        var head = weight(c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        var logits = final.Select(r => Linear(head, c.VocabSize, r)).ToArray();
        return (logits, hidden);
    }

    private double[][] Lightning(int l, double[][] y)
    {
        string p = $"model.layers.{l}.self_attn.";
        int H = c.NumHeads, d = c.HeadDim, T = y.Length;
        var qkvW = weight(p + "qkv_proj.weight");
        var slopes = LightningDecay.BaseSlopes(H).Select(b => b * (1.0 - l / (c.NumLayers - 1 + 1e-5) + 1e-5)).ToArray();
        var S = new double[H][,];
        for (int h = 0; h < H; h++) S[h] = new double[d, d];
        var outs = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var qkv = Linear(qkvW, 3 * H * d, y[t]).Select(SiLU).ToArray();
            var o = new double[H * d];
            for (int h = 0; h < H; h++)
            {
                int b = h * 3 * d;
                double lambda = Math.Exp(-slopes[h]);
                for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                    S[h][i, j] = lambda * S[h][i, j] + qkv[b + d + i] * qkv[b + 2 * d + j];
                for (int j = 0; j < d; j++)
                {
                    double s = 0;
                    for (int i = 0; i < d; i++) s += qkv[b + i] * S[h][i, j];
                    o[h * d + j] = s;
                }
            }
            o = RmsNorm(o, weight(p + "norm.weight"), c.LightningNormEps);
            var gate = Linear(weight(p + "output_gate.weight"), H * d, y[t]);
            for (int i = 0; i < o.Length; i++) o[i] *= 1.0 / (1.0 + Math.Exp(-gate[i]));
            outs[t] = Linear(weight(p + "out_proj.weight"), c.HiddenSize, o);
        }
        return outs;
    }

    private double[][] Softmax(int l, double[][] y)
    {
        string p = $"model.layers.{l}.self_attn.";
        int H = c.NumHeads, KV = c.NumKvHeads, d = c.HeadDim, T = y.Length;
        var q = y.Select(r => Linear(weight(p + "q_proj.weight"), H * d, r)).ToArray();
        var k = y.Select(r => Linear(weight(p + "k_proj.weight"), KV * d, r)).ToArray();
        var v = y.Select(r => Linear(weight(p + "v_proj.weight"), KV * d, r)).ToArray();
        for (int t = 0; t < T; t++)
        {
            Rope(q[t], H, t);
            Rope(k[t], KV, t);
        }
        var outs = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var o = new double[H * d];
            for (int h = 0; h < H; h++)
            {
                int g = h / (H / KV);
                var scores = new double[t + 1];
                for (int s = 0; s <= t; s++)
                {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += q[t][h * d + i] * k[s][g * d + i];
                    scores[s] = dot / Math.Sqrt(d);
                }
                double max = scores.Max(), sum = 0;
                for (int s = 0; s <= t; s++) sum += scores[s] = Math.Exp(scores[s] - max);
                for (int s = 0; s <= t; s++)
                for (int i = 0; i < d; i++)
                    o[h * d + i] += scores[s] / sum * v[s][g * d + i];
            }
            outs[t] = Linear(weight(p + "o_proj.weight"), c.HiddenSize, o);
        }
        return outs;
    }

    private void Rope(double[] x, int heads, int pos)
    {
        int d = c.HeadDim, r = c.RotaryDim, half = r / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
            {
                // float32 inv_freq and angle, as the references compute them
                float invFreq = 1f / MathF.Pow((float)c.RopeTheta, 2f * j / r);
                double angle = (float)pos * invFreq;
                double a = x[h * d + j], b = x[h * d + j + half];
                x[h * d + j] = a * Math.Cos(angle) - b * Math.Sin(angle);
                x[h * d + j + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
            }
    }

    private double[] Moe(int l, double[] z)
    {
        string p = $"model.layers.{l}.block_sparse_moe.";
        var logits = Linear(weight(p + "gate.weight"), c.NumExperts, z);
        double max = logits.Max();
        var prob = logits.Select(v => Math.Exp(v - max)).ToArray();
        double total = prob.Sum();
        for (int e = 0; e < prob.Length; e++) prob[e] /= total;
        RouterObserver?.Invoke(l, prob);
        var top = Enumerable.Range(0, c.NumExperts).OrderByDescending(e => prob[e]).ThenBy(e => e).Take(c.ExpertsPerToken).ToArray();
        double norm = top.Sum(e => prob[e]);
        var result = new double[c.HiddenSize];
        foreach (int e in top)
        {
            string ep = $"{p}experts.{e}.";
            var g = Linear(weight(ep + "w1.weight"), c.IntermediateSize, z);
            var u = Linear(weight(ep + "w3.weight"), c.IntermediateSize, z);
            for (int i = 0; i < g.Length; i++) g[i] = SiLU(g[i]) * u[i];
            var o = Linear(weight(ep + "w2.weight"), c.HiddenSize, g);
            for (int i = 0; i < o.Length; i++) result[i] += prob[e] / norm * o[i];
        }
        return result;
    }

    private static double SiLU(double v) => v / (1.0 + Math.Exp(-v));

    private static double[] Linear(double[] w, int rows, double[] x)
    {
        int cols = x.Length;
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int i = 0; i < cols; i++) s += w[(long)r * cols + i] * x[i];
            y[r] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, double[] w, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double inv = 1.0 / Math.Sqrt(ms + eps);
        return x.Select((v, i) => w[i] * v * inv).ToArray();
    }

    private static double[] Axpby(double a, double[] x, double b, double[] y) => x.Select((v, i) => a * v + b * y[i]).ToArray();

    private static double[][] Clone(double[][] x) => x.Select(r => (double[])r.Clone()).ToArray();
}
