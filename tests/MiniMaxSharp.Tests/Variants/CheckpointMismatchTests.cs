using System.Text.Json.Nodes;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tests.Checkpoints;
using static MiniMaxSharp.Tests.Variants.TinyHybridVariants;

namespace MiniMaxSharp.Tests.Variants;

/// <summary>Checkpoints that disagree with their config, or are damaged: a clear exception naming the problem, never a crash.</summary>
public sealed class CheckpointMismatchTests
{
    private static Exception LoadFails(string dir) =>
        Assert.ThrowsAny<Exception>(() => ModelLoader.Load(dir, new CpuBackend(2)).Dispose());

    private static TempDirectory WriteVariant(Func<IEnumerable<FixtureTensor>, IEnumerable<FixtureTensor>> edit, JsonObject? config = null)
    {
        var dir = new TempDirectory();
        Write(dir.Path, config ?? HfConfig(), edit(FixtureTensors));
        return dir;
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        const string name = "model.layers.3.self_attn.out_proj.weight";
        using var dir = WriteVariant(ts => ts.Where(t => t.Name != name));
        var e = Assert.IsType<WeightLoadException>(LoadFails(dir.Path));
        Assert.Contains("missing", e.Message);
        Assert.Contains(name, e.Message);
    }

    [Fact]
    public void ConfigWithMoreLayersThanTheCheckpointListsTheMissingLayer()
    {
        var config = HfConfig();
        config["num_hidden_layers"] = 9;
        config["layer_types"]!.AsArray().Add("linear_attention");
        using var dir = WriteVariant(ts => ts, config);
        var e = Assert.IsType<WeightLoadException>(LoadFails(dir.Path));
        Assert.Contains("model.layers.8.input_layernorm.weight", e.Message);
        Assert.Contains("model.layers.8.self_attn.qkv_proj.weight", e.Message);
    }

    [Fact]
    public void WrongShapeNamesTheTensorAndBothShapes()
    {
        const string name = "model.layers.2.block_sparse_moe.experts.1.w2.weight";   // [64, 96], stored transposed
        using var dir = WriteVariant(ts => ts.Select(t => t.Name == name ? t with { Shape = [t.Shape[1], t.Shape[0]] } : t));
        var e = Assert.IsType<WeightLoadException>(LoadFails(dir.Path));
        Assert.Contains(name, e.Message);
        Assert.Contains("[96, 64]", e.Message);
        Assert.Contains("[64, 96]", e.Message);
    }

    [Fact]
    public void WrongShapeOfAFusedExpertTensorIsNamed()
    {
        var config = HfConfig();
        const string name = "model.layers.5.mlp.experts.down_proj";
        using var dir = WriteVariant(ts => WithFusedExperts(ts.ToList(), 8, 4)
            .Select(t => t.Name == name ? t with { Shape = [4, 96, 64] } : t), config);
        var e = Assert.IsType<WeightLoadException>(LoadFails(dir.Path));
        Assert.Contains(name, e.Message);
        Assert.Contains("[4, 96, 64]", e.Message);
        Assert.Contains("[4, 64, 96]", e.Message);
    }

    [Fact]
    public void UnexpectedExtraTensorIsNamed()
    {
        const string name = "model.layers.0.self_attn.rotary_proj.weight";
        using var dir = WriteVariant(ts => ts.Append(new FixtureTensor(name, [4, 4], new float[16])));
        var e = Assert.IsType<WeightLoadException>(LoadFails(dir.Path));
        Assert.Contains("unexpected", e.Message);
        Assert.Contains(name, e.Message);
    }

