using System.Globalization;
using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Tests.Checkpoints;
using Xunit.Abstractions;

namespace MiniMaxSharp.Tests.Training;

/// <summary>`minimax gradients` on the tiny-hybrid fixture against the gradients Hugging Face computed.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class GradientFixtureTests(ITestOutputHelper output)
{
    private static string Dir => TestPaths.Fixture("tiny-hybrid");

    [Fact]
    public void GradientsCommandReproducesTransformersLossAndEveryGradient()
    {
        using var temp = new TempDirectory();
        using var train = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "seq100_train.json")));
        using var seq = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "seq100.json")));
        double expectedLoss = train.RootElement.GetProperty("loss").GetDouble();
        string input = temp.File("batch.json");
        File.WriteAllText(input, $$"""{"input_ids": {{seq.RootElement.GetProperty("input_ids").GetRawText()}}, "labels": {{train.RootElement.GetProperty("labels").GetRawText()}}}""");
        string outPath = temp.File("grads.safetensors");

        var stdout = new StringWriter();
        var saved = Console.Out;
        Console.SetOut(stdout);
        int rc;
        try
        {
            rc = GradientsCommand.Create().Parse(["--model", Dir, "--input", input, "--output", outPath, "--threads", "2"]).Invoke();
        }
        finally
        {
            Console.SetOut(saved);
        }
        Assert.Equal(0, rc);
        string printed = stdout.ToString();
        double loss = double.Parse(printed.Split('\n')[0].Split(' ')[1], CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-5 * expectedLoss, $"loss {loss} vs {expectedLoss}");

        using var expected = SafeTensorsFile.Open(Path.Combine(Dir, "seq100_grads.safetensors"));
        using var actual = SafeTensorsFile.Open(outPath);
        Assert.Equal(expected.Tensors.Keys.Order(StringComparer.Ordinal), actual.Tensors.Keys.Order(StringComparer.Ordinal));
        double worst = 0;
        string worstName = "";
        foreach (var name in expected.Tensors.Keys)
        {
            Assert.Equal(expected.Get(name).Shape, actual.Get(name).Shape);
            double err = TestModels.RelativeError(actual.ReadAsFloat32(name), expected.ReadAsFloat32(name));
            if (err > worst) (worst, worstName) = (err, name);
            Assert.True(err <= 1e-4, $"{name}: relative error {err:E3}");
        }
        output.WriteLine($"loss {loss:R} (expected {expectedLoss:R}); worst gradient {worstName}: relative error {worst:E3}");
    }
}

/// <summary>The gradients command's input errors name the problem and leave no output behind.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class GradientsCommandInputTests
{
    [Theory]
    [InlineData("""{"input_ids": [[1, 2, 3]]}""", "\"labels\" is missing")]
    [InlineData("""{"input_ids": [[1, 2, 3]], "labels": [[1, 2]]}""", "labels[0] has 2 values")]
    [InlineData("""{"input_ids": [[1, 2, 3], [4, 5]], "labels": [[1, 2, 3], [4, 5]]}""", "input_ids[1] has 2 tokens")]
    [InlineData("""{"input_ids": [[1, "x", 3]], "labels": [[1, 2, 3]]}""", "input_ids[0][1] is not an integer")]
    [InlineData("""{"input_ids": [[1, 2, 3]], "labels": [[1, 2, 9999]]}""", "label 9999 at position 2")]
    [InlineData("""{"input_ids": [[1, 2, 3]], "labels": [[-100, -100, -100]]}""", "no position of the batch has a label")]
    [InlineData("""{"input_ids": [[1, 2, 3]], "labels": [[1, 2, 3]], "document_lengths": [[1, 1]]}""", "document lengths [1, 1]")]
    [InlineData("""[1, 2]""", "expected a JSON object")]
    public void BadInputIsReportedByName(string json, string message)
    {
        using var temp = new TempDirectory();
        string input = temp.File("batch.json");
        File.WriteAllText(input, json);
        string outPath = temp.File("grads.safetensors");
        var stderr = new StringWriter();
        var saved = Console.Error;
        Console.SetError(stderr);
        int rc;
        try
        {
            rc = GradientsCommand.Create().Parse(["--model", TestPaths.Fixture("tiny-hybrid"), "--input", input, "--output", outPath, "--threads", "1"]).Invoke();
        }
        finally
        {
            Console.SetError(saved);
        }
        Assert.Equal(1, rc);
        Assert.Contains(message, stderr.ToString());
        Assert.False(File.Exists(outPath));
    }
}

