using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MiniMaxSharp.Config;

/// <summary>Attention kind of one layer: lightning (linear, O(1) state) or softmax (KV cache).</summary>
public enum LayerKind
{
    Lightning,
    Softmax,
}

/// <summary>Weights of the residual "x = alpha * normed + beta * branch" (spec: Layer stack).</summary>
public readonly record struct ResidualScale(float Alpha, float Beta);

/// <summary>Thrown for a config.json that cannot describe a valid model; the message names the field.</summary>
public sealed class ModelConfigException(string message) : Exception(message);

/// <summary>
/// One validated, immutable description of a MiniMax-01 architecture model, read from either
/// config dialect (original <c>minimax_text_01</c> or Hugging Face <c>minimax</c>).
/// </summary>
public sealed record ModelConfig
{
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int NumKvHeads { get; init; }
    public required int VocabSize { get; init; }
    public required int NumExperts { get; init; }
    public required int ExpertsPerToken { get; init; }
    public required int IntermediateSize { get; init; }
    public required ImmutableArray<LayerKind> LayerKinds { get; init; }
    public required ResidualScale SoftmaxResidual { get; init; }
    public required ResidualScale LightningResidual { get; init; }
    public required ResidualScale MlpResidual { get; init; }
    public float RmsNormEps { get; init; } = 1e-5f;
    /// <summary>Epsilon of the RMSNorm over the lightning output (1e-6 in both references).</summary>
    public float LightningNormEps { get; init; } = 1e-6f;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Channels of each q/k head that RoPE rotates (the rest pass through).</summary>
    public required int RotaryDim { get; init; }
    /// <summary>Lightning attention block length of the blocked prefill.</summary>
    public int BlockSize { get; init; } = 256;
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public ImmutableArray<int> EosTokenIds { get; init; } = [];
    public float RouterAuxLossCoef { get; init; } = 0.001f;
    /// <summary>The dialect the file was written in ("minimax" or "minimax_text_01").</summary>
    public string SourceDialect { get; init; } = "minimax";

    public int AttentionWidth => NumHeads * HeadDim;
    public int KvWidth => NumKvHeads * HeadDim;
    public int NumLightningLayers => LayerKinds.Count(k => k == LayerKind.Lightning);
    public int NumSoftmaxLayers => LayerKinds.Count(k => k == LayerKind.Softmax);
    public ResidualScale AttentionResidual(int layer) =>
        LayerKinds[layer] == LayerKind.Lightning ? LightningResidual : SoftmaxResidual;

