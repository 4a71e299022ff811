using static MiniMaxSharp.Tests.Training.VerifierRuns;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Cli.Commands;

namespace MiniMaxSharp.Tests.Training;

/// <summary>
/// The gradient rows of <c>minimax verify</c>, run with the CPU backend in the device's place (no GPU here): the
/// fixture check must load, run and compare every gradient, and the CPU must pass it against Hugging Face's.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class VerifyGradientsTests
{
    [Fact]
    public void FixtureForwardBackwardRowsPassForTheReferenceBackend()
    {
        using var device = new CpuBackend(2);
        using var cpu = new CpuBackend(2);
        var v = Quietly(new VerifyCommand.Verifier(device, cpu, 5), verifier => verifier.RunGradientFixture(TestPaths.Fixture("tiny-hybrid")));
        Assert.Equal(7, v.Rows.Count);
        Assert.Equal(0, v.Failures);
        Assert.Equal(0, v.Rows.Single(r => r.Op.StartsWith("model gradients vs CPU", StringComparison.Ordinal)).Error);
        var vsFixture = v.Rows.Single(r => r.Op.StartsWith("model gradients vs fixture", StringComparison.Ordinal));
        Assert.InRange(vsFixture.Error, 1e-9, 1e-4);   // float32 CPU against Hugging Face: close, not bit-equal
    }

    [Fact]
    public void EveryGradientOpRowRunsAndMatchesExactlyForTheReferenceBackend()
    {
        using var device = new CpuBackend(2);
        using var cpu = new CpuBackend(2);
        var v = Quietly(new VerifyCommand.Verifier(device, cpu, 5), verifier => verifier.RunGradientOps());
        Assert.True(v.Rows.Count > 40, $"{v.Rows.Count} rows");
        Assert.All(v.Rows, r => Assert.Equal(0, r.Error));
        // The training-forward rows ran with float32 activations under the float32 bound.
        Assert.Contains(v.Rows, r => r.Op == "F32 Lightning out" && r.Bound == 1e-4);
        Assert.Contains(v.Rows, r => r.Op == "MoE backward dExperts" && r.Bound == 1e-4);
    }

    [Fact]
    public void EveryDecodeKernelRowRunsAndMatchesExactlyForTheReferenceBackend()
    {
        using var device = new CpuBackend(2);
        using var cpu = new CpuBackend(2);
        var v = Quietly(new VerifyCommand.Verifier(device, cpu, 5), verifier => verifier.RunDecodeKernelChecks());
        Assert.True(v.Rows.Count >= 25, $"{v.Rows.Count} rows");
        Assert.All(v.Rows, r => Assert.Equal(0, r.Error));
        Assert.Contains(v.Rows, r => r.Op == "RmsNormSigmoidGate" && r.Shape == "[1,2048] F32");
    }

    [Fact]
    public void LightningPrefillRowsCompareAgainstTheFloat64Recurrence()
    {
        using var device = new CpuBackend(2);
        using var cpu = new CpuBackend(2);
        // Two sequences, one with a carried state, lengths not multiples of the block: the float32 CPU backend is the
        // "device"; it must sit far below the rows' bound, and not at zero (the reference is a separate computation).
        var v = Quietly(new VerifyCommand.Verifier(device, cpu, 5), verifier => verifier.LightningPrefill(2, [150, 70], [0, 4]));
        Assert.Equal(["Lightning prefill out vs float64", "Lightning prefill state vs float64"], v.Rows.Select(r => r.Op));
        Assert.All(v.Rows, r => Assert.InRange(r.Error, 1e-9, 1e-4));
        Assert.All(v.Rows, r => Assert.Equal(VerifyCommand.Verifier.LightningPrefillBound, r.Bound));
    }

    [Fact]
    public void EveryGreedyDecodeRowRunsAndMatchesExactlyForTheReferenceBackend()
    {
        using var device = new CpuBackend(2);
        using var cpu = new CpuBackend(2);
        var v = Quietly(new VerifyCommand.Verifier(device, cpu, 5), verifier => verifier.RunGreedyDecodeChecks());
        Assert.Equal(16, v.Rows.Count);   // 8 argmax, 2 embedding, 2 per decode of three (no graphs-off row on a backend without graphs)
        Assert.All(v.Rows, r => Assert.True(r.Pass && r.Error == 0, $"{r.Op} {r.Shape}: {r.Error}"));
        Assert.Contains(v.Rows, r => r.Op == "ArgMaxRows (wrong ids)" && r.Shape == "[4,1025] ties, ±0, NaN");
    }

    [Fact]
    public void FixtureBatchPairsTheInputIdsWithTheTrainingLabels()
    {
        var batch = VerifyCommand.Verifier.FixtureTrainingBatch(TestPaths.Fixture("tiny-hybrid"), out double loss);
        Assert.Equal(2, batch.Length);
        Assert.All(batch, ex => Assert.Equal(ex.InputIds.Length, ex.Labels.Length));
        Assert.Equal(6.466658592224121, loss);
    }
}
