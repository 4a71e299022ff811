using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Checkpoints;

public class CheckpointFilesTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private void WriteShard(string fileName, params (string Name, float[] Values)[] tensors) =>
        SafeTensorsWriter.Write(_dir.File(fileName),
            tensors.Select(t => SafeTensorToWrite.FromFloat32(t.Name, [t.Values.Length], t.Values, DType.BF16)));

    private void WriteIndex(Dictionary<string, string> weightMap)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["metadata"] = new Dictionary<string, long> { ["total_size"] = 0 },
            ["weight_map"] = weightMap,
        });
        File.WriteAllText(_dir.File(CheckpointFiles.IndexFileName), json);
    }

    private void WriteTwoShardsWithIndex()
    {
        WriteShard("model-00001-of-00002.safetensors", ("embed", [1, 2, 3]), ("layer0", [4, 5]));
        WriteShard("model-00002-of-00002.safetensors", ("head", [6, 7, 8, 9]));
        WriteIndex(new()
        {
            ["embed"] = "model-00001-of-00002.safetensors",
            ["layer0"] = "model-00001-of-00002.safetensors",
            ["head"] = "model-00002-of-00002.safetensors",
        });
    }

    private CheckpointException AssertOpenFails(params string[] messageParts)
    {
        var e = Assert.Throws<CheckpointException>(() => CheckpointFiles.Open(_dir.Path));
        foreach (var part in messageParts) Assert.Contains(part, e.Message);
        return e;
    }

    [Fact]
    public void ShardedWithIndex_RoundTrips()
    {
        WriteTwoShardsWithIndex();
        using var checkpoint = CheckpointFiles.Open(_dir.Path);

        Assert.Equal(new[] { "embed", "head", "layer0" }, checkpoint.Names);
        Assert.Equal(2, checkpoint.Files.Count);
        Assert.True(checkpoint.Contains("head"));
        Assert.False(checkpoint.Contains("missing"));

        var (file, info) = checkpoint.Get("head");
        Assert.Equal("model-00002-of-00002.safetensors", Path.GetFileName(file.Path));
        Assert.Equal(SafeTensorsDType.BF16, info.DType);
        Assert.Equal(new[] { 6f, 7f, 8f, 9f }, file.ReadAsFloat32(info.Name));
        var (embedFile, _) = checkpoint.Get("embed");
        Assert.Equal(new[] { 1f, 2f, 3f }, embedFile.ReadAsFloat32("embed"));
        // Each shard is opened once and shared by its tensors.
        Assert.Same(embedFile, checkpoint.Get("layer0").File);
    }

    [Fact]
    public void WithoutIndex_OpensEverySafetensorsFileSorted()
    {
        WriteShard("b.safetensors", ("y", [2]));
        WriteShard("a.safetensors", ("x", [1]));
        File.WriteAllText(_dir.File("notes.txt"), "not a checkpoint");
        using var checkpoint = CheckpointFiles.Open(_dir.Path);
        Assert.Equal(new[] { "a.safetensors", "b.safetensors" }, checkpoint.Files.Select(f => Path.GetFileName(f.Path)));
        Assert.Equal(new[] { "x", "y" }, checkpoint.Names);
        Assert.Equal(new[] { 2f }, checkpoint.Get("y").File.ReadAsFloat32("y"));
    }

    [Fact]
    public void RealFixtureFolder_Opens()
    {
        // The folder also holds seq100_grads.safetensors under the same names; as in Hugging Face, a
        // lone model.safetensors is the checkpoint and other safetensors files beside it are not.
        using var checkpoint = CheckpointFiles.Open(TestPaths.Fixture("tiny-hybrid"));
        Assert.Equal(new[] { "model.safetensors" }, checkpoint.Files.Select(f => Path.GetFileName(f.Path)));
        Assert.Equal(183, checkpoint.Names.Count);
        Assert.Equal(new long[] { 512, 64 }, checkpoint.Get("model.embed_tokens.weight").Info.Shape);
    }

    [Fact]
    public void WithoutIndex_LoneModelFileWins()
    {
        WriteShard("model.safetensors", ("x", [1]));
        WriteShard("optimizer.safetensors", ("x", [5]));
        using var checkpoint = CheckpointFiles.Open(_dir.Path);
        Assert.Single(checkpoint.Files);
        Assert.Equal(new[] { 1f }, checkpoint.Get("x").File.ReadAsFloat32("x"));
    }

    [Fact]
    public void MissingTensor_NamesIt()
    {
        WriteTwoShardsWithIndex();
        using var checkpoint = CheckpointFiles.Open(_dir.Path);
        var e = Assert.Throws<CheckpointException>(() => checkpoint.Get("model.norm.weight"));
        Assert.Contains("'model.norm.weight'", e.Message);
    }

    [Fact]
    public void EmptyFolder_Fails() => AssertOpenFails(_dir.Path, "no *.safetensors files");

    [Fact]
    public void MissingFolder_Fails()
    {
        var missing = Path.Combine(_dir.Path, "absent");
        var e = Assert.Throws<CheckpointException>(() => CheckpointFiles.Open(missing));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void IndexNamingMissingShard_Fails()
    {
        WriteTwoShardsWithIndex();
        File.Delete(_dir.File("model-00002-of-00002.safetensors"));
        AssertOpenFails(CheckpointFiles.IndexFileName, "'model-00002-of-00002.safetensors'", "does not exist");
    }

    [Fact]
    public void IndexNamingTensorAbsentFromItsShard_Fails()
    {
        WriteTwoShardsWithIndex();
        WriteIndex(new()
        {
            ["embed"] = "model-00001-of-00002.safetensors",
            ["layer0"] = "model-00001-of-00002.safetensors",
            ["head"] = "model-00002-of-00002.safetensors",
            ["lm_head.weight"] = "model-00002-of-00002.safetensors",
        });
        AssertOpenFails("'lm_head.weight'", "'model-00002-of-00002.safetensors'", "does not contain it");
    }

    [Fact]
    public void IndexMappingTensorToWrongShard_Fails()
    {
        WriteTwoShardsWithIndex();
        WriteIndex(new()
        {
            ["embed"] = "model-00002-of-00002.safetensors",
            ["layer0"] = "model-00001-of-00002.safetensors",
            ["head"] = "model-00002-of-00002.safetensors",
        });
        AssertOpenFails("'embed'", "does not contain it", "it is in model-00001-of-00002.safetensors");
    }

    [Fact]
    public void DuplicateTensorAcrossShards_WithIndex_Fails()
    {
        WriteShard("model-00001-of-00002.safetensors", ("embed", [1]), ("head", [2]));
        WriteShard("model-00002-of-00002.safetensors", ("head", [3]));
        WriteIndex(new()
        {
            ["embed"] = "model-00001-of-00002.safetensors",
            ["head"] = "model-00002-of-00002.safetensors",
        });
        AssertOpenFails("'head'", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "both");
    }

    [Fact]
    public void DuplicateTensorAcrossFiles_WithoutIndex_Fails()
    {
        WriteShard("a.safetensors", ("w", [1]));
        WriteShard("b.safetensors", ("w", [1]));
        AssertOpenFails("'w'", "a.safetensors", "b.safetensors");
    }

    [Fact]
    public void IndexWithoutWeightMap_Fails()
    {
        WriteShard("a.safetensors", ("w", [1]));
        File.WriteAllText(_dir.File(CheckpointFiles.IndexFileName), """{"metadata":{}}""");
        AssertOpenFails(CheckpointFiles.IndexFileName, "'weight_map'");
    }

    [Fact]
    public void IndexNotJson_Fails()
    {
        File.WriteAllText(_dir.File(CheckpointFiles.IndexFileName), "{ weight_map: ");
        AssertOpenFails(CheckpointFiles.IndexFileName, "not valid JSON");
    }

    [Fact]
    public void IndexReachingOutsideTheFolder_Fails()
    {
        WriteShard("a.safetensors", ("w", [1]));
        WriteIndex(new() { ["w"] = "../a.safetensors" });
        AssertOpenFails("'../a.safetensors'", "not a plain file name");
    }

    [Fact]
    public void BadShard_ReportsTheShardFile()
    {
        WriteTwoShardsWithIndex();
        File.WriteAllBytes(_dir.File("model-00002-of-00002.safetensors"), [1, 2, 3]);
        AssertOpenFails("model-00002-of-00002.safetensors", "truncated");
    }
}
