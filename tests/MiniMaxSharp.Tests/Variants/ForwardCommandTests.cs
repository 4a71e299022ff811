using System.Reflection;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tests.Checkpoints;
using static MiniMaxSharp.Tests.Variants.TinyHybridVariants;

namespace MiniMaxSharp.Tests.Variants;

/// <summary>The <c>minimax forward</c> command, run in-process through the CLI's own entry point, on a sharded variant.</summary>
// The CLI writes to the process-wide console, which other tests in this collection redirect.
[Collection(ConsoleCollection.Name)]
public sealed class ForwardCommandTests
{
    private static string InputJson => Path.Combine(FixtureDir, "seq100.json");

    /// <summary>Runs the <c>minimax</c> program's entry point (exactly what the executable runs) and returns its exit code.</summary>
    private static int Minimax(params string[] args)
    {
        var entry = Assembly.Load(new AssemblyName("minimax")).EntryPoint
            ?? throw new InvalidOperationException("minimax.dll has no entry point");
        object? result = entry.Invoke(null, [args]);
        return result switch
        {
            int code => code,
            Task<int> task => task.GetAwaiter().GetResult(),
            _ => throw new InvalidOperationException($"unexpected entry point result {result}"),
        };
    }

    [Fact]
    public void ChunkedAndDecodeModesMatchOnePassAndTransformers()
    {
        using var dir = new TempDirectory();
        string model = Directory.CreateDirectory(dir.File("model")).FullName;
        // Hugging Face dialect with block_size 32: chunks of 7 and 33 cut across lightning blocks.
        Write(model, HfConfig(), FixtureTensors, shards: 3, shuffleSeed: 4);

        float[] Forward(string name, params string[] mode)
        {
            string output = dir.File(name);
            int code = Minimax(["forward", "--model", model, "--input", InputJson, "--output", output, "--threads", "2", .. mode]);
            Assert.True(code == 0, $"minimax forward {string.Join(' ', mode)} exited with {code}");
            var npy = Npy.Read(output);
            Assert.Equal([2, 100, 512], npy.Shape);
            return npy.Data;
        }

        float[] onePass = Forward("one-pass.npy");
        double err = RelativeError(onePass, ExpectedLogits);
        Assert.True(err <= 1e-4, $"one pass vs transformers: relative error {err:E3}");
        foreach (var mode in new[] { new[] { "--decode-from", "40" }, ["--prefill-chunk", "7"], ["--prefill-chunk", "33"] })
        {
            float[] logits = Forward($"{mode[0].TrimStart('-')}-{mode[1]}.npy", mode);
            double vsOnePass = RelativeError(logits, onePass);
            double vsFixture = RelativeError(logits, ExpectedLogits);
            Assert.True(vsOnePass <= 1e-5, $"{string.Join(' ', mode)} vs one pass: relative error {vsOnePass:E3}");
            Assert.True(vsFixture <= 1e-4, $"{string.Join(' ', mode)} vs transformers: relative error {vsFixture:E3}");
        }
    }

    [Theory]
    [InlineData("--decode-from", "0")]
    [InlineData("--decode-from", "101")]
    [InlineData("--prefill-chunk", "0")]
    public void BadStepOptionsFailCleanlyWithoutOutput(string option, string value)
    {
        using var dir = new TempDirectory();
        string output = dir.File("out.npy");
        // The option is checked before the model is read, so the (valid) fixture folder is only named here.
        int code = Minimax("forward", "--model", FixtureDir, "--input", InputJson, "--output", output, option, value);
        Assert.Equal(1, code);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingModelFolderFailsCleanly()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out.npy");
        int code = Minimax("forward", "--model", dir.File("no-such-model"), "--input", InputJson, "--output", output);
        Assert.Equal(1, code);
        Assert.False(File.Exists(output));
    }
}
