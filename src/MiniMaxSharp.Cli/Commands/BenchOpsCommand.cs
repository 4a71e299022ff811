using System.CommandLine;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax bench-ops --backend cuda</c>: GPU time of the attention ops at model sizes (median of
/// several runs, device events). Lightning prefill is reported against its memory floor (q, k, v read
/// and o written once, bf16, at the given bandwidth); softmax prefill as TFLOP/s (causal: 2·2·T²/2·d per head).
/// The backward rows (float32, as in training) report tokens per second.
/// </summary>
internal static class BenchOpsCommand
{
    public static Command Create()
    {
        var backend = new Option<string>("--backend") { Description = "Backend (cuda)", DefaultValueFactory = _ => "cuda" };
        var repeat = new Option<int>("--repeat") { Description = "Timed runs per case (median reported)", DefaultValueFactory = _ => 5 };
        var bandwidth = new Option<double>("--bandwidth") { Description = "Memory bandwidth of the floor, TB/s", DefaultValueFactory = _ => 3.0 };
        var only = new Option<string>("--only") { Description = "lightning, softmax, backward or all", DefaultValueFactory = _ => "all" };
        var scale = new Option<int>("--scale-down") { Description = "Divide every token count by this (quick runs)", DefaultValueFactory = _ => 1 };
        var decayLayer = new Option<int>("--decay-layer")
        {
            Description = "Lightning rows: the decays of this layer of an 80-layer MiniMax model (0, the default: the fastest decays; "
                + "deeper layers decay more slowly, so the chunk-state pass reads more of each chunk)",
            DefaultValueFactory = _ => 0,
        };
        var cmd = new Command("bench-ops", "Time the attention ops of a GPU backend at model sizes") { backend, repeat, bandwidth, only, scale, decayLayer };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            using var b = BackendFactory.Create(r.GetValue(backend)!, 0);
            if (b is not CudaBackend cuda) throw new ArgumentException("bench-ops times GPU backends: use --backend cuda");
            Console.WriteLine($"device: {cuda.DeviceDescription}");
            string which = r.GetValue(only)!;
            int n = Math.Max(1, r.GetValue(repeat)), div = Math.Max(1, r.GetValue(scale)), layer = r.GetValue(decayLayer);
            if (layer < 0 || layer > 78) throw new ArgumentException($"--decay-layer {layer}: use a layer index of an 80-layer model, 0 to 78");
            var rows = new List<string>();
            if (which is "all" or "lightning")
                // Each shape with the default kernel and with the one before it (A/B in one call).
                foreach (var (B, H, T) in new[] { (8, 32, 16384), (1, 16, 131072), (1, 64, 65536) })
                {
                    foreach (var kernel in cuda.LightningPrefillKernels)
                        rows.Add(Lightning(cuda, kernel, B, H, Math.Max(1, T / div), n, r.GetValue(bandwidth), cuda.LightningCutoffBits, layer));
                    // The default kernel once more with pass 0 over the whole prefix (no decay cutoff).
                    rows.Add(Lightning(cuda, cuda.LightningWgmmaAvailable ? LightningPrefillKernel.Hopper : LightningPrefillKernel.Pipelined, B, H, Math.Max(1, T / div), n,
                        r.GetValue(bandwidth), 0, layer));
                }
            if (which is "all" or "softmax")
            {
                // The model's prefill path (cuDNN's fused attention where it is there), then the built-in flash kernel.
                Console.WriteLine($"softmax prefill: {cuda.CudnnAttentionStatus}");
                bool cudnn = cuda.CudnnAttentionEnabled;
                foreach (bool useCudnn in cuda.CudnnAttentionAvailable ? new[] { true, false } : [false])
                {
                    cuda.CudnnAttentionEnabled = useCudnn;
                    foreach (var (B, H, KV, T) in new[] { (1, 64, 8, 4096), (1, 64, 8, 16384) })
                        rows.Add(Softmax(cuda, B, H, KV, Math.Max(1, T / div), n, useCudnn ? "cuDNN fused attention" : "flash kernel"));
                }
                cuda.CudnnAttentionEnabled = cudnn;
                Console.WriteLine($"softmax prefill: {cuda.CudnnAttentionStatus}");
                var decodeKernel = cuda.GqaDecodeKernel;
                foreach (var kernel in new[] { GqaDecodeKernel.Lanes, GqaDecodeKernel.Keys })
                {
                    cuda.GqaDecodeKernel = kernel;
                    foreach (var (B, context) in new[] { (1, 4096), (1, 65536), (8, 32768) })
                        rows.Add(Decode(cuda, B, 64, 8, Math.Max(2, context / div), n, r.GetValue(bandwidth), kernel.ToString().ToLowerInvariant()));
                }
                cuda.GqaDecodeKernel = decodeKernel;
            }
            if (which is "all" or "backward")
                foreach (var (B, H, KV, T) in new[] { (8, 16, 4, 512), (1, 16, 4, 4096) })
                {
                    rows.Add(LightningBackward(cuda, B, H, Math.Max(1, T / div), n));
                    rows.Add(SoftmaxBackward(cuda, B, H, KV, Math.Max(1, T / div), n));
                }
            Console.WriteLine("| op | shape | ms (median) | figure |");
            Console.WriteLine("| --- | --- | --- | --- |");
            foreach (var row in rows) Console.WriteLine(row);
            return 0;
        }));
        return cmd;
    }

    private static float Median(CudaBackend b, int runs, Action work)
    {
        work();   // warm-up: module load, compilation, allocations
        b.Synchronize();
        var times = Enumerable.Range(0, runs).Select(_ => b.TimeMilliseconds(work)).OrderBy(t => t).ToArray();
        return times[times.Length / 2];
    }

    private static string Lightning(CudaBackend b, LightningPrefillKernel kernel, int batch, int heads, int tokens, int runs, double tbPerSecond,
        int cutoffBits, int decayLayer)
    {
        const int d = 128;
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        int T = layout.TotalTokens;
        using var qkv = b.Allocate(DType.BF16, T, 3 * heads * d);
        using var o = b.Allocate(DType.BF16, T, heads * d);
        b.FillRandom(qkv, 17, 2f);
        var states = Enumerable.Range(0, batch).Select(_ => b.Allocate(DType.F32, heads, d * d)).ToArray();
        float[] slopes = LightningDecay.Slopes(heads, decayLayer, 80);
        var (before, beforeCutoff) = (b.LightningKernel, b.LightningCutoffBits);
        try
        {
            b.LightningKernel = kernel;
            b.LightningCutoffBits = cutoffBits;
            float ms = Median(b, runs, () => b.LightningAttention(qkv, layout, states, slopes, d, 256, o));
            double bytes = 4.0 * T * heads * d * 2;   // q, k, v read + o written, bf16
            double floorMs = bytes / (tbPerSecond * 1e12) * 1e3;
            string name = CudaBackend.LightningKernelFunction(kernel) + (cutoffBits == 0 ? ", no cutoff" : $", cutoff 2^-{cutoffBits}");
            string line = $"| lightning prefill ({name}) | B={batch} H={heads} T={tokens} d={d}{(decayLayer == 0 ? "" : $", decays of layer {decayLayer}/80")} | {ms:F2} | {ms / floorMs:F2}x the memory floor ({floorMs:F2} ms at {tbPerSecond} TB/s) |";
            Console.Error.WriteLine(line);
            return line;
        }
        finally
        {
            (b.LightningKernel, b.LightningCutoffBits) = (before, beforeCutoff);
            foreach (var s in states) s.Dispose();
        }
    }

    /// <summary>One decode token per sequence over a full cache; the floor is reading every key and value once.</summary>
    private static string Decode(CudaBackend b, int batch, int heads, int kvHeads, int context, int runs, double tbPerSecond, string kernel)
    {
        const int d = 128;
        var shape = new AttentionShape(heads, kvHeads, d);
        var layout = BatchLayout.Create(Enumerable.Repeat(1, batch).ToArray(), Enumerable.Repeat(context - 1, batch).ToArray());
        using var q = b.Allocate(DType.BF16, batch, shape.Width);
        using var k = b.Allocate(DType.BF16, batch, shape.KvWidth);
        using var v = b.Allocate(DType.BF16, batch, shape.KvWidth);
        using var o = b.Allocate(DType.BF16, batch, shape.Width);
        b.FillRandom(q, 4, 1f);
        b.FillRandom(k, 5, 1f);
        b.FillRandom(v, 6, 1f);
        var caches = Enumerable.Range(0, batch).Select(i =>
        {
            var c = new KvCache(b.Allocate(DType.BF16, context, shape.KvWidth), b.Allocate(DType.BF16, context, shape.KvWidth));
            b.FillRandom(c.Keys, 10u + (uint)i, 1f);
            b.FillRandom(c.Values, 100u + (uint)i, 1f);
            return c;
        }).ToArray();
        try
        {
            float ms = Median(b, runs, () => b.SoftmaxAttention(q, k, v, layout, caches, shape, o));
            double bytes = 2.0 * batch * context * shape.KvWidth * 2;
            double floorMs = bytes / (tbPerSecond * 1e12) * 1e3;
            string line = $"| softmax decode ({kernel} kernel) | B={batch} H={heads}/KV={kvHeads} context={context} d={d} | {ms:F3} | {ms / floorMs:F2}x the memory floor ({floorMs:F3} ms) |";
            Console.Error.WriteLine(line);
            return line;
        }
        finally
        {
            foreach (var c in caches) c.Dispose();
        }
    }

    private static string LightningBackward(CudaBackend b, int batch, int heads, int tokens, int runs)
    {
        const int d = 128;
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        int T = layout.TotalTokens;
        using var qkv = b.Allocate(DType.F32, T, 3 * heads * d);
        using var dOut = b.Allocate(DType.F32, T, heads * d);
        using var dQkv = b.Allocate(DType.F32, T, 3 * heads * d);
        b.FillRandom(qkv, 21, 2f);
        b.FillRandom(dOut, 22, 1f);
        float[] slopes = LightningDecay.Slopes(heads, 0, 80);
        float ms = Median(b, runs, () => b.LightningAttentionBackward(qkv, layout, slopes, d, 256, dOut, dQkv));
        string line = $"| lightning backward (float32) | B={batch} H={heads} T={tokens} d={d} | {ms:F2} | {T / (ms * 1e-3) / 1e6:F2} M tokens/s |";
        Console.Error.WriteLine(line);
        return line;
    }

    private static string SoftmaxBackward(CudaBackend b, int batch, int heads, int kvHeads, int tokens, int runs)
    {
        const int d = 128;
        var shape = new AttentionShape(heads, kvHeads, d);
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        int T = layout.TotalTokens;
        DeviceTensor Make(int width, uint seed)
        {
            var t = b.Allocate(DType.F32, T, width);
            b.FillRandom(t, seed, 1f);
            return t;
        }
        using var q = Make(shape.Width, 31);
        using var k = Make(shape.KvWidth, 32);
        using var v = Make(shape.KvWidth, 33);
        using var dOut = Make(shape.Width, 34);
        using var dq = Make(shape.Width, 35);
        using var dk = Make(shape.KvWidth, 36);
        using var dv = Make(shape.KvWidth, 37);
        float ms = Median(b, runs, () => b.SoftmaxAttentionBackward(q, k, v, layout, shape, dOut, dq, dk, dv));
        string line = $"| softmax backward (float32, causal) | B={batch} H={heads}/KV={kvHeads} T={tokens} d={d} | {ms:F2} | {T / (ms * 1e-3) / 1e6:F2} M tokens/s |";
        Console.Error.WriteLine(line);
        return line;
    }

    private static string Softmax(CudaBackend b, int batch, int heads, int kvHeads, int tokens, int runs, string kernel)
    {
        const int d = 128;
        var shape = new AttentionShape(heads, kvHeads, d);
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        int T = layout.TotalTokens;
        using var q = b.Allocate(DType.BF16, T, shape.Width);
        using var k = b.Allocate(DType.BF16, T, shape.KvWidth);
        using var v = b.Allocate(DType.BF16, T, shape.KvWidth);
        using var o = b.Allocate(DType.BF16, T, shape.Width);
        b.FillRandom(q, 1, 1f);
        b.FillRandom(k, 2, 1f);
        b.FillRandom(v, 3, 1f);
        var caches = Enumerable.Range(0, batch).Select(_ => new KvCache(b.Allocate(DType.BF16, tokens, shape.KvWidth), b.Allocate(DType.BF16, tokens, shape.KvWidth))).ToArray();
        try
        {
            void Attend() => b.SoftmaxAttention(q, k, v, layout, caches, shape, o);
            float ms = Median(b, runs, Attend);
            // Also ten calls between one pair of events: the op's host work (argument upload, plan lookup, the
            // launch) then overlaps the previous call's kernels, as in a model's layer sequence.
            const int backToBack = 10;
            float streamed = Median(b, runs, () => { for (int i = 0; i < backToBack; i++) Attend(); }) / backToBack;
            double flops = 4.0 * batch * heads * d * ((double)tokens * (tokens + 1) / 2);
            string line = $"| softmax prefill (causal), {kernel} | B={batch} H={heads}/KV={kvHeads} T={tokens} d={d} | {ms:F2} | {flops / (ms * 1e-3) / 1e12:F1} TFLOP/s; {backToBack} back to back: {streamed:F2} ms each, {flops / (streamed * 1e-3) / 1e12:F1} TFLOP/s |";
            Console.Error.WriteLine(line);
            return line;
        }
        finally
        {
            foreach (var c in caches) c.Dispose();
        }
    }
}
