using System.CommandLine;
using System.Diagnostics;
using System.Numerics.Tensors;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Cli.Benchmarks;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax bench</c>: prefill and decode speed of a model, against what the machine can do
/// (FLOP/s of a measured matrix product; bytes/s of measured memory bandwidth).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        var preset = new Option<string?>("--preset") { Description = $"Built-in shape with random weights ({string.Join(", ", BuiltInConfigs.All.Keys)}); default cpu-1k" };
        var configFile = new Option<FileInfo?>("--config") { Description = "A config.json to build with random weights" };
        var weights = new Option<string>("--weights") { Description = "Element type of random weights: f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var lengths = new Option<int[]>("--prompt-lengths") { Description = "Prefill lengths to time", DefaultValueFactory = _ => [256, 1024], AllowMultipleArgumentsPerToken = true };
        var decodeTokens = new Option<int>("--decode-tokens") { Description = "Decode steps to time", DefaultValueFactory = _ => 16 };
        var decodeContext = new Option<int>("--decode-context") { Description = "Tokens in the sequence before the timed decode steps", DefaultValueFactory = _ => 256 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repetitions of each prefill (best is reported)", DefaultValueFactory = _ => 2 };
        var skipLimits = new Option<bool>("--skip-machine-limits") { Description = "Do not measure the matrix-product peak and memory bandwidth" };
        var noPhases = new Option<bool>("--no-phase-split") { Description = "Skip the extra profiled prefill that splits the time by phase (for prompts of millions of tokens)" };
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "Prefill in chunks of this many tokens (0: one pass)", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--decode-batch") { Description = "Also time decode of this many sequences, one step over all of them (0: skip)", DefaultValueFactory = _ => 0 };
        var batchContext = new Option<int>("--batch-context") { Description = "Tokens in each sequence of the batched decode before the timed steps", DefaultValueFactory = _ => 128 };
        var hostGreedy = new Option<bool>("--greedy-on-host") { Description = "Decode by downloading the logits and choosing on the host, even where the backend chooses tokens on the device (A/B)" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("bench", "Measure prefill and decode throughput against the machine's limits")
            { model, preset, configFile, weights, lengths, decodeTokens, decodeContext, repeats, skipLimits, noPhases, prefillChunk, batch, batchContext, hostGreedy, threads, backend };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            int t = r.GetValue(threads) is int n && n > 0 ? n : Environment.ProcessorCount;
            var b = BackendFactory.Create(r.GetValue(backend)!, t);
            using var m = LoadOrBuild(r.GetValue(model), r.GetValue(preset), r.GetValue(configFile), ParseDType(r.GetValue(weights)!), b, out string what, out int weightBytes);
            var c = m.Config;
            Console.WriteLine($"bench: {what}; backend {b.Name}, {t} thread(s)");
            Console.WriteLine($"  {ModelCost.TotalParams(c) / 1e6:F1}M parameters, {ModelCost.ActiveParams(c) / 1e6:F1}M active per token, weights {weightBytes} bytes each");

            double peakGflops = 0, readGBs = 0;
            if (!r.GetValue(skipLimits) && b.Name == "cpu")
            {
                // The reference peak: the better of our float32 kernel and OpenBLAS (when installed) on 1024^3.
                var (ours, _, blas) = KernelBenchmarks.GemmGflops(OpenBlas.TryLoad(), 1024, 1024, 1024, t);
                peakGflops = Math.Max(ours, blas ?? 0);
                (readGBs, _) = KernelBenchmarks.MeasureBandwidth(t);
                Console.WriteLine($"  machine: matrix product 1024^3 float32: ours {ours:F1} GFLOP/s, OpenBLAS {(blas is null ? "not installed" : $"{blas:F1} GFLOP/s")}; memory read bandwidth {readGBs:F1} GB/s");
            }
            else if (b is CudaBackend cuda)
            {
                // Not measured on the GPU: the datasheet figures the CUDA issue sets its targets against.
                peakGflops = H100Bf16Tflops * 1e3;
                readGBs = H100BandwidthGBs;
                Console.WriteLine($"  device: {cuda.DeviceDescription}");
                Console.WriteLine($"  reference (H100 SXM datasheet, not measured): {H100Bf16Tflops} TFLOP/s bf16 dense, {H100BandwidthGBs / 1e3:F1} TB/s");
            }
            int chunk = r.GetValue(prefillChunk);
            {
                // The largest run of this bench, planned before it starts (GPU only).
                int longest = r.GetValue(lengths)!.DefaultIfEmpty(1).Max();
                int planSteps = r.GetValue(decodeTokens), planBatch = Math.Max(1, r.GetValue(batch));
                long planTokens = Math.Max(longest, Math.Max(r.GetValue(decodeContext), r.GetValue(batchContext)) + 2L * planSteps + 18);
                int planStep = Math.Max(chunk > 0 ? Math.Min(chunk, longest) : longest, Math.Max(r.GetValue(decodeContext), planBatch * r.GetValue(batchContext)));
                MemoryPlanning.Check(m, planBatch, planTokens, planStep, Console.Out);
            }
            // Prefill of a whole prompt, in chunks when asked (only the last chunk computes logits).
            void Prefill(SequenceState seq, int[] ids)
            {
                int step = chunk > 0 ? chunk : ids.Length;
                bool progress = ids.Length >= 1 << 20 && step < ids.Length;   // minutes of work: show where it stands
                long started = Stopwatch.GetTimestamp();
                for (int at = 0; at < ids.Length; at += step)
                {
                    int n = Math.Min(step, ids.Length - at);
                    m.Forward([seq], [ids.AsMemory(at, n)], at + n == ids.Length ? LogitsSelection.LastPerSequence : LogitsSelection.None);
                    if (progress) Console.Error.Write($"\r  prefill {at + n}/{ids.Length} tokens, {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
                }
                if (progress) Console.Error.WriteLine();
            }
            var profiler = new StepProfiler(b);
            m.Profiler = profiler;
            var rng = new Random(1);

            Console.WriteLine();
            Console.WriteLine($"{"prefill",8} {"time ms",9} {"tok/s",9} {"GFLOP/s",8} {"of peak",8} | {"lightning ms",12} {"softmax ms",10} {"MoE ms",8} {"proj ms",8}");
            var lightningMs = new List<(int Len, double Ms, double SoftMs)>();
            foreach (int len in r.GetValue(lengths)!)
            {
                // Timed without the profiler (it synchronises at every phase); the best of the repeats
                // (the first also pays one-time costs: kernel compilation, workspace growth). Then one
                // profiled run for the split by phase.
                double best = double.MaxValue;
                var ids = Enumerable.Range(0, len).Select(_ => rng.Next(c.VocabSize)).ToArray();
                m.Profiler = null;
                for (int rep = 0; rep < Math.Max(1, r.GetValue(repeats)); rep++)
                {
                    using var seq = m.CreateSequence(len);
                    long start = Stopwatch.GetTimestamp();
                    Prefill(seq, ids);
                    best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
                profiler.Reset();
                if (!r.GetValue(noPhases))
                {
                    m.Profiler = profiler;
                    using (var seq = m.CreateSequence(len)) Prefill(seq, ids);
                    m.Profiler = null;
                }
                double[] phases = Enum.GetValues<StepPhase>().Select(p => profiler.Seconds(p)).ToArray();
                double flops = ModelCost.PrefillFlops(c, len);
                double gflops = flops / best / 1e9;
                string frac = peakGflops > 0 ? $"{gflops / peakGflops:P0}" : "-";
                string split = r.GetValue(noPhases) ? $"{"-",12} {"-",10} {"-",8} {"-",8}"
                    : $"{phases[(int)StepPhase.LightningCore] * 1e3,12:F1} {phases[(int)StepPhase.SoftmaxCore] * 1e3,10:F1} {phases[(int)StepPhase.MixtureOfExperts] * 1e3,8:F1} {phases[(int)StepPhase.Projections] * 1e3,8:F1}";
                Console.WriteLine($"{len,8} {best * 1e3,9:F1} {len / best,9:F0} {gflops,8:F1} {frac,8} | {split}");
                lightningMs.Add((len, phases[(int)StepPhase.LightningCore] * 1e3, phases[(int)StepPhase.SoftmaxCore] * 1e3));
            }
            for (int i = 1; i < lightningMs.Count; i++)
            {
                var (l0, ms0, s0) = lightningMs[i - 1];
                var (l1, ms1, s1) = lightningMs[i];
                Console.WriteLine($"  {l0} -> {l1} tokens ({(double)l1 / l0:F1}x): lightning core time x{ms1 / ms0:F2}, softmax core time x{s1 / s0:F2}");
            }

            int ctx = r.GetValue(decodeContext), steps = r.GetValue(decodeTokens);
            // Greedy decode: on a backend that chooses tokens on the device, the pipelined path (ids stay on the device,
            // the next step's host code runs during the current one); otherwise, or with --greedy-on-host, the logits
            // path (download, argmax on the host: a SIMD IndexOfMax, one pass).
            bool onDevice = m.HasDeviceGreedy && !r.GetValue(hostGreedy);
            string path = onDevice ? "device greedy (token ids chosen on the device, pipelined steps)" : "host logits (download, argmax on the host)";
            if (steps > 0)
            {
                // Warm-up steps let tiered JIT compilation settle before the timed loop (the first few steps run
                // tier-0 code and measured ~40% slower); with step graphs they also hold the eager first step and
                // the capture.
                int warmup = Math.Clamp(steps / 2, 1, 16);
                using var seq = m.CreateSequence(ctx + warmup + steps + steps / 4 + 2);
                var prompt = Enumerable.Range(0, ctx).Select(_ => rng.Next(c.VocabSize)).ToArray();
                var timed = TimeDecode(m, b, [seq], [prompt], warmup, steps, onDevice);
                double perToken = timed.SecondsPerStep;
                double bytes = ModelCost.DecodeWeightBytes(c, weightBytes);
                Console.WriteLine();
                Console.WriteLine($"decode at context {ctx}: {perToken * 1e3:F2} ms/token ({1 / perToken:F1} tokens/s); active weights {bytes / 1e6:F1} MB/token -> {bytes / perToken / 1e9:F1} GB/s" +
                    (readGBs > 0 ? $" = {bytes / perToken / 1e9 / readGBs:P0} of {(b.Name == "cpu" ? "measured" : "reference")} bandwidth; {perToken / (bytes / (readGBs * 1e9)):F2}x the time to read the active weights once" : ""));
                Console.WriteLine($"  path: {path}");
                timed.Print();
                int[] next = timed.Next;
                PrintDecodePhases(profiler, m, () => next = ProfiledStep(m, [seq], next, onDevice), Math.Max(1, steps / 4));
            }

            int B = r.GetValue(batch), bctx = r.GetValue(batchContext);
            if (B > 0 && steps > 0)
            {
                // B sequences prefilled together, then one forward step per token over all of them; the next
                // token of each is its greedy choice (on the device, or the argmax of its logits row on the host,
                // part of the step time).
                var seqs = Enumerable.Range(0, B).Select(_ => m.CreateSequence(bctx + steps + steps / 4 + 4)).ToArray();
                try
                {
                    var prompts = seqs.Select(_ => Enumerable.Range(0, bctx).Select(_ => rng.Next(c.VocabSize)).ToArray()).ToArray();
                    var timed = TimeDecode(m, b, seqs, prompts, 1, steps, onDevice);
                    double perStep = timed.SecondsPerStep;
                    Console.WriteLine($"decode, batch {B} at context {bctx}: {perStep * 1e3:F2} ms/step, {B / perStep:F0} tokens/s");
                    Console.WriteLine($"  path: {path}");
                    timed.Print();
                    int[] next = timed.Next;
                    PrintDecodePhases(profiler, m, () => next = ProfiledStep(m, seqs, next, onDevice), Math.Max(1, steps / 4));
                }
                finally
                {
                    foreach (var s in seqs) s.Dispose();
                }
            }
            return 0;
        }));
        return cmd;
    }

    private static StepGraphCounters? GraphCounters(IComputeBackend b) => b is IStepGraphs g ? g.StepGraphCounters : null;

    /// <summary>A timed greedy decode: its mean step time, the tokens its last step chose, and what <see cref="Print"/> reports
    /// (the graph counters of the timed steps and the step split).</summary>
    private sealed record TimedDecode(double SecondsPerStep, int[] Next, Action Print);

    /// <summary>Prefills every sequence with its prompt, runs <paramref name="warmup"/> untimed greedy steps, then times
    /// <paramref name="steps"/> of them: pipelined with the choice on the device (<paramref name="onDevice"/>), else
    /// the logits downloaded and the argmax taken on the host.</summary>
    private static TimedDecode TimeDecode(MiniMaxModel m, IComputeBackend b, SequenceState[] seqs, int[][] prompts, int warmup, int steps, bool onDevice)
    {
        var prompt = prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray();
        int[] next = onDevice ? m.ForwardGreedy(seqs, prompt) : HostArgMax(m, m.Forward(seqs, prompt, LogitsSelection.LastPerSequence));
        if (onDevice)
        {
            // One step more than the decode takes, so the last timed step launches its successor as every other one
            // does; that step runs out when the pipeline is disposed, after the clock.
            using var pipeline = m.StartGreedyDecode(seqs, next, warmup + steps + 1);
            for (int i = 0; i < warmup; i++) next = pipeline.Next()!;
            var graphsBefore = GraphCounters(b);
            var split = new StepSplit(b, steps);
            int heldBefore = pipeline.HeldLaunches;
            var aheadBefore = pipeline.AheadTime;
            var waitBefore = pipeline.WaitTime;
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < steps; i++) next = pipeline.Next()!;
            double perStep = Stopwatch.GetElapsedTime(start).TotalSeconds / steps;
            int held = pipeline.HeldLaunches - heldBefore;
            double aheadMs = (pipeline.AheadTime - aheadBefore).TotalMilliseconds / steps, waitMs = (pipeline.WaitTime - waitBefore).TotalMilliseconds / steps;
            return new TimedDecode(perStep, next, () =>
            {
                PrintGraphSteps(b, graphsBefore, steps);
                if (b is IStepGraphs) Console.WriteLine($"  pipeline: {held} of {steps} timed steps launched from host code run during the previous step; " +
                    $"host ahead {aheadMs:F3} ms/step (overlapped with the GPU), waiting for ids {waitMs:F3} ms/step");
                split.PrintPipelined(perStep, aheadMs);
            });
        }
        else
        {
            for (int i = 0; i < warmup; i++) next = HostArgMax(m, m.Forward(seqs, Single(next), LogitsSelection.LastPerSequence));
            var graphsBefore = GraphCounters(b);
            var split = new StepSplit(b, steps);
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < steps; i++)
            {
                long stepStart = Stopwatch.GetTimestamp();
                float[] logits = m.Forward(seqs, Single(next), LogitsSelection.LastPerSequence);
                split.Step(stepStart);
                next = HostArgMax(m, logits);
            }
            double perStep = Stopwatch.GetElapsedTime(start).TotalSeconds / steps;
            return new TimedDecode(perStep, next, () =>
            {
                PrintGraphSteps(b, graphsBefore, steps);
                split.Print(perStep);
            });
        }
    }

    /// <summary>One decode step with the profiler attached (runs eagerly), choosing as the timed steps did.</summary>
    private static int[] ProfiledStep(MiniMaxModel m, SequenceState[] seqs, int[] next, bool onDevice) =>
        onDevice ? m.ForwardGreedy(seqs, Single(next)) : HostArgMax(m, m.Forward(seqs, Single(next), LogitsSelection.LastPerSequence));

    private static ReadOnlyMemory<int>[] Single(int[] tokens) => tokens.Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray();

    /// <summary>The host's greedy choice of each logits row (SIMD IndexOfMax).</summary>
    private static int[] HostArgMax(MiniMaxModel m, float[] logits)
    {
        int vocab = m.Config.VocabSize;
        var next = new int[logits.Length / vocab];
        for (int i = 0; i < next.Length; i++) next[i] = TensorPrimitives.IndexOfMax(logits.AsSpan(i * vocab, vocab));
        return next;
    }

    /// <summary>How the timed decode steps ran on a backend with step graphs (MINIMAXSHARP_CUDA_GRAPHS=0 turns them off).</summary>
    private static void PrintGraphSteps(IComputeBackend b, StepGraphCounters? before, int steps)
    {
        if (b is not IStepGraphs g || before is not { } start) return;
        var d = g.StepGraphCounters.Since(start);
        Console.WriteLine(g.StepGraphsEnabled
            ? $"  graph steps ({steps} timed): {d}"
            : "  graph steps: off (MINIMAXSHARP_CUDA_GRAPHS=0), every step eager");
    }

    /// <summary>
    /// Where a timed decode step's time goes when it runs as a CUDA graph: the host's share (from the step's start
    /// to the graph launch: validation, the replay's bookkeeping and argument staging) and the GPU's (events
    /// around the argument copy and the graph launch, read once at the end, so no step waits for them). The
    /// rest of a step is waiting for the GPU, the logits download and the argmax.
    /// </summary>
    private sealed class StepSplit
    {
        private readonly CudaBackend? _cuda;
        private long _hostTicks;
        private int _launched;

        public StepSplit(IComputeBackend b, int steps)
        {
            _cuda = b as CudaBackend;
            _cuda?.StartGraphTiming(steps);
        }

        /// <summary>After a step's Forward: counts the host's share when the step launched a graph.</summary>
        public void Step(long stepStart)
        {
            if (_cuda is null) return;
            long launch = _cuda.LastGraphLaunchTimestamp;
            if (launch <= stepStart) return;   // ran eagerly
            _hostTicks += launch - stepStart;
            _launched++;
        }

        /// <summary>The split of pipelined steps: the host's share (the next step's host code) overlaps the GPU, so what
        /// the wall time adds to the GPU's is waiting for the ids, the launch and the gaps between graphs.</summary>
        public void PrintPipelined(double secondsPerStep, double aheadMs)
        {
            if (_cuda is null) return;
            var (timed, gpuMs) = _cuda.StopGraphTiming();
            if (timed == 0)
            {
                Console.WriteLine("  step split: no step ran as a graph");
                return;
            }
            Console.WriteLine($"  step split (pipelined, GPU timed on {timed} graph steps): host ahead {aheadMs:F3} ms/step (overlapped), " +
                $"GPU {gpuMs:F3} ms/step (events around the graph), wall {secondsPerStep * 1e3:F3} ms/step; " +
                $"wall - GPU = {secondsPerStep * 1e3 - gpuMs:F3} ms (id wait and launch, gaps between graphs)");
        }

        public void Print(double secondsPerStep)
        {
            if (_cuda is null) return;
            var (timed, gpuMs) = _cuda.StopGraphTiming();
            if (_launched == 0)
            {
                Console.WriteLine("  step split: no step ran as a graph");
                return;
            }
            double hostMs = Stopwatch.GetElapsedTime(0, _hostTicks).TotalMilliseconds / _launched;
            Console.WriteLine($"  step split ({_launched} graph steps, GPU timed on {timed}): host {hostMs:F3} ms/step (step start to graph launch), " +
                $"GPU {gpuMs:F3} ms/step (events around the graph), wall {secondsPerStep * 1e3:F3} ms/step; " +
                $"wall - host - GPU = {secondsPerStep * 1e3 - hostMs - gpuMs:F3} ms (download, argmax, gaps)");
        }
    }

    private const double H100Bf16Tflops = 753;
    private const double H100BandwidthGBs = 3000;

    /// <summary>A few more decode steps with the profiler attached: where a step's time goes (the profiler's
    /// synchronisations make these steps slower than the timed ones).</summary>
    private static void PrintDecodePhases(StepProfiler profiler, MiniMaxModel m, Action step, int steps)
    {
        m.Profiler = profiler;
        profiler.Reset();
        for (int i = 0; i < steps; i++) step();
        m.Profiler = null;
        Console.WriteLine("  profiled steps, ms/step: " + string.Join(", ",
            Enum.GetValues<StepPhase>().Select(p => $"{p} {profiler.Seconds(p) * 1e3 / steps:F3}")));
    }

    private static DType ParseDType(string s) => s.ToLowerInvariant() switch
    {
        "f32" or "float32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" => DType.F16,
        _ => throw new ArgumentException($"--weights '{s}': expected f32, bf16 or f16"),
    };

    private static MiniMaxModel LoadOrBuild(string? dir, string? preset, FileInfo? config, DType type, IComputeBackend b, out string what, out int weightBytes)
    {
        if (new object?[] { dir, preset, config }.Count(x => x is not null) > 1)
            throw new ArgumentException("give at most one of --model, --preset and --config");
        if (dir is not null)
        {
            var m = ModelLoader.Load(dir, b);
            what = $"model {Path.GetFullPath(dir)}";
            weightBytes = DTypeInfo.SizeOf(m.Weights.Layers[0].Router.DType);
            return m;
        }
        var c = config is not null ? ModelConfig.Load(config.FullName) : BuiltInConfigs.Get(preset ?? "cpu-1k");
        what = config is not null ? $"config {config.FullName} with random {type} weights" : $"built-in config '{preset ?? "cpu-1k"}' with random {type} weights";
        weightBytes = DTypeInfo.SizeOf(type);
        var weights = RandomWeights.Create(c, seed: 1, type);
        return new MiniMaxModel(c, WeightLoader.Load(new DictionaryTensorSource(weights), c, b), b);
    }
}
