using static MiniMaxSharp.Tests.Training.VerifierRuns;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

/// <summary>The bf16 training precision's host side: option parsing, where it may be used, the weight-copy scope of a step,
/// the verify rows that drive it, the pooled activations and the one-transfer gradient norm.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainingPrecisionTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Theory]
    [InlineData(null, null)]
    [InlineData("f32", TrainingPrecision.F32)]
    [InlineData("FP32", TrainingPrecision.F32)]
    [InlineData("bf16", TrainingPrecision.BF16)]
    [InlineData("bfloat16", TrainingPrecision.BF16)]
    public void PrecisionNamesParse(string? text, TrainingPrecision? expected) => Assert.Equal(expected, CommonOptions.ParsePrecision(text));

    [Fact]
    public void AnUnknownPrecisionIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => CommonOptions.ParsePrecision("fp8"));
        Assert.Contains("--precision must be f32 or bf16, got 'fp8'", e.Message);
    }

    [Fact]
    public void Bf16OnTheCpuIsRefusedAndDefaultsFollowTheBackend()
    {
        using var cpu = new CpuBackend(1);
        var e = Assert.Throws<ArgumentException>(() => CommonOptions.ApplyPrecision(TrainingPrecision.BF16, cpu, TrainingPrecision.BF16));
        Assert.Contains("--precision bf16 needs --backend cuda", e.Message);
        Assert.Equal(TrainingPrecision.F32, CommonOptions.ApplyPrecision(null, cpu, TrainingPrecision.BF16));

        using var mixed = new MixedPrecisionCpuBackend(1);
        Assert.Equal(TrainingPrecision.BF16, CommonOptions.ApplyPrecision(null, mixed, TrainingPrecision.BF16));
        Assert.Equal(TrainingPrecision.BF16, mixed.ProductPrecision);
        Assert.Equal(TrainingPrecision.F32, CommonOptions.ApplyPrecision(TrainingPrecision.F32, mixed, TrainingPrecision.BF16));
        Assert.Equal(TrainingPrecision.F32, mixed.ProductPrecision);
    }

    private static (int ExitCode, string Err) Run(System.CommandLine.Command command, params string[] args)
    {
        var stderr = new StringWriter();
        var (savedOut, savedErr) = (Console.Out, Console.Error);
        Console.SetOut(TextWriter.Null);
        Console.SetError(stderr);
        try
        {
            return (command.Parse(args).Invoke(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedErr);
        }
    }

    [Fact]
    public void CommandsRejectBf16OnTheCpuAndUnknownPrecisions()
    {
        var (rc, err) = Run(BenchTrainCommand.Create(), "--config", "tiny", "--seq-len", "8", "--steps", "1", "--threads", "1", "--precision", "bf16");
        Assert.Equal(1, rc);
        Assert.Contains("--precision bf16 needs --backend cuda", err);
        (rc, err) = Run(BenchTrainCommand.Create(), "--config", "tiny", "--seq-len", "8", "--steps", "1", "--threads", "1", "--precision", "f16");
        Assert.Equal(1, rc);
        Assert.Contains("--precision must be f32 or bf16, got 'f16'", err);

        string dir = TestPaths.Fixture("tiny-hybrid");
        string output = Path.Combine(Path.GetTempPath(), $"precision-test-{Environment.ProcessId}.safetensors");
        (rc, err) = Run(GradientsCommand.Create(), "--model", dir, "--input", Path.Combine(dir, "seq100_train.json"), "--output", output,
            "--threads", "1", "--precision", "bf16");
        Assert.Equal(1, rc);
        Assert.Contains("--precision bf16 needs --backend cuda", err);
        Assert.False(File.Exists(output));

        (rc, err) = Run(TrainCommand.Create(), "--config", Path.Combine(dir, "config.json"), "--data", Path.Combine(dir, "seq100.json"),
            "--out", Path.Combine(Path.GetTempPath(), $"precision-train-{Environment.ProcessId}"), "--precision", "nope");
        Assert.Equal(1, rc);
        Assert.Contains("--precision must be f32 or bf16, got 'nope'", err);
    }

    [Fact]
    public void BenchTrainProfilePrintsEveryPhase()
    {
        var stdout = new StringWriter();
        var (savedOut, savedErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(TextWriter.Null);
        int rc;
        try
        {
            rc = BenchTrainCommand.Create().Parse(["--config", "tiny", "--seq-len", "16", "--steps", "1", "--warmup", "0", "--threads", "1", "--peak-tflops", "1", "--profile"]).Invoke();
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedErr);
        }
        string printed = stdout.ToString();
        Assert.Equal(0, rc);
        Assert.Contains("float32 weights, activations, products", printed);   // the cpu's default
        Assert.Contains("phases (mean of 1 profiled step(s)", printed);
        foreach (var phase in Enum.GetValues<TrainingPhase>()) Assert.Contains(BenchTrainCommand.PhaseName(phase), printed);
    }

    [Fact]
    public void AStepsMicroBatchesShareOneWeightCopyScope()
    {
        using var mixed = new MixedPrecisionCpuBackend(2);
        mixed.ProductPrecision = TrainingPrecision.BF16;
        using var model = TrainingModel.Load(TestPaths.Fixture("tiny-hybrid"), mixed);
        var batch = VerifyCommand.Verifier.FixtureTrainingBatch(TestPaths.Fixture("tiny-hybrid"), out _);
        using var adam = new AdamW(model, new AdamWOptions());
        TrainingStep.Run(model, adam, [batch, batch], learningRate: 1e-3, maxGradientNorm: 1.0);
        Assert.Equal(3, mixed.ScopesOpened);   // the step's, and one per micro-batch nested in it
        Assert.Equal(2, mixed.DeepestNesting);
        Assert.Equal(0, mixed.OpenScopes);      // the optimiser runs after all of them closed
        Assert.All(mixed.PrecisionInScopes, p => Assert.Equal(TrainingPrecision.BF16, p));
    }

    [Fact]
    public void Bf16VerifyRowsRunUnderTheBf16BoundAndRestoreThePrecision()
    {
        using var mixed = new MixedPrecisionCpuBackend(2);
        using var cpu = new CpuBackend(2);
        var v = Quietly(new VerifyCommand.Verifier(mixed, cpu, 5), verifier => verifier.RunBf16ProductChecks(TestPaths.Fixture("tiny-hybrid")));
        Assert.Equal(TrainingPrecision.F32, mixed.ProductPrecision);
        Assert.True(mixed.ScopesOpened >= 4, $"{mixed.ScopesOpened} scopes");   // the scope check's two, the fixture's forward + backward and step
        Assert.Equal(0, v.Failures);
        Assert.All(v.Rows, r => Assert.StartsWith("BF16 products ", r.Op, StringComparison.Ordinal));
        Assert.All(v.Rows, r => Assert.Equal(1e-2, r.Bound));
        Assert.Contains(v.Rows, r => r.Op.StartsWith("BF16 products model gradients vs fixture", StringComparison.Ordinal));
        Assert.Contains(v.Rows, r => r.Op == "BF16 products LmHeadCrossEntropy dLmHead");
        Assert.Contains(v.Rows, r => r.Op == "BF16 products weight copy scope, round 2");
        Assert.DoesNotContain(v.Rows, r => r.Op.Contains("train step weights", StringComparison.Ordinal));
        // The CPU stands in for the device with float32 products: everything but the fixture comparison is exact.
        Assert.All(v.Rows.Where(r => !r.Op.Contains("fixture", StringComparison.Ordinal)), r => Assert.Equal(0, r.Error));
    }

    /// <summary>
    /// The bf16 mode's error budget, estimated on the host: tiny-hybrid's forward + backward with the operands of every
    /// product the CUDA mode runs in bf16 rounded to bf16 (float32 accumulation), against Hugging Face's float32 gradients.
    /// The GPU's own rows (<c>minimax verify</c>, "BF16 products model gradients vs fixture") hold it to the same 1e-2.
    /// </summary>
    [Fact]
    public void Bf16ProductOperandsKeepTheFixtureGradientsWithinTheBf16Bound()
    {
        using var mixed = new MixedPrecisionCpuBackend(2) { EmulateBf16Operands = true, ProductPrecision = TrainingPrecision.BF16 };
        using var cpu = new CpuBackend(2);
        var v = new VerifyCommand.Verifier(mixed, cpu, 5);
        var saved = Console.Error;
        var log = new StringWriter();
        Console.SetError(log);
        try
        {
            v.RunGradientFixture(TestPaths.Fixture("tiny-hybrid"));
        }
        finally
        {
            Console.SetError(saved);
        }
        output.WriteLine(log.ToString());
        var vsFixture = v.Rows.Single(r => r.Op.StartsWith("model gradients vs fixture", StringComparison.Ordinal));
        var loss = v.Rows.Single(r => r.Op == "model loss vs fixture");
        Assert.True(vsFixture.Error <= 1e-2, log.ToString());
        Assert.True(loss.Error <= 1e-2, log.ToString());
        Assert.True(vsFixture.Error > 1e-5, $"the operands were not rounded: {vsFixture.Error}");   // far from float32's ~1e-6
    }

    [Fact]
    public void StepsReuseTheirActivationsAndGiveTheSameResultsAsAFreshModel()
    {
        var batch = VerifyCommand.Verifier.FixtureTrainingBatch(TestPaths.Fixture("tiny-hybrid"), out _);
        using var cpu = new CpuBackend(2);
        using var model = TrainingModel.Load(TestPaths.Fixture("tiny-hybrid"), cpu);
        var first = model.ForwardBackward(batch);
        model.ZeroGradients();
        var second = model.ForwardBackward(batch);   // pooled, cleared tensors
        Assert.Equal(first.Total, second.Total);
        using var fresh = TrainingModel.Load(TestPaths.Fixture("tiny-hybrid"), cpu);
        fresh.ForwardBackward(batch);
        foreach (var ((name, a), (_, b)) in TrainableWeights.Named(model.Gradients).Zip(TrainableWeights.Named(fresh.Gradients)))
        {
            var x = new float[a.ElementCount];
            var y = new float[b.ElementCount];
            cpu.Download(a, x);
            cpu.Download(b, y);
            Assert.True(x.AsSpan().SequenceEqual(y), name);
        }
        // A batch of another length (one row) releases the pool and still gives its own loss.
        var one = model.ForwardBackward([batch[0]]);
        using var freshOne = TrainingModel.Load(TestPaths.Fixture("tiny-hybrid"), cpu);
        Assert.Equal(freshOne.ForwardBackward([batch[0]]).Total, one.Total);
    }

    [Fact]
    public void BatchedSumsOfSquaresAreTheSingleOnes()
    {
        using var cpu = new CpuBackend(1);
        var rng = new Random(3);
        var tensors = new[] { 5, 0, 1000 }.Select(n =>
        {
            var t = cpu.Allocate(MiniMaxSharp.Tensors.DType.F32, Math.Max(n, 0));
            cpu.Upload([.. Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble())], t);
            return t;
        }).ToArray();
        IGradientBackend grad = cpu;
        var sums = new double[3];
        grad.SumsOfSquares(tensors, sums);
        Assert.Equal(tensors.Select(grad.SumOfSquares), sums);
        Assert.Throws<ArgumentException>(() => grad.SumsOfSquares(tensors, new double[2]));
        foreach (var t in tensors) t.Dispose();
    }
}
