using System.CommandLine;
using System.Diagnostics;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Cli.Benchmarks;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax bench-train</c>: training throughput of a config with random weights and random tokens: full optimiser
/// steps (forward, backward, clipping, AdamW; products in float32 or bf16, everything else float32), as tokens/s, step time and model FLOP utilisation
/// (model FLOPs = 3 × the forward's, counted by <see cref="ModelCost"/>, against a stated or measured peak).
/// </summary>
internal static class BenchTrainCommand
{
    /// <summary>H100 SXM datasheet, dense float32 without tensor cores: what float32 training is measured against.</summary>
    internal const double H100F32Tflops = 67;

    /// <summary>H100 SXM datasheet, dense bf16 on tensor cores (printed for comparison).</summary>
    internal const double H100Bf16Tflops = 989;

    public static Command Create()
    {
        var config = new Option<string>("--config")
        {
            Description = $"Built-in config ({string.Join(", ", BuiltInConfigs.All.Keys)}) or a config.json (or its folder), e.g. models/default",
            DefaultValueFactory = _ => "bench-1b",
        };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per row (each row one document)", DefaultValueFactory = _ => 2048 };
        var batch = new Option<int>("--batch") { Description = "Rows per step", DefaultValueFactory = _ => 1 };
        var steps = new Option<int>("--steps") { Description = "Timed optimiser steps", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first (kernel compilation, buffer growth, JIT)", DefaultValueFactory = _ => 1 };
        var peak = new Option<double?>("--peak-tflops")
        {
            Description = $"Peak the MFU is against, TFLOP/s (default: cuda {H100F32Tflops} = H100 SXM dense float32 without tensor cores; "
                + $"with --precision bf16: {H100Bf16Tflops}, its dense bf16 tensor-core figure; cpu: measured with our float32 matrix product on 1024³)",
        };
        var precision = CommonOptions.Precision("bf16 on cuda, f32 on cpu");
        var profile = new Option<bool>("--profile")
        {
            Description = "After the timed steps, as many again with the time of each phase (forward / backward parts, optimiser); "
                + "these synchronise at every phase boundary, so they are slower than the timed ones",
        };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("bench-train", "Measure training throughput (tokens/s, step time, MFU) with random weights and tokens")
            { config, seqLen, batch, steps, warmup, peak, threads, backend, precision, profile };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            int seq = r.GetValue(seqLen), rows = r.GetValue(batch), timed = r.GetValue(steps), untimed = r.GetValue(warmup);
            if (seq < 2) throw new ArgumentException($"--seq-len must be at least 2 (a row needs a target), got {seq}");
            if (rows < 1 || timed < 1 || untimed < 0) throw new ArgumentException("--batch and --steps must be positive and --warmup not negative");
            var requested = CommonOptions.ParsePrecision(r.GetValue(precision));
            var (c, what) = ResolveConfig(r.GetValue(config)!);
            int t = r.GetValue(threads) is int n && n > 0 ? n : Environment.ProcessorCount;
            using var compute = BackendFactory.Create(r.GetValue(backend)!, t);
            if (compute is not IGradientBackend) throw new NotSupportedException($"backend '{compute.Name}' has no gradient ops");
            var used = CommonOptions.ApplyPrecision(requested, compute, TrainingPrecision.BF16);

            var (peakTflops, peakSource) = r.GetValue(peak) is double stated
                ? (stated, "stated with --peak-tflops")
                : DefaultPeak(compute, t, used);
            if (!(peakTflops > 0)) throw new ArgumentException($"--peak-tflops must be positive, got {peakTflops}");

            Console.WriteLine($"bench-train: {what}; backend {compute.Name}{(compute is CudaBackend cuda ? $" ({cuda.DeviceDescription})" : $", {t} thread(s)")}");
            Console.WriteLine($"  {ModelCost.TotalParams(c) / 1e6:F1}M parameters, {ModelCost.ActiveParams(c) / 1e6:F1}M active per token; {(used == TrainingPrecision.BF16
                ? "bf16 matrix products (float32 accumulation); float32 master weights, gradients, AdamW moments and other ops"
                : "float32 weights, activations, products, gradients and AdamW moments")}");
            var clock = Stopwatch.StartNew();
            using var model = TrainCommand.FromScratch(c, compute, seed: 1, std: 0.02f);
            using var adam = new AdamW(model, new AdamWOptions());
            var rng = new Random(7);
            var examples = Enumerable.Range(0, rows).Select(_ => TrainingExample.FromIds([.. Enumerable.Range(0, seq).Select(_ => rng.Next(c.VocabSize))])).ToArray();
            Console.WriteLine($"  model built in {clock.Elapsed.TotalSeconds:F1} s; {rows} row(s) x {seq} tokens per step, {untimed} warm-up + {timed} timed step(s)");

            double Step()
            {
                long start = Stopwatch.GetTimestamp();
                TrainingStep.Run(model, adam, [examples], learningRate: 1e-4, maxGradientNorm: 1.0);
                compute.Synchronize();
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            for (int i = 0; i < untimed; i++) Step();
            var seconds = Enumerable.Range(0, timed).Select(_ => Step()).ToArray();
            var report = new TrainingThroughput(c, seq, rows, seconds.Average(), seconds.Min(), peakTflops);
            Console.WriteLine();
            Console.WriteLine($"step: mean {report.MeanSeconds * 1e3:F1} ms, best {report.BestSeconds * 1e3:F1} ms");
            Console.WriteLine($"throughput: {report.TokensPerSecond:F0} tokens/s (mean step)");
            Console.WriteLine($"model FLOPs: {report.FlopsPerToken / 1e9:F3} GFLOP/token (3 x forward {report.FlopsPerToken / 3e9:F3}, attention included) = {report.StepFlops / 1e12:G4} TFLOP/step");
            Console.WriteLine($"achieved: {report.AchievedTflops:G4} TFLOP/s; MFU {report.Mfu:P1} of {peakTflops:G4} TFLOP/s ({peakSource})");
            if (r.GetValue(profile))
            {
                var profiler = new TrainingProfiler(compute);
                model.Profiler = profiler;
                double profiled = Enumerable.Range(0, timed).Select(_ => Step()).Average();
                model.Profiler = null;
                Console.WriteLine();
                Console.WriteLine($"phases (mean of {timed} profiled step(s), synchronised at each boundary; step {profiled * 1e3:F1} ms):");
                foreach (var phase in Enum.GetValues<TrainingPhase>())
                {
                    double ms = profiler.Seconds(phase) / timed * 1e3;
                    Console.WriteLine($"  {PhaseName(phase),-28} {ms,9:F2} ms  {profiler.Seconds(phase) / profiler.TotalSeconds,6:P1}");
                }
                Console.WriteLine($"  {"(host time outside phases)",-28} {(profiled - profiler.TotalSeconds / timed) * 1e3,9:F2} ms");
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>A built-in config by name, else a config.json file or the folder holding one.</summary>
    internal static (ModelConfig Config, string Description) ResolveConfig(string nameOrPath)
    {
        if (BuiltInConfigs.All.TryGetValue(nameOrPath, out var builtIn)) return (builtIn.Config, $"built-in '{nameOrPath}' ({builtIn.Description})");
        if (File.Exists(nameOrPath) || File.Exists(Path.Combine(nameOrPath, "config.json"))) return (ModelConfig.Load(nameOrPath), nameOrPath);
        throw new ArgumentException($"--config '{nameOrPath}' is neither a built-in config ({string.Join(", ", BuiltInConfigs.All.Keys)}) nor a config.json or a folder holding one");
    }

    internal static string PhaseName(TrainingPhase phase) => phase switch
    {
        TrainingPhase.ForwardProjections => "forward projections",
        TrainingPhase.ForwardLightning => "forward lightning",
        TrainingPhase.ForwardSoftmax => "forward softmax attention",
        TrainingPhase.ForwardMoe => "forward MoE",
        TrainingPhase.ForwardOther => "forward norms/residuals/rope",
        TrainingPhase.LmHeadCrossEntropy => "LM head + cross-entropy",
        TrainingPhase.BackwardProjections => "backward projections",
        TrainingPhase.BackwardLightning => "backward lightning",
        TrainingPhase.BackwardSoftmax => "backward softmax attention",
        TrainingPhase.BackwardMoe => "backward MoE",
        TrainingPhase.BackwardOther => "backward norms/residuals/emb",
        TrainingPhase.ZeroGradients => "zero gradients",
        TrainingPhase.GradientNorm => "gradient norm + clipping",
        TrainingPhase.AdamW => "AdamW",
        _ => phase.ToString(),
    };

    /// <summary>The peak when none is stated: the H100's datasheet figure on CUDA (dense float32, or dense bf16 tensor cores
    /// in bf16 mode), a measured matrix product on the CPU.</summary>
    private static (double Tflops, string Source) DefaultPeak(IComputeBackend backend, int threads, TrainingPrecision precision)
    {
        if (backend is CudaBackend)
            return precision == TrainingPrecision.BF16
                ? (H100Bf16Tflops, $"H100 SXM dense bf16 tensor-core datasheet, not measured; float32: {H100F32Tflops}")
                : (H100F32Tflops, $"H100 SXM dense float32 datasheet, not measured; bf16 tensor cores: {H100Bf16Tflops}");
        var (ours, _, _) = KernelBenchmarks.GemmGflops(null, 1024, 1024, 1024, threads);
        return (ours / 1e3, $"measured: our float32 matrix product 1024³ on {threads} thread(s)");
    }
}

/// <summary>Training throughput of steps of <paramref name="Rows"/> rows of <paramref name="SeqLen"/> tokens (each a fresh sequence).</summary>
internal sealed record TrainingThroughput(ModelConfig Config, int SeqLen, int Rows, double MeanSeconds, double BestSeconds, double PeakTflops)
{
    /// <summary>Model FLOPs of one step: forward (matrix products and attention, <see cref="ModelCost.PrefillFlops"/>) × 3 for forward + backward.</summary>
    public double StepFlops => 3.0 * Rows * ModelCost.PrefillFlops(Config, SeqLen);

    public long TokensPerStep => (long)Rows * SeqLen;
    public double FlopsPerToken => StepFlops / TokensPerStep;
    public double TokensPerSecond => TokensPerStep / MeanSeconds;
    public double AchievedTflops => StepFlops / MeanSeconds / 1e12;

    /// <summary>Model FLOP utilisation: achieved model FLOP/s over the peak.</summary>
    public double Mfu => AchievedTflops / PeakTflops;
}
