using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Config;

namespace MiniMaxSharp.Tests.Training;

/// <summary>The FLOP accounting and config lookup of <c>minimax bench-train</c> (host logic, no GPU needed).</summary>
public sealed class BenchTrainTests
{
    // Built-in 'tiny': hidden 64, 8 layers (7 lightning + 1 softmax), 4 heads x 16, 2 KV heads, 4 experts top-2 of
    // width 96, vocab 512, block 32. Worked out by hand:
    //   active parameters = 512·64 + 2·64 + 7·(20544 + 128 + 256 + 36864) + (12288 + 128 + 256 + 36864) = 486976
    //   dense forward FLOPs per token = 2·(486976 − 64) = 973824
    //   lightning per token = 7 layers · 4 heads · (4·16² + 2·32·16) = 57344
    //   softmax over 64 tokens = 4·4·16 · 64·65/2 = 532480
    //   forward of 64 tokens = 973824·64 + 57344·64 + 532480 = 66527232; training step of 2 rows = 3·2·that.
    [Fact]
    public void StepFlopsAreThreeForwardsOfEveryRow()
    {
        var c = BuiltInConfigs.Get("tiny");
        var r = new TrainingThroughput(c, SeqLen: 64, Rows: 2, MeanSeconds: 0.5, BestSeconds: 0.4, PeakTflops: 1e-3);
        Assert.Equal(399_163_392.0, r.StepFlops);
        Assert.Equal(128, r.TokensPerStep);
        Assert.Equal(399_163_392.0 / 128, r.FlopsPerToken);
        Assert.Equal(256.0, r.TokensPerSecond);
        Assert.Equal(399_163_392.0 / 0.5 / 1e12, r.AchievedTflops, 12);
        Assert.Equal(399_163_392.0 / 0.5 / 1e12 / 1e-3, r.Mfu, 9);
    }

    [Fact]
    public void ShortRowsCountTheLightningBlockAsTheRowLength()
    {
        // 20 tokens < block 32: the causal in-block part covers 20 tokens; softmax 4·4·16·20·21/2 = 53760.
        var r = new TrainingThroughput(BuiltInConfigs.Get("tiny"), SeqLen: 20, Rows: 1, MeanSeconds: 1, BestSeconds: 1, PeakTflops: 1);
        double forward = 973824.0 * 20 + 7 * 4 * (4 * 256 + 2 * 20 * 16) * 20.0 + 53760;
        Assert.Equal(3 * forward, r.StepFlops);
        Assert.Equal(61_386_240.0, r.StepFlops);
    }

    [Fact]
    public void ConfigIsABuiltInNameAConfigFileOrItsFolder()
    {
        Assert.Equal(2048, BenchTrainCommand.ResolveConfig("bench-1b").Config.HiddenSize);
        string folder = TestPaths.Fixture("tiny-hybrid");
        var fromFolder = BenchTrainCommand.ResolveConfig(folder).Config;
        var fromFile = BenchTrainCommand.ResolveConfig(Path.Combine(folder, "config.json")).Config;
        Assert.Equal(ModelConfig.Load(folder).HiddenSize, fromFolder.HiddenSize);
        Assert.Equal(fromFolder.NumLayers, fromFile.NumLayers);
        var e = Assert.Throws<ArgumentException>(() => BenchTrainCommand.ResolveConfig("no-such-config"));
        Assert.Contains("no-such-config", e.Message);
        Assert.Contains("bench-1b", e.Message);
    }
}

/// <summary><c>minimax bench-train</c> end to end on the CPU with the built-in tiny config, and its input errors.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class BenchTrainCommandTests
{
    private static (int ExitCode, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var (savedOut, savedErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            return (BenchTrainCommand.Create().Parse(args).Invoke(), stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedErr);
        }
    }

    [Fact]
    public void TinyConfigOnTheCpuReportsThroughputAndMfu()
    {
        var (rc, output, err) = Run("--config", "tiny", "--seq-len", "16", "--batch", "2", "--steps", "1", "--warmup", "0", "--peak-tflops", "0.5", "--threads", "1");
        Assert.True(rc == 0, err);
        var expected = new TrainingThroughput(BuiltInConfigs.Get("tiny"), 16, 2, 1, 1, 0.5);
        Assert.Contains("backend cpu", output);
        Assert.Contains("tokens/s", output);
        Assert.Contains($"= {expected.StepFlops / 1e12:G4} TFLOP/step", output);
        Assert.Contains("of 0.5 TFLOP/s (stated with --peak-tflops)", output);
    }

    [Theory]
    [InlineData("--seq-len", "1", "--seq-len must be at least 2")]
    [InlineData("--steps", "0", "--batch and --steps must be positive")]
    [InlineData("--peak-tflops", "-3", "--peak-tflops must be positive")]
    [InlineData("--config", "nope", "--config 'nope' is neither")]
    public void BadOptionsAreReportedByName(string option, string value, string message)
    {
        var options = new Dictionary<string, string> { ["--config"] = "tiny", ["--seq-len"] = "8", ["--steps"] = "1", ["--threads"] = "1" };
        options[option] = value;
        var (rc, _, err) = Run([.. options.SelectMany(kv => new[] { kv.Key, kv.Value })]);
        Assert.Equal(1, rc);
        Assert.Contains(message, err);
    }
}
