using System.Globalization;
using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Tests.Checkpoints;
using Xunit.Abstractions;

namespace MiniMaxSharp.Tests.Training;

/// <summary>`minimax gradients` on the tiny-hybrid fixture against the gradients Hugging Face computed.</summary>
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