    public static ModelConfig Load(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, "config.json");
        if (!File.Exists(path)) throw new ModelConfigException($"config file not found: {path}");
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (ModelConfigException e)
        {
            throw new ModelConfigException($"{path}: {e.Message}");
        }
    }

    public static ModelConfig Parse(string json)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"config is not valid JSON: {e.Message}");
        }
        if (root is not JsonObject obj) throw new ModelConfigException("config must be a JSON object");
        // VL checkpoints nest the text model's config.
        if (obj["text_config"] is JsonObject text) obj = text;
        return FromObject(obj);
    }

    private static ModelConfig FromObject(JsonObject o)
    {
        string modelType = GetString(o, "model_type") ?? "minimax";
        bool original = modelType == "minimax_text_01" || o.ContainsKey("attn_type_list");
        if (!original && modelType != "minimax")
            throw new ModelConfigException($"model_type '{modelType}' is not a MiniMax-01 text model (expected 'minimax' or 'minimax_text_01')");

        int hidden = RequireInt(o, "hidden_size");
        int layers = RequireInt(o, "num_hidden_layers");
        int heads = RequireInt(o, "num_attention_heads");
        int headDim = GetInt(o, "head_dim") ?? (heads > 0 && hidden % heads == 0 ? hidden / heads
            : throw new ModelConfigException($"head_dim is absent and hidden_size {hidden} is not divisible by num_attention_heads {heads}"));
        int kvHeads = GetInt(o, "num_key_value_heads") ?? heads;
        int vocab = RequireInt(o, "vocab_size");
        int experts = RequireInt(o, "num_local_experts");
        int topK = RequireInt(o, "num_experts_per_tok");
        int inter = RequireInt(o, "intermediate_size");

        string act = GetString(o, "hidden_act") ?? "silu";
        if (act != "silu" && act != "swish")
            throw new ModelConfigException($"hidden_act '{act}' is not supported (MiniMax-01 experts use 'silu')");

        ImmutableArray<LayerKind> kinds;
        ResidualScale full, linear, mlp;
        double theta;
        int rotary;
        if (original)
        {
            kinds = ReadOriginalLayerList(o);
            full = new(GetFloat(o, "layernorm_full_attention_alpha") ?? 1f, GetFloat(o, "layernorm_full_attention_beta") ?? 1f);
            linear = new(GetFloat(o, "layernorm_linear_attention_alpha") ?? 1f, GetFloat(o, "layernorm_linear_attention_beta") ?? 1f);
            mlp = new(GetFloat(o, "layernorm_mlp_alpha") ?? 1f, GetFloat(o, "layernorm_mlp_beta") ?? 1f);
            // The original code reads getattr(config, 'postnorm', False): absent means a pre-norm residual.
            if (GetBool(o, "postnorm") is not true)
                throw new ModelConfigException("postnorm is false or absent (the original code then runs a pre-norm residual): only the post-norm residual of MiniMax-01 (postnorm: true) is supported");
            theta = GetDouble(o, "rope_theta") ?? 10000.0;
            rotary = GetInt(o, "rotary_dim") ?? headDim;
        }
        else
        {
            kinds = ReadHfLayerList(o);
            full = new(GetFloat(o, "full_attn_alpha_factor") ?? 1f, GetFloat(o, "full_attn_beta_factor") ?? 1f);
            linear = new(GetFloat(o, "linear_attn_alpha_factor") ?? 1f, GetFloat(o, "linear_attn_beta_factor") ?? 1f);
            mlp = new(GetFloat(o, "mlp_alpha_factor") ?? 1f, GetFloat(o, "mlp_beta_factor") ?? 1f);
            var rope = o["rope_parameters"] as JsonObject ?? o["rope_scaling"] as JsonObject;
            theta = (rope is null ? null : GetDouble(rope, "rope_theta")) ?? GetDouble(o, "rope_theta") ?? 10000.0;
            if (rope is not null && GetString(rope, "rope_type") is string rt && rt != "default")
                throw new ModelConfigException($"rope_parameters.rope_type '{rt}' is not supported (only 'default')");
            double? partial = (rope is null ? null : GetDouble(rope, "partial_rotary_factor")) ?? GetDouble(o, "partial_rotary_factor");
            int? rotaryDim = GetInt(o, "rotary_dim");
            if (rotaryDim is int r) rotary = r;
            else if (partial is double p)
            {
                if (!(p > 0 && p <= 1)) throw new ModelConfigException($"partial_rotary_factor {p} must be in (0, 1]");
                rotary = (int)Math.Round(p * headDim);
                if (Math.Abs(rotary - p * headDim) > 1e-6)
                    throw new ModelConfigException($"partial_rotary_factor {p} x head_dim {headDim} is not a whole number of channels");
            }
            else rotary = headDim;
        }
        if (kinds.Length != layers)
            throw new ModelConfigException($"{(original ? "attn_type_list" : "layer_types")} has {kinds.Length} entries but num_hidden_layers is {layers}");

        var config = new ModelConfig
        {
            HiddenSize = hidden,
            NumLayers = layers,
            NumHeads = heads,
            HeadDim = headDim,
            NumKvHeads = kvHeads,
            VocabSize = vocab,
            NumExperts = experts,
            ExpertsPerToken = topK,
            IntermediateSize = inter,
            LayerKinds = kinds,
            SoftmaxResidual = full,
            LightningResidual = linear,
            MlpResidual = mlp,
            RmsNormEps = GetFloat(o, "rms_norm_eps") ?? 1e-5f,
            RopeTheta = theta,
            RotaryDim = rotary,
            BlockSize = GetInt(o, "block_size") ?? 256,
            MaxPositionEmbeddings = GetInt(o, "max_position_embeddings") ?? 4096,
            TieWordEmbeddings = GetBool(o, "tie_word_embeddings") ?? false,
            BosTokenId = GetInt(o, "bos_token_id"),
            EosTokenIds = ReadIds(o, "eos_token_id"),
            RouterAuxLossCoef = GetFloat(o, "router_aux_loss_coef") ?? 0.001f,
            SourceDialect = original ? "minimax_text_01" : "minimax",
        };
        config.Validate();
        return config;
    }

    /// <summary>Checks that the fields describe a buildable model; throws naming the field.</summary>
    public void Validate()
    {
        static void Positive(int v, string name)
        {
            if (v <= 0) throw new ModelConfigException($"{name} must be positive, got {v}");
        }
        Positive(HiddenSize, "hidden_size");
        Positive(NumLayers, "num_hidden_layers");
        Positive(NumHeads, "num_attention_heads");
        Positive(HeadDim, "head_dim");
        Positive(NumKvHeads, "num_key_value_heads");
        Positive(VocabSize, "vocab_size");
        Positive(NumExperts, "num_local_experts");
        Positive(ExpertsPerToken, "num_experts_per_tok");
        Positive(IntermediateSize, "intermediate_size");
        Positive(BlockSize, "block_size");
        if (NumHeads % NumKvHeads != 0)
            throw new ModelConfigException($"num_attention_heads {NumHeads} is not divisible by num_key_value_heads {NumKvHeads}");
        if (ExpertsPerToken > NumExperts)
            throw new ModelConfigException($"num_experts_per_tok {ExpertsPerToken} exceeds num_local_experts {NumExperts}");
        if (LayerKinds.Length != NumLayers)
            throw new ModelConfigException($"the layer type list has {LayerKinds.Length} entries but num_hidden_layers is {NumLayers}");
        if (RotaryDim <= 0 || RotaryDim > HeadDim || RotaryDim % 2 != 0)
            throw new ModelConfigException($"rotary_dim {RotaryDim} must be even and in 2..head_dim ({HeadDim})");
        if (!(RmsNormEps > 0)) throw new ModelConfigException($"rms_norm_eps must be positive, got {RmsNormEps}");
        if (!(RopeTheta > 0)) throw new ModelConfigException($"rope_theta must be positive, got {RopeTheta}");
        if (BosTokenId is int b && (b < 0 || b >= VocabSize))
            throw new ModelConfigException($"bos_token_id {b} is outside the vocabulary (0..{VocabSize - 1})");
        foreach (int e in EosTokenIds)
            if (e < 0 || e >= VocabSize)
                throw new ModelConfigException($"eos_token_id {e} is outside the vocabulary (0..{VocabSize - 1})");
    }

    /// <summary>Writes the Hugging Face dialect (what transformers loads); <paramref name="dtype"/> names the weights' storage type.</summary>
    public string ToHuggingFaceJson(string dtype = "float32")
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("MiniMaxForCausalLM"),
            ["model_type"] = "minimax",
            ["hidden_size"] = HiddenSize,
            ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads,
            ["head_dim"] = HeadDim,
            ["num_key_value_heads"] = NumKvHeads,
            ["vocab_size"] = VocabSize,
            ["num_local_experts"] = NumExperts,
            ["num_experts_per_tok"] = ExpertsPerToken,
            ["intermediate_size"] = IntermediateSize,
            ["hidden_act"] = "silu",
            ["layer_types"] = new JsonArray(LayerKinds.Select(k => (JsonNode?)(k == LayerKind.Lightning ? "linear_attention" : "full_attention")).ToArray()),
            ["full_attn_alpha_factor"] = SoftmaxResidual.Alpha,
            ["full_attn_beta_factor"] = SoftmaxResidual.Beta,
            ["linear_attn_alpha_factor"] = LightningResidual.Alpha,
            ["linear_attn_beta_factor"] = LightningResidual.Beta,
            ["mlp_alpha_factor"] = MlpResidual.Alpha,
            ["mlp_beta_factor"] = MlpResidual.Beta,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_parameters"] = new JsonObject
            {
                ["rope_theta"] = RopeTheta,
                ["rope_type"] = "default",
                ["partial_rotary_factor"] = (double)RotaryDim / HeadDim,
            },
            ["block_size"] = BlockSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["router_aux_loss_coef"] = RouterAuxLossCoef,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenIds.Length == 1 ? EosTokenIds[0] : new JsonArray(EosTokenIds.Select(i => (JsonNode?)i).ToArray()),
            ["dtype"] = dtype,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static ImmutableArray<LayerKind> ReadOriginalLayerList(JsonObject o)
    {
        if (o["attn_type_list"] is not JsonArray list)
            throw new ModelConfigException("attn_type_list is missing or not a list");
        var kinds = ImmutableArray.CreateBuilder<LayerKind>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            int v = list[i] is JsonValue jv && jv.TryGetValue(out int iv) ? iv
                : throw new ModelConfigException($"attn_type_list[{i}] must be 0 or 1");
            kinds.Add(v switch
            {
                0 => LayerKind.Lightning,
                1 => LayerKind.Softmax,
                _ => throw new ModelConfigException($"attn_type_list[{i}] = {v}: must be 0 (lightning) or 1 (softmax)"),
            });
        }
        return kinds.MoveToImmutable();
    }

    private static ImmutableArray<LayerKind> ReadHfLayerList(JsonObject o)
    {
        if (o["layer_types"] is not JsonArray list)
            throw new ModelConfigException("layer_types is missing or not a list");
        var kinds = ImmutableArray.CreateBuilder<LayerKind>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            string? s = list[i] is JsonValue jv && jv.TryGetValue(out string? sv) ? sv : null;
            kinds.Add(s switch
            {
                "linear_attention" => LayerKind.Lightning,
                "full_attention" => LayerKind.Softmax,
                _ => throw new ModelConfigException($"layer_types[{i}] = '{s}': must be 'linear_attention' or 'full_attention'"),
            });
        }
        return kinds.MoveToImmutable();
    }

    /// <summary>An integer or a list of integers (eos_token_id); empty when absent.</summary>
    internal static ImmutableArray<int> ReadIds(JsonObject o, string name)
    {
        var node = o[name];
        if (node is null) return [];
        if (node is JsonArray a)
            return [.. a.Select((n, i) => n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int id) ? id
                : throw new ModelConfigException($"{name}[{i}] must be an integer, got {n?.ToJsonString() ?? "null"}"))];
        if (node is JsonValue single && single.GetValueKind() == JsonValueKind.Number && single.TryGetValue(out int one)) return [one];
        throw new ModelConfigException($"{name} must be an integer or a list of integers, got {node.ToJsonString()}");
    }

    private static string? GetString(JsonObject o, string name) =>
        o[name] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out string? s) => s,
            _ => throw new ModelConfigException($"{name} must be a string"),
        };

    private static double? GetDouble(JsonObject o, string name) =>
        o[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && double.IsFinite(d) => d,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => throw new ModelConfigException($"{name} {v.ToJsonString()} is not a finite number"),
            _ => throw new ModelConfigException($"{name} must be a number"),
        };

    private static bool? GetBool(JsonObject o, string name) =>
        o[name] switch
        {
            null => null,
            JsonNode n when n.GetValueKind() == JsonValueKind.True => true,
            JsonNode n when n.GetValueKind() == JsonValueKind.False => false,
            // A string "false" read as true (or ignored) would silently build another model.
            JsonNode n => throw new ModelConfigException($"{name} must be true or false, got {n.ToJsonString()}"),
        };

    private static float? GetFloat(JsonObject o, string name) => GetDouble(o, name) is double d ? (float)d : null;

    private static int? GetInt(JsonObject o, string name)
    {
        double? d = GetDouble(o, name);
        if (d is null) return null;
        if (d != Math.Floor(d.Value) || d < int.MinValue || d > int.MaxValue)
            throw new ModelConfigException($"{name} must be an integer, got {d}");
        return (int)d.Value;
    }

    private static int RequireInt(JsonObject o, string name) =>
        GetInt(o, name) ?? throw new ModelConfigException($"{name} is missing");
}
