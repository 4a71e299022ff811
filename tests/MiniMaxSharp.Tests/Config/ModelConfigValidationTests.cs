using System.Text.Json.Nodes;
using MiniMaxSharp.Config;
using MiniMaxSharp.Tests.Checkpoints;
using MiniMaxSharp.Tests.Variants;

namespace MiniMaxSharp.Tests.Config;

/// <summary>
/// config.json files that cannot describe a valid MiniMax-01 model, in both dialects: each must be a
/// <see cref="ModelConfigException"/> whose message names the field at fault, never a crash or a silent default.
/// </summary>
public sealed class ModelConfigValidationTests
{
    public enum Dialect { HuggingFace, Original }

    private static JsonObject Base(Dialect dialect) =>
        dialect == Dialect.HuggingFace ? TinyHybridVariants.HfConfig() : TinyHybridVariants.OriginalConfig();

    private static ModelConfigException Rejects(JsonNode config, params string[] keywords) => Rejects(config.ToJsonString(), keywords);

    private static ModelConfigException Rejects(string json, params string[] keywords)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json));
        foreach (var k in keywords) Assert.Contains(k, e.Message);
        return e;
    }

    [Theory]
    [InlineData(Dialect.HuggingFace)]
    [InlineData(Dialect.Original)]
    public void BothBaseConfigsAreValid(Dialect dialect)
    {
        var c = ModelConfig.Parse(Base(dialect).ToJsonString());
        Assert.Equal(8, c.NumLayers);
        Assert.Equal(LayerKind.Softmax, c.LayerKinds[7]);
        Assert.Equal(7, c.NumLightningLayers);
        Assert.Equal(dialect == Dialect.HuggingFace ? 32 : 256, c.BlockSize);
    }

    [Fact]
    public void BothDialectsReadEveryResidualFactorFromItsOwnField()
    {
        // Six distinct values, so that a swapped mapping cannot go unnoticed.
        var hf = Base(Dialect.HuggingFace);
        var original = Base(Dialect.Original);
        string[] hfNames = ["full_attn_alpha_factor", "full_attn_beta_factor", "linear_attn_alpha_factor", "linear_attn_beta_factor", "mlp_alpha_factor", "mlp_beta_factor"];
        string[] originalNames = ["layernorm_full_attention_alpha", "layernorm_full_attention_beta", "layernorm_linear_attention_alpha",
                                  "layernorm_linear_attention_beta", "layernorm_mlp_alpha", "layernorm_mlp_beta"];
        float[] values = [3.25f, 0.5f, 2.75f, 1.25f, 1.75f, 0.75f];
        for (int i = 0; i < values.Length; i++)
        {
            hf[hfNames[i]] = values[i];
            original[originalNames[i]] = values[i];
        }
        hf["rope_parameters"]!["rope_theta"] = 1e7;
        original["rope_theta"] = 1e7;
        foreach (var c in new[] { ModelConfig.Parse(hf.ToJsonString()), ModelConfig.Parse(original.ToJsonString()) })
        {
            Assert.Equal(new ResidualScale(3.25f, 0.5f), c.SoftmaxResidual);
            Assert.Equal(new ResidualScale(2.75f, 1.25f), c.LightningResidual);
            Assert.Equal(new ResidualScale(1.75f, 0.75f), c.MlpResidual);
            Assert.Equal(1e7, c.RopeTheta);
        }
    }

    [Theory]
    [InlineData(Dialect.HuggingFace)]
    [InlineData(Dialect.Original)]
    public void KvHeadsMustDivideHeads(Dialect dialect)
    {
        var c = Base(dialect);
        c["num_key_value_heads"] = 3;
        Rejects(c, "num_attention_heads 4", "num_key_value_heads 3", "divisible");
    }

    [Theory]
    [InlineData(Dialect.HuggingFace, 0)]
    [InlineData(Dialect.HuggingFace, -2)]
    [InlineData(Dialect.Original, 0)]
    public void KvHeadsMustBePositive(Dialect dialect, int kvHeads)
    {
        var c = Base(dialect);
        c["num_key_value_heads"] = kvHeads;
        Rejects(c, "num_key_value_heads", "positive");
    }

    [Theory]
    [InlineData(Dialect.HuggingFace, "layer_types", 7)]
    [InlineData(Dialect.HuggingFace, "layer_types", 9)]
    [InlineData(Dialect.Original, "attn_type_list", 7)]
    [InlineData(Dialect.Original, "attn_type_list", 9)]
    public void LayerListMustHaveOneEntryPerLayer(Dialect dialect, string listName, int entries)
    {
        var c = Base(dialect);
        var list = c[listName]!.AsArray();
        while (list.Count > entries) list.RemoveAt(list.Count - 1);
        while (list.Count < entries) list.Add(list[0]!.DeepClone());
        Rejects(c, listName, $"{entries} entries", "num_hidden_layers is 8");
    }

    [Theory]
    [InlineData(Dialect.HuggingFace, "layer_types")]
    [InlineData(Dialect.Original, "attn_type_list")]
    public void LayerListMustBeAList(Dialect dialect, string listName)
    {
        var c = Base(dialect);
        c[listName] = "linear_attention";
        Rejects(c, listName, "list");
    }

    [Theory]
    [InlineData(Dialect.HuggingFace)]
    [InlineData(Dialect.Original)]
    public void TopKCannotExceedExperts(Dialect dialect)
    {
        var c = Base(dialect);
        c["num_experts_per_tok"] = 5;
        Rejects(c, "num_experts_per_tok 5", "num_local_experts 4");
    }

    [Theory]
    [InlineData("gelu")]
    [InlineData("relu")]
    public void UnknownActivationIsNamed(string act)
    {
        var c = Base(Dialect.HuggingFace);
        c["hidden_act"] = act;
        Rejects(c, "hidden_act", act);
    }

    [Theory]
    [InlineData("sliding_attention")]
    [InlineData("Linear_Attention")]
    [InlineData("")]
    public void UnknownHuggingFaceLayerTypeIsNamed(string type)
    {
        var c = Base(Dialect.HuggingFace);
        c["layer_types"]![3] = type;
        Rejects(c, "layer_types[3]", $"'{type}'", "linear_attention", "full_attention");
    }

    [Fact]
    public void NonStringHuggingFaceLayerTypeIsNamed()
    {
        var c = Base(Dialect.HuggingFace);
        c["layer_types"]![2] = 1;
        Rejects(c, "layer_types[2]");
    }

    [Theory]
    [InlineData("2")]
    [InlineData("-1")]
    [InlineData("\"1\"")]
    [InlineData("0.5")]
    [InlineData("null")]
    public void UnknownOriginalLayerTypeIsNamed(string value)
    {
        var c = Base(Dialect.Original);
        c["attn_type_list"]![4] = JsonNode.Parse(value);
        Rejects(c, "attn_type_list[4]");
    }

    [Theory]
    [InlineData(Dialect.Original, 7)]      // odd
    [InlineData(Dialect.Original, 18)]     // beyond head_dim 16
    [InlineData(Dialect.Original, 0)]
    [InlineData(Dialect.Original, -4)]
    [InlineData(Dialect.HuggingFace, 9)]   // the HF dialect accepts rotary_dim too
    public void RotaryDimMustBeEvenAndWithinTheHead(Dialect dialect, int rotaryDim)
    {
        var c = Base(dialect);
        c["rotary_dim"] = rotaryDim;
        Rejects(c, $"rotary_dim {rotaryDim}", "head_dim");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.5)]
    [InlineData(-0.5)]
    public void PartialRotaryFactorMustBeInZeroOne(double factor)
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["partial_rotary_factor"] = factor;
        Rejects(c, "partial_rotary_factor", "(0, 1]");
    }

    [Fact]
    public void PartialRotaryFactorMustGiveWholeChannels()
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["partial_rotary_factor"] = 0.3;   // 4.8 of 16 channels
        Rejects(c, "partial_rotary_factor 0.3", "whole number");
    }

    [Fact]
    public void PartialRotaryFactorGivingAnOddChannelCountIsRejected()
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["partial_rotary_factor"] = 3.0 / 16;   // 3 channels cannot be split in halves
        Rejects(c, "rotary_dim 3", "even");
    }

    [Theory]
    [InlineData(1.0, 16)]
    [InlineData(0.5, 8)]
    [InlineData(0.125, 2)]
    public void PartialRotaryFactorSetsRotaryDim(double factor, int rotaryDim)
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["partial_rotary_factor"] = factor;
        Assert.Equal(rotaryDim, ModelConfig.Parse(c.ToJsonString()).RotaryDim);
    }

    [Fact]
    public void UnsupportedRopeTypeIsNamed()
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["rope_type"] = "yarn";
        Rejects(c, "rope_type", "yarn");
    }

    [Theory]
    [InlineData(Dialect.HuggingFace, "hidden_size")]
    [InlineData(Dialect.HuggingFace, "num_hidden_layers")]
    [InlineData(Dialect.HuggingFace, "num_attention_heads")]
    [InlineData(Dialect.HuggingFace, "vocab_size")]
    [InlineData(Dialect.HuggingFace, "num_local_experts")]
    [InlineData(Dialect.HuggingFace, "num_experts_per_tok")]
    [InlineData(Dialect.HuggingFace, "intermediate_size")]
    [InlineData(Dialect.HuggingFace, "layer_types")]
    [InlineData(Dialect.Original, "hidden_size")]
    [InlineData(Dialect.Original, "vocab_size")]
    [InlineData(Dialect.Original, "attn_type_list")]
    public void MissingRequiredFieldIsNamed(Dialect dialect, string field)
    {
        var c = Base(dialect);
        Assert.True(c.Remove(field));
        Rejects(c, field, "missing");
    }

    [Fact]
    public void NullRequiredFieldCountsAsMissing()
    {
        var c = Base(Dialect.HuggingFace);
        c["vocab_size"] = null;
        Rejects(c, "vocab_size", "missing");
    }

    [Fact]
    public void HeadDimAbsentAndNotDerivableIsNamed()
    {
        var c = Base(Dialect.HuggingFace);
        c.Remove("head_dim");
        c["hidden_size"] = 66;   // not a multiple of 4 heads
        Rejects(c, "head_dim", "hidden_size 66", "num_attention_heads 4");
    }

    [Theory]
    [InlineData("")]
    [InlineData("{ \"hidden_size\": 64, ")]
    [InlineData("hidden_size = 64")]
    [InlineData("{ 'hidden_size': 64 }")]
    public void NonJsonIsRejected(string text) => Rejects(text, "not valid JSON");

    [Theory]
    [InlineData("[1, 2, 3]")]
    [InlineData("\"minimax\"")]
    [InlineData("42")]
    [InlineData("null")]
    public void NonObjectJsonIsRejected(string text) => Rejects(text, "JSON object");

    [Theory]
    [InlineData("hidden_size", "\"64\"", "must be a number")]
    [InlineData("hidden_size", "64.5", "must be an integer")]
    [InlineData("hidden_size", "true", "must be a number")]
    [InlineData("hidden_size", "[64]", "must be a number")]
    [InlineData("hidden_size", "1e400", "not a finite number")]
    [InlineData("rms_norm_eps", "1e400", "not a finite number")]
    [InlineData("num_hidden_layers", "8e9", "must be an integer")]
    [InlineData("rms_norm_eps", "\"1e-5\"", "must be a number")]
    [InlineData("model_type", "3", "must be a string")]
    [InlineData("hidden_act", "{}", "must be a string")]
    [InlineData("eos_token_id", "\"2\"", "integer")]
    [InlineData("bos_token_id", "1.5", "must be an integer")]
    [InlineData("tie_word_embeddings", "\"true\"", "true or false")]
    [InlineData("tie_word_embeddings", "1", "true or false")]
    public void WrongJsonTypeIsNamed(string field, string value, string problem)
    {
        var c = Base(Dialect.HuggingFace);
        c[field] = JsonNode.Parse(value);
        Rejects(c, field, problem);
    }

    [Fact]
    public void WrongJsonTypeInsideRopeParametersIsNamed()
    {
        var c = Base(Dialect.HuggingFace);
        c["rope_parameters"]!["rope_theta"] = "ten thousand";
        Rejects(c, "rope_theta", "must be a number");
    }

    [Fact]
    public void PostnormFalseIsRejected()
    {
        var c = Base(Dialect.Original);
        c["postnorm"] = false;
        Rejects(c, "postnorm");
    }

    [Fact]
    public void PostnormAbsentIsRejectedInTheOriginalDialect()
    {
        // The original implementation defaults postnorm to false (a pre-norm residual): not MiniMax-01.
        var c = Base(Dialect.Original);
        c.Remove("postnorm");
        Rejects(c, "postnorm", "absent");
    }

    [Theory]
    [InlineData("\"false\"")]
    [InlineData("0")]
    public void PostnormOfTheWrongTypeIsRejected(string value)
    {
        var c = Base(Dialect.Original);
        c["postnorm"] = JsonNode.Parse(value);
        Rejects(c, "postnorm", "true or false");
    }

    [Theory]
    [InlineData("bos_token_id", "512")]
    [InlineData("bos_token_id", "-1")]
    [InlineData("eos_token_id", "512")]
    [InlineData("eos_token_id", "[2, 600]")]
    [InlineData("eos_token_id", "-3")]
    public void SpecialTokensMustBeInTheVocabulary(string field, string value)
    {
        foreach (var dialect in new[] { Dialect.HuggingFace, Dialect.Original })
        {
            var c = Base(dialect);
            c[field] = JsonNode.Parse(value);
            Rejects(c, field, "outside the vocabulary");
        }
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("minimax_m1")]
    public void OtherModelTypesAreRejected(string modelType)
    {
        var c = Base(Dialect.HuggingFace);
        c["model_type"] = modelType;
        Rejects(c, "model_type", modelType);
    }

    [Theory]
    [InlineData("hidden_size", 0)]
    [InlineData("vocab_size", -1)]
    [InlineData("intermediate_size", 0)]
    [InlineData("block_size", 0)]
    [InlineData("num_experts_per_tok", 0)]
    public void SizesMustBePositive(string field, int value)
    {
        var c = Base(Dialect.HuggingFace);
        c[field] = value;
        Rejects(c, field, "positive");
    }

    [Fact]
    public void LoadNamesTheFileInItsErrors()
    {
        using var dir = new TempDirectory();
        var c = Base(Dialect.HuggingFace);
        c["num_key_value_heads"] = 3;
        File.WriteAllText(dir.File("config.json"), c.ToJsonString());
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains(dir.File("config.json"), e.Message);
        Assert.Contains("num_key_value_heads", e.Message);

        var missing = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.File("nothing-here.json")));
        Assert.Contains("nothing-here.json", missing.Message);
    }
}