/// <summary>Gradients come back under the checkpoint's own names: fused Hugging Face experts and the VL prefix.</summary>
public sealed class GradientNamingTests
{
    [Fact]
    public void FusedExpertsAndPrefixAreWrittenAsTheCheckpointNamesThem()
    {
        using var temp = new TempDirectory();
        var c = TestModels.SmallConfig(layers: 2, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, experts: 3, topK: 2, inter: 6, vocab: 13, blockSize: 4, softmaxEvery: 2);
        var weights = TestModels.Weights(c, seed: 9);
        int E = c.NumExperts, I = c.IntermediateSize, H = c.HiddenSize;
        string plain = Path.Combine(temp.Path, "plain"), fused = Path.Combine(temp.Path, "fused");
        foreach (var dir in new[] { plain, fused })
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "config.json"), c.ToHuggingFaceJson());
        }
        SafeTensorToWrite Tensor(string name, long[] shape, float[] v) => SafeTensorToWrite.FromFloat32(name, shape, v, MiniMaxSharp.Tensors.DType.F32);
        SafeTensorsWriter.Write(Path.Combine(plain, "model.safetensors"), weights.Select(kv => Tensor(kv.Key, kv.Value.Shape, kv.Value.ToFloat32())));
        // The fused layout of layer 1 only, everything under "language_model.".
        const string prefix = "language_model.";
        var fusedTensors = weights.Where(kv => !kv.Key.StartsWith("model.layers.1.block_sparse_moe.", StringComparison.Ordinal))
            .Select(kv => Tensor(prefix + kv.Key, kv.Value.Shape, kv.Value.ToFloat32())).ToList();
        fusedTensors.Add(Tensor(prefix + "model.layers.1.mlp.gate.weight", [E, H], weights["model.layers.1.block_sparse_moe.gate.weight"].ToFloat32()));
        fusedTensors.Add(Tensor(prefix + "model.layers.1.mlp.experts.gate_up_proj", [E, 2 * I, H], Enumerable.Range(0, E).SelectMany(e =>
            weights[$"model.layers.1.block_sparse_moe.experts.{e}.w1.weight"].ToFloat32().Concat(weights[$"model.layers.1.block_sparse_moe.experts.{e}.w3.weight"].ToFloat32())).ToArray()));
        fusedTensors.Add(Tensor(prefix + "model.layers.1.mlp.experts.down_proj", [E, H, I], Enumerable.Range(0, E).SelectMany(e =>
            weights[$"model.layers.1.block_sparse_moe.experts.{e}.w2.weight"].ToFloat32()).ToArray()));
        SafeTensorsWriter.Write(Path.Combine(fused, "model.safetensors"), fusedTensors);

        string input = temp.File("batch.json");
        var ids = TestModels.RandomIds(10, c.VocabSize, 4);
        File.WriteAllText(input, $"{{\"input_ids\": [[{string.Join(",", ids)}]], \"labels\": [[{string.Join(",", ids)}]]}}");
        foreach (var dir in new[] { plain, fused })
            Assert.Equal(0, GradientsCommand.Create().Parse(["--model", dir, "--input", input, "--output", Path.Combine(dir, "grads.safetensors"), "--threads", "1"]).Invoke());

        using var a = SafeTensorsFile.Open(Path.Combine(plain, "grads.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(fused, "grads.safetensors"));
        Assert.Equal(fusedTensors.Select(t => t.Name).Order(StringComparer.Ordinal), b.Tensors.Keys.Order(StringComparer.Ordinal));
        foreach (var name in b.Tensors.Keys.Where(n => !n.Contains(".mlp.", StringComparison.Ordinal)))
            Assert.Equal(a.ReadAsFloat32(name[prefix.Length..]), b.ReadAsFloat32(name));
        Assert.Equal(a.ReadAsFloat32("model.layers.1.block_sparse_moe.gate.weight"), b.ReadAsFloat32(prefix + "model.layers.1.mlp.gate.weight"));
        var gateUp = b.ReadAsFloat32(prefix + "model.layers.1.mlp.experts.gate_up_proj");
        var down = b.ReadAsFloat32(prefix + "model.layers.1.mlp.experts.down_proj");
        for (int e = 0; e < E; e++)
        {
            string ep = $"model.layers.1.block_sparse_moe.experts.{e}.";
            Assert.Equal(a.ReadAsFloat32(ep + "w1.weight"), gateUp.AsSpan(e * 2 * I * H, I * H).ToArray());
            Assert.Equal(a.ReadAsFloat32(ep + "w3.weight"), gateUp.AsSpan((e * 2 + 1) * I * H, I * H).ToArray());
            Assert.Equal(a.ReadAsFloat32(ep + "w2.weight"), down.AsSpan(e * H * I, H * I).ToArray());
        }
        Assert.Contains(a.ReadAsFloat32("model.layers.1.block_sparse_moe.experts.0.w1.weight"), v => v != 0);
    }
}
