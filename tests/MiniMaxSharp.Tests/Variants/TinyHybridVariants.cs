using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Tests.Reference;

namespace MiniMaxSharp.Tests.Variants;

/// <summary>One tensor of the tiny-hybrid fixture, widened to float32, under its checkpoint name.</summary>
internal sealed record FixtureTensor(string Name, long[] Shape, float[] Values)
{
    public FixtureTensor Renamed(string name) => this with { Name = name };
}

/// <summary>
/// The tiny-hybrid fixture (transformers ground truth) read once, and the tools to rewrite it as other
/// checkpoint variants in temp folders: other config dialect, other dtypes, shards, fused experts, VL naming.
/// </summary>
internal static class TinyHybridVariants
{
    public static string FixtureDir => TestPaths.Fixture("tiny-hybrid");

    private static readonly Lazy<IReadOnlyList<FixtureTensor>> LazyTensors = new(ReadTensors);
    private static readonly Lazy<int[][]> LazyIds = new(ReadIds);
    private static readonly Lazy<float[]> LazyExpected = new(() => Npy.Read(Path.Combine(FixtureDir, "seq100_logits.npy")).Data);
    private static readonly Lazy<float[]> LazyFixtureLogits = new(() => Logits(FixtureDir));

    /// <summary>Every tensor of model.safetensors (derived decay buffers included), in file order.</summary>
    public static IReadOnlyList<FixtureTensor> FixtureTensors => LazyTensors.Value;

    /// <summary>seq100.json's input_ids: 2 sequences × 100 tokens.</summary>
    public static int[][] InputIds => LazyIds.Value;

    /// <summary>seq100_logits.npy, float32 [2, 100, 512] flattened.</summary>
    public static float[] ExpectedLogits => LazyExpected.Value;

    /// <summary>Our engine's logits of the unmodified fixture folder (the single-file baseline).</summary>
    public static float[] FixtureLogits => LazyFixtureLogits.Value;

