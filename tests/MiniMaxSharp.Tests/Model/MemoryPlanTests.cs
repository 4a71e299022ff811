using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Model;

public sealed class MemoryPlanTests
{
    private static readonly ModelConfig Bench = BuiltInConfigs.Get("bench-1b");

    [Fact]
    public void States_AreEverySequenceAtItsFullContext()
    {
        var plan = MemoryPlan.For(Bench, 1L << 30, sequences: 4, tokensPerSequence: 100_000, stepTokens: 4, DType.BF16, DType.F32);
        Assert.Equal(4 * SequenceState.BytesFor(Bench, 100_000, DType.BF16), plan.StateBytes);
        // 1 softmax layer × (K + V) × 2 KV heads × 128 × 2 bytes × 100k tokens, plus 7 lightning states of 16 × 128² float32.
        Assert.Equal(4 * (2L * 256 * 2 * 100_000 + 7L * 16 * 128 * 128 * 4), plan.StateBytes);
        Assert.Equal(plan.WeightBytes + plan.StateBytes + plan.WorkspaceBytes + MemoryPlan.Margin, plan.TotalBytes);
    }

    [Fact]
    public void Workspace_GrowsWithTheStep_AndCoversTheActivationsOfEveryToken()
    {
        var small = MemoryPlan.For(Bench, 0, 1, 65536, 1024, DType.BF16, DType.F32);
        var large = MemoryPlan.For(Bench, 0, 1, 65536, 65536, DType.BF16, DType.F32);
        Assert.True(large.WorkspaceBytes > small.WorkspaceBytes);
        // At the least: the float32 hidden state and branch and the bf16 q/k/v of every token of the step.
        Assert.True(large.WorkspaceBytes > 65536L * (2 * 2048 * 4 + 3 * 2048 * 2));
    }

    [Fact]
    public void TooLittleMemory_IsAnErrorThatGivesThePlanAndWhatIsFree()
    {
        var plan = MemoryPlan.For(Bench, 2L << 30, sequences: 64, tokensPerSequence: 1 << 20, stepTokens: 64, DType.BF16, DType.F32);
        var e = Assert.Throws<InsufficientDeviceMemoryException>(() => plan.EnsureFits(1L << 30, "cuda"));
        Assert.Contains("64 sequence(s) of up to 1048576 tokens", e.Message);
        Assert.Contains("sequence states", e.Message);
        Assert.Contains("1.00 GiB is free", e.Message);
        plan.EnsureFits(plan.TotalBytes - plan.WeightBytes, "cuda");   // exactly enough is enough
    }

    [Fact]
    public void CpuBackend_HasNoFixedMemoryToPlan()
    {
        var config = TestModels.SmallConfig();
        using var model = TestModels.Build(config, TestModels.Weights(config, seed: 1));
        Assert.Null(MemoryPlan.CheckFits(model, 1, 100, 10));
    }
}
