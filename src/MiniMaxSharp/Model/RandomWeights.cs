using MiniMaxSharp.Config;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Model;

/// <summary>
/// Deterministic random weights for a config, under the original checkpoint names: for benchmarks of
/// shapes without a checkpoint, tests, and training from scratch. Matrix entries are uniform with
/// standard deviation <c>std</c> (a fast generator: benchmark models have a billion of them); norms = 1.
/// </summary>
public static class RandomWeights
{
    public static Dictionary<string, HostTensor> Create(ModelConfig c, int seed, DType storeAs = DType.F32, float std = 0.02f)
    {
        ulong state = (ulong)seed * 0x9E3779B97F4A7C15UL + 1;
        var result = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
        void Matrix(string name, int rows, int cols, float scale = 1f)
        {
            var data = new float[(long)rows * cols];
            // xorshift64*, uniform on [-a, a] with a = sqrt(3)·std·scale
            float a = MathF.Sqrt(3f) * std * scale;
            for (long i = 0; i < data.LongLength; i++)
            {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                ulong r = state * 0x2545F4914F6CDD1DUL;
                data[i] = ((r >> 40) * (1f / (1 << 24)) * 2f - 1f) * a;
            }
            result[name] = HostTensor.FromFloats(data, [rows, cols], storeAs);
        }
        void Ones(string name, int n)
        {
            var data = new float[n];
            Array.Fill(data, 1f);
            result[name] = HostTensor.FromFloats(data, [n], storeAs);
        }
        int H = c.HiddenSize, W = c.AttentionWidth;
        Matrix("model.embed_tokens.weight", c.VocabSize, H, 50f);   // unit-scale embeddings
        Ones("model.norm.weight", H);
        if (!c.TieWordEmbeddings) Matrix("lm_head.weight", c.VocabSize, H);
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            Ones(p + "input_layernorm.weight", H);
            Ones(p + "post_attention_layernorm.weight", H);
            if (c.LayerKinds[l] == LayerKind.Lightning)
            {
                Matrix(p + "self_attn.qkv_proj.weight", 3 * W, H);
                Matrix(p + "self_attn.output_gate.weight", W, H);
                Ones(p + "self_attn.norm.weight", W);
                Matrix(p + "self_attn.out_proj.weight", H, W);
            }
            else
            {
                Matrix(p + "self_attn.q_proj.weight", W, H);
                Matrix(p + "self_attn.k_proj.weight", c.KvWidth, H);
                Matrix(p + "self_attn.v_proj.weight", c.KvWidth, H);
                Matrix(p + "self_attn.o_proj.weight", H, W);
            }
            Matrix(p + "block_sparse_moe.gate.weight", c.NumExperts, H);
            for (int e = 0; e < c.NumExperts; e++)
            {
                string ep = $"{p}block_sparse_moe.experts.{e}.";
                Matrix(ep + "w1.weight", c.IntermediateSize, H);
                Matrix(ep + "w2.weight", H, c.IntermediateSize);
                Matrix(ep + "w3.weight", c.IntermediateSize, H);
            }
        }
        return result;
    }
}