    /// <summary>A fresh, mutable copy of the fixture's config.json (Hugging Face dialect).</summary>
    public static JsonObject HfConfig() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, "config.json")))!.AsObject();

    /// <summary>
    /// The fixture's config rewritten in the original <c>minimax_text_01</c> dialect, every value taken
    /// from the Hugging Face file. No block_size: the original code hard-codes 256.
    /// </summary>
    public static JsonObject OriginalConfig(int? rotaryDim = null)
    {
        var hf = HfConfig();
        var o = new JsonObject { ["architectures"] = new JsonArray("MiniMaxText01ForCausalLM"), ["model_type"] = "minimax_text_01" };
        foreach (var key in new[] { "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim", "num_key_value_heads",
                     "vocab_size", "num_local_experts", "num_experts_per_tok", "intermediate_size", "hidden_act", "rms_norm_eps",
                     "bos_token_id", "eos_token_id", "max_position_embeddings", "tie_word_embeddings", "router_aux_loss_coef" })
            o[key] = hf[key]!.DeepClone();
        o["attn_type_list"] = new JsonArray(hf["layer_types"]!.AsArray()
            .Select(t => (JsonNode?)(t!.GetValue<string>() == "full_attention" ? 1 : 0)).ToArray());
        foreach (var (original, huggingFace) in new[] {
                     ("layernorm_full_attention_alpha", "full_attn_alpha_factor"), ("layernorm_full_attention_beta", "full_attn_beta_factor"),
                     ("layernorm_linear_attention_alpha", "linear_attn_alpha_factor"), ("layernorm_linear_attention_beta", "linear_attn_beta_factor"),
                     ("layernorm_mlp_alpha", "mlp_alpha_factor"), ("layernorm_mlp_beta", "mlp_beta_factor") })
            o[original] = hf[huggingFace]!.DeepClone();
        o["postnorm"] = true;
        o["rope_theta"] = hf["rope_parameters"]!["rope_theta"]!.DeepClone();
        o["rotary_dim"] = rotaryDim ?? hf["head_dim"]!.GetValue<int>();
        return o;
    }

    /// <summary>Writes config.json and the tensors (as one file, or as shards with an index) into <paramref name="dir"/>.</summary>
    public static void Write(string dir, JsonNode config, IEnumerable<FixtureTensor> tensors, DType storeAs = DType.F32,
        int shards = 1, int shuffleSeed = 0)
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var list = tensors.Select(t => SafeTensorToWrite.FromFloat32(t.Name, t.Shape, t.Values, storeAs)).ToList();
        if (shards == 1)
        {
            SafeTensorsWriter.Write(Path.Combine(dir, CheckpointFiles.SingleFileName), list);
            return;
        }
        // Tensors go to shards in a seeded random order, so a layer's weights are spread over several files.
        var rng = new Random(shuffleSeed);
        var byShard = Enumerable.Range(0, shards).Select(_ => new List<SafeTensorToWrite>()).ToArray();
        foreach (var t in list.OrderBy(_ => rng.Next())) byShard[rng.Next(shards)].Add(t);
        var weightMap = new JsonObject();
        for (int s = 0; s < shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            SafeTensorsWriter.Write(Path.Combine(dir, file), byShard[s]);
            foreach (var t in byShard[s]) weightMap[t.Name] = file;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = list.Sum(t => (long)t.Data.Length) },
            ["weight_map"] = weightMap,
        };
        File.WriteAllText(Path.Combine(dir, CheckpointFiles.IndexFileName), index.ToJsonString());
    }

    /// <summary>
    /// Hugging Face's fused expert layout: per layer <c>mlp.experts.gate_up_proj</c> [E, 2I, hidden] (w1 rows, then
    /// w3 rows), <c>mlp.experts.down_proj</c> [E, hidden, I] (the w2s) and the router as <c>mlp.gate.weight</c>.
    /// </summary>
    public static IEnumerable<FixtureTensor> WithFusedExperts(IReadOnlyList<FixtureTensor> tensors, int layers, int experts)
    {
        var byName = tensors.ToDictionary(t => t.Name);
        foreach (var t in tensors.Where(t => !t.Name.Contains(".block_sparse_moe.", StringComparison.Ordinal))) yield return t;
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            yield return byName[p + "block_sparse_moe.gate.weight"].Renamed(p + "mlp.gate.weight");
            FixtureTensor Expert(int e, string w) => byName[$"{p}block_sparse_moe.experts.{e}.{w}.weight"];
            var w1 = Expert(0, "w1");
            long inter = w1.Shape[0], hidden = w1.Shape[1];
            var gateUp = Enumerable.Range(0, experts).SelectMany(e => Expert(e, "w1").Values.Concat(Expert(e, "w3").Values)).ToArray();
            var down = Enumerable.Range(0, experts).SelectMany(e => Expert(e, "w2").Values).ToArray();
            yield return new FixtureTensor(p + "mlp.experts.gate_up_proj", [experts, 2 * inter, hidden], gateUp);
            yield return new FixtureTensor(p + "mlp.experts.down_proj", [experts, hidden, inter], down);
        }
    }

    /// <summary>A MiniMax-VL-01 checkpoint's naming: the text model under <c>language_model.</c>, beside a (tiny, fake) vision tower.</summary>
    public static IEnumerable<FixtureTensor> AsVisionLanguage(IReadOnlyList<FixtureTensor> tensors, int hidden)
    {
        var rng = new Random(5);
        float[] Random(long n) => Enumerable.Range(0, (int)n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        const int visionHidden = 8;
        yield return new FixtureTensor("vision_tower.vision_model.embeddings.patch_embedding.weight", [visionHidden, 3, 2, 2], Random(visionHidden * 12));
        yield return new FixtureTensor("vision_tower.vision_model.post_layernorm.weight", [visionHidden], Random(visionHidden));
        yield return new FixtureTensor("multi_modal_projector.linear_1.weight", [hidden, visionHidden], Random(hidden * visionHidden));
        yield return new FixtureTensor("multi_modal_projector.linear_1.bias", [hidden], Random(hidden));
        yield return new FixtureTensor("image_newline", [hidden], Random(hidden));
        foreach (var t in tensors) yield return t.Renamed("language_model." + t.Name);
    }

    /// <summary>A minimax_vl_01 config.json holding <paramref name="textConfig"/> as its text_config.</summary>
    public static JsonObject VisionLanguageConfig(JsonObject textConfig) => new()
    {
        ["architectures"] = new JsonArray("MiniMaxVL01ForConditionalGeneration"),
        ["model_type"] = "minimax_vl_01",
        ["image_token_index"] = 200025,
        ["vision_config"] = new JsonObject { ["model_type"] = "clip_vision_model", ["hidden_size"] = 8, ["patch_size"] = 2 },
        ["text_config"] = textConfig,
    };

    /// <summary>Loads a model folder as the engine does and returns the logits of both sequences, [2, 100, vocab].</summary>
    public static float[] Logits(string modelDir)
    {
        using var model = ModelLoader.Load(modelDir, new CpuBackend(2));
        return Logits(model);
    }

    public static float[] Logits(MiniMaxModel model)
    {
        var ids = InputIds;
        var states = ids.Select(r => model.CreateSequence(r.Length)).ToArray();
        try
        {
            return model.Forward(states, ids.Select(r => (ReadOnlyMemory<int>)r).ToArray(), LogitsSelection.All);
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
    }

    /// <summary>
    /// The float64 reference of the spec over the exact values stored in a written single-file folder
    /// (so bf16/f16 rounding is included), with that folder's config; logits of both sequences.
    /// </summary>
    public static double[] ReferenceLogits(string modelDir)
    {
        var config = ModelConfig.Load(modelDir);
        using var file = SafeTensorsFile.Open(Path.Combine(modelDir, CheckpointFiles.SingleFileName));
        var cache = new Dictionary<string, double[]>();
        var reference = new ReferenceModel(config, name =>
        {
            if (!cache.TryGetValue(name, out var w))
                cache[name] = w = file.ReadAsFloat32(name).Select(v => (double)v).ToArray();
            return w;
        });
        return InputIds.SelectMany(ids => TestModels.Flatten(reference.Run(ids).Logits)).ToArray();
    }

    /// <summary>The value of ‖a − b‖ / ‖b‖.</summary>
    public static double RelativeError(float[] actual, float[] expected) => TestModels.RelativeError(actual, expected);

    /// <summary>Byte-patches one tensor's dtype in a written safetensors header (same-length spellings only, e.g. F32 → I32).</summary>
    public static void PatchDType(string safetensorsPath, string tensorName, string from, string to)
    {
        Assert.Equal(from.Length, to.Length);
        var bytes = File.ReadAllBytes(safetensorsPath);
        var needle = Encoding.UTF8.GetBytes($"\"{tensorName}\":{{\"dtype\":\"{from}\"");
        int at = bytes.AsSpan().IndexOf(needle);
        Assert.True(at >= 0, $"'{tensorName}' with dtype {from} not found in the header of {safetensorsPath}");
        Encoding.UTF8.GetBytes(to).CopyTo(bytes, at + needle.Length - from.Length - 1);
        File.WriteAllBytes(safetensorsPath, bytes);
    }

    private static IReadOnlyList<FixtureTensor> ReadTensors()
    {
        using var file = SafeTensorsFile.Open(Path.Combine(FixtureDir, CheckpointFiles.SingleFileName));
        return file.Tensors.Values.OrderBy(t => t.DataOffset)
            .Select(t => new FixtureTensor(t.Name, t.Shape, file.ReadAsFloat32(t.Name))).ToArray();
    }

    private static int[][] ReadIds()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "seq100.json")));
        return doc.RootElement.GetProperty("input_ids").EnumerateArray()
            .Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
    }
}