    [Fact]
    public void UnsupportedDTypeOfAWeightNamesTheTensorAndTheDType()
    {
        using var dir = WriteVariant(ts => ts);
        PatchDType(dir.File(CheckpointFiles.SingleFileName), "model.norm.weight", "F32", "I32");
        var e = Assert.IsType<CheckpointException>(LoadFails(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("I32", e.Message);
    }

    [Theory]
    [InlineData(0.5)]     // in the middle of the data
    [InlineData(0.999)]   // the last tensor's end is missing
    [InlineData(0.002)]   // in the middle of the JSON header
    [InlineData(0.0)]     // an empty file
    public void TruncatedCheckpointIsACheckpointException(double keep)
    {
        using var dir = WriteVariant(ts => ts);
        string path = dir.File(CheckpointFiles.SingleFileName);
        long length = new FileInfo(path).Length;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write)) f.SetLength((long)(length * keep));
        var e = Assert.IsType<CheckpointException>(LoadFails(dir.Path));
        Assert.Contains(CheckpointFiles.SingleFileName, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void MissingConfigIsNamed()
    {
        using var dir = WriteVariant(ts => ts);
        File.Delete(dir.File("config.json"));
        var e = Assert.IsType<ModelConfigException>(LoadFails(dir.Path));
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void FolderWithoutWeightsIsNamed()
    {
        using var dir = WriteVariant(ts => ts);
        File.Delete(dir.File(CheckpointFiles.SingleFileName));
        var e = Assert.IsType<CheckpointException>(LoadFails(dir.Path));
        Assert.Contains("safetensors", e.Message);
    }

    [Theory]
    [InlineData("{ \"eos_token_id\": ", "not valid JSON")]
    [InlineData("[2]", "JSON object")]
    public void NonObjectGenerationConfigIsNamed(string text, string problem)
    {
        using var dir = WriteVariant(ts => ts);
        File.WriteAllText(dir.File("generation_config.json"), text);
        var e = Assert.IsType<ModelConfigException>(LoadFails(dir.Path));
        Assert.Contains("generation_config.json", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData("[2, 7]")]
    [InlineData("7")]
    public void GenerationConfigAddsEndOfSequenceIds(string eos)
    {
        using var dir = WriteVariant(ts => ts);
        File.WriteAllText(dir.File("generation_config.json"), $$"""{ "eos_token_id": {{eos}} }""");
        using var model = ModelLoader.Load(dir.Path, new CpuBackend(2));
        Assert.Equal([2, 7], model.Config.EosTokenIds.Order().ToArray());
    }

    [Theory]
    [InlineData("\"2\"")]                   // a string
    [InlineData("[2, null]")]               // a null in the list
    [InlineData("[2, 1.5]")]                // not an integer
    [InlineData("[2, 600]")]                // outside the vocabulary of 512
    [InlineData("{\"id\": 2}")]             // an object
    public void BadGenerationConfigEosIsNamed(string eos)
    {
        using var dir = WriteVariant(ts => ts);
        File.WriteAllText(dir.File("generation_config.json"), $$"""{ "bos_token_id": 1, "eos_token_id": {{eos}} }""");
        var e = Assert.IsType<ModelConfigException>(LoadFails(dir.Path));
        Assert.Contains("generation_config.json", e.Message);
        Assert.Contains("eos_token_id", e.Message);
    }
}

/// <summary>Token ids outside the vocabulary, given to a loaded checkpoint's Forward.</summary>
public sealed class TokenRangeTests
{
    [Theory]
    [InlineData(512)]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    public void OutOfVocabularyIdIsRejectedAndNothingAdvances(int badId)
    {
        using var model = ModelLoader.Load(FixtureDir, new CpuBackend(2));
        using var first = model.CreateSequence(100);
        using var second = model.CreateSequence(100);
        int[] good = InputIds[0][..10];
        int[] bad = [.. InputIds[1][..5], badId, .. InputIds[1][6..10]];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([first, second], [good, bad], LogitsSelection.All));
        Assert.Contains($"token id {badId}", e.Message);
        Assert.Contains("sequence 1", e.Message);
        Assert.Contains("index 5", e.Message);
        Assert.Equal(0, first.Length);
        Assert.Equal(0, second.Length);

        // The model and the untouched sequence still work: the prefix's logits are the fixture's first rows.
        float[] logits = model.Forward([first], [good], LogitsSelection.All);
        double err = RelativeError(logits, ExpectedLogits[..(10 * model.Config.VocabSize)]);
        Assert.True(err <= 1e-4, $"logits after the rejected step: relative error {err:E3}");
    }
}
