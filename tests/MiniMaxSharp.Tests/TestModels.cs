using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Tests.Reference;

namespace MiniMaxSharp.Tests;

/// <summary>Small random models and the float64 reference that checks them.</summary>
internal static class TestModels
{
    /// <summary>A small hybrid config in the Hugging Face dialect; overrides patch the JSON fields.</summary>
    public static ModelConfig SmallConfig(int layers = 4, int hidden = 32, int heads = 4, int kvHeads = 2, int headDim = 8,
        int experts = 4, int topK = 2, int inter = 48, int vocab = 97, int blockSize = 8, double partialRotary = 1.0,
        int softmaxEvery = 4)
    {
        var types = Enumerable.Range(0, layers).Select(l => (l + 1) % softmaxEvery == 0 ? "\"full_attention\"" : "\"linear_attention\"");
        string json = $$"""
        {
          "model_type": "minimax", "hidden_size": {{hidden}}, "num_hidden_layers": {{layers}},
          "num_attention_heads": {{heads}}, "num_key_value_heads": {{kvHeads}}, "head_dim": {{headDim}},
          "vocab_size": {{vocab}}, "num_local_experts": {{experts}}, "num_experts_per_tok": {{topK}},
          "intermediate_size": {{inter}}, "layer_types": [{{string.Join(",", types)}}],
          "full_attn_alpha_factor": 2.5, "full_attn_beta_factor": 0.9, "linear_attn_alpha_factor": 2.0,
          "linear_attn_beta_factor": 1.1, "mlp_alpha_factor": 1.7, "mlp_beta_factor": 1.2,
          "rms_norm_eps": 1e-5, "block_size": {{blockSize}},
          "rope_parameters": { "rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": {{partialRotary}} }
        }
        """;
        return ModelConfig.Parse(json);
    }

    public static MiniMaxModel Build(ModelConfig config, IReadOnlyDictionary<string, HostTensor> weights, int threads = 2)
    {
        var backend = new CpuBackend(threads);
        return new MiniMaxModel(config, WeightLoader.Load(new DictionaryTensorSource(weights), config, backend), backend);
    }

    /// <summary>Random weights with a larger scale than init so that every part of the model matters.</summary>
    public static Dictionary<string, HostTensor> Weights(ModelConfig config, int seed, DType type = DType.F32) =>
        RandomWeights.Create(config, seed, type, std: 0.25f);

    public static ReferenceModel Reference(ModelConfig config, IReadOnlyDictionary<string, HostTensor> weights)
    {
        var cache = new Dictionary<string, double[]>();
        return new ReferenceModel(config, name =>
        {
            if (!cache.TryGetValue(name, out var w))
                cache[name] = w = weights[name].ToFloat32().Select(v => (double)v).ToArray();
            return w;
        });
    }

    public static int[] RandomIds(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>‖a − b‖ / ‖b‖ over all elements.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = actual[i] - expected[i];
            num += d * d;
            den += expected[i] * expected[i];
        }
        return Math.Sqrt(num / den);
    }

    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++) e[i] = expected[i];
        return RelativeError(actual, e);
    }

    public static double[] Flatten(double[][] rows) => rows.SelectMany(r => r).ToArray();
}
