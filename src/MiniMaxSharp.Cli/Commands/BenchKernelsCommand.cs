using System.CommandLine;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Cli.Benchmarks;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax bench-kernels</c>: memory bandwidth, GEMM and matrix-vector throughput of the CPU kernels.</summary>
internal static class BenchKernelsCommand
{
    public static Command Create()
    {
        var threads = new Option<int>("--threads")
        {
            Description = "Most threads to use (default: all logical CPUs).",
            DefaultValueFactory = _ => CpuParallel.MaxThreads,
        };
        var size = new Option<int?>("--size") { Description = "Only this square GEMM size (besides the prefill shape)." };
        threads.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
                r.AddError("--threads must be at least 1.");
        });
        size.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 1)
                r.AddError("--size must be at least 1.");
        });
        var command = new Command("bench-kernels", "Benchmark the CPU matrix-product kernels against memory bandwidth and OpenBLAS.")
        {
            threads,
            size,
        };
        command.SetAction(parseResult =>
        {
            KernelBenchmarks.Run(parseResult.GetValue(threads), parseResult.GetValue(size), Console.Out);
            return 0;
        });
        return command;
    }
}
