using MiniMaxSharp.Backends;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>Plans a bench run's device memory before it starts (GPU backends only) and prints the plan.</summary>
internal static class MemoryPlanning
{
    public static MemoryPlan? Check(MiniMaxModel model, int sequences, long tokensPerSequence, int stepTokens, TextWriter report)
    {
        var plan = MemoryPlan.CheckFits(model, sequences, tokensPerSequence, stepTokens);
        if (plan is not null && model.Backend is IDeviceMemory memory)
            report.WriteLine($"  memory plan: {plan.Describe()}; total {plan.TotalBytes / (double)(1L << 30):F2} GiB of {memory.MemoryInfo().Total / (double)(1L << 30):F1} GiB");
        return plan;
    }
}
