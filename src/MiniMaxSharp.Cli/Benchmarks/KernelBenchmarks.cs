using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Benchmarks;

/// <summary>
/// Measures memory bandwidth, the fork-join overhead, GEMM throughput (against OpenBLAS when present) and
/// matrix-vector time against the memory bound. Every figure is the best of several repetitions.
/// </summary>
internal static unsafe class KernelBenchmarks
{
    private const long BandwidthBufferBytes = 1L << 29; // 512 MiB, far beyond any L3
    private const long ColdWeightBytes = 1L << 28;      // weight copies rotated so matrix-vector reads come from DRAM

    public static void Run(int threads, int? onlySize, TextWriter o)
    {
        o.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        o.WriteLine($"vectors: Vector512 accelerated={Vector512.IsHardwareAccelerated}, Vector256 accelerated={Vector256.IsHardwareAccelerated}");
        o.WriteLine($"threads: {threads}");
        o.WriteLine();

        var (readGBs, copyGBs) = MeasureBandwidth(threads);
        o.WriteLine($"(a) memory bandwidth, {threads} threads, {BandwidthBufferBytes >> 20} MiB buffer: read {readGBs:F1} GB/s, copy {copyGBs:F1} GB/s (read+write bytes)");
        o.WriteLine();

        foreach (int t in ThreadCounts(threads))
            o.WriteLine($"register-only FMA peak, {t} thread(s): {FmaPeakGflops(t):F1} GFLOP/s");
        o.WriteLine();

        ForkJoinOverhead(threads, o);
        o.WriteLine();

        var blas = OpenBlas.TryLoad();
        o.WriteLine(blas is null
            ? "(d) OpenBLAS: absent (libopenblas.so.0 could not be loaded)"
            : $"(d) OpenBLAS: {blas.LibraryName} loaded; cblas_sgemm on the same shapes with float32 weights");
        o.WriteLine();
        o.WriteLine("(b) MatMulNT GFLOP/s (C = A·W^T), best of repeats");
        o.WriteLine($"{"shape n x m x k",-22} {"weights",-7} {"thr",3} {"ours",8} {"OpenBLAS",9} {"ours/BLAS",9}");
        var shapes = new List<(int N, int M, int K)>();
        foreach (int s in new[] { 1024, 2048, 4096 })
            if (onlySize is null || onlySize == s)
                shapes.Add((s, s, s));
        if (onlySize is not null && !shapes.Contains((onlySize.Value, onlySize.Value, onlySize.Value)))
            shapes.Add((onlySize.Value, onlySize.Value, onlySize.Value));
        shapes.Add((512, 4096, 1024));
        foreach (var (n, m, k) in shapes)
            foreach (int t in ThreadCounts(threads))
            {
                var (f32, bf16, blasGflops) = GemmGflops(blas, n, m, k, t);
                string b = blasGflops is null ? "-" : $"{blasGflops:F1}";
                o.WriteLine($"{$"{n} x {m} x {k}",-22} {"F32",-7} {t,3} {f32,8:F1} {b,9} {(blasGflops is null ? "-" : $"{f32 / blasGflops:P0}"),9}");
                o.WriteLine($"{$"{n} x {m} x {k}",-22} {"BF16",-7} {t,3} {bf16,8:F1} {b,9} {(blasGflops is null ? "-" : $"{bf16 / blasGflops:P0}"),9}");
            }
        o.WriteLine();

        o.WriteLine($"(c) matrix-vector (n = 1), weights rotated over {ColdWeightBytes >> 20} MiB so they come from DRAM;");
        o.WriteLine("    'read once' = a plain vector sum over the same weight bytes with the same threads, run in turns with the product");
        o.WriteLine($"{"W rows x cols",-16} {"weights",-7} {"thr",3} {"time µs",9} {"GB/s",7} {"read once µs",12} {"read GB/s",9} {"time/read",9} {"of (a)",7}");
        foreach (var (m, k) in new[] { (4096, 4096), (16384, 4096) })
            foreach (DType w in new[] { DType.BF16, DType.F32 })
                foreach (int t in ThreadCounts(threads))
                {
                    var (seconds, readSeconds) = MatVecSeconds(1, m, k, w, t);
                    double bytes = (double)m * k * DTypeInfo.SizeOf(w);
                    double gbs = bytes / seconds / 1e9;
                    o.WriteLine($"{$"{m} x {k}",-16} {w,-7} {t,3} {seconds * 1e6,9:F0} {gbs,7:F1} {readSeconds * 1e6,12:F0} " +
                                $"{bytes / readSeconds / 1e9,9:F1} {seconds / readSeconds,8:F2}x {gbs / readGBs,7:P0}");
                }
        o.WriteLine();

        o.WriteLine("batched decode (n small), 4096 x 4096 BF16 weights from DRAM");
        o.WriteLine($"{"n",3} {"thr",3} {"time µs",9} {"weight GB/s",11} {"GFLOP/s",8}");
        foreach (int n in new[] { 1, 2, 4, 5, 8, 16, 32 })
        {
            double seconds = MatVecSeconds(n, 4096, 4096, DType.BF16, threads).Product;
            o.WriteLine($"{n,3} {threads,3} {seconds * 1e6,9:F0} {4096.0 * 4096 * 2 / seconds / 1e9,11:F1} {2.0 * n * 4096 * 4096 / seconds / 1e9,8:F1}");
        }
    }

    private static IEnumerable<int> ThreadCounts(int threads) => threads > 1 ? [1, threads] : [1];

    /// <summary>Best time of <paramref name="run"/> after one warm-up, repeated for about <paramref name="budget"/> seconds.</summary>
    private static double BestSeconds(Action<int> run, double budget = 1.0, int minReps = 3)
    {
        run(0);
        double best = double.MaxValue, total = 0;
        for (int rep = 1; rep <= minReps || (total < budget && rep < 10_000); rep++)
        {
            long start = Stopwatch.GetTimestamp();
            run(rep);
            double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Min(best, s);
            total += s;
        }
        return best;
    }

    private sealed class NativeBuffer : IDisposable
    {
        public readonly byte* Pointer;
        public readonly long Bytes;

        public NativeBuffer(long bytes)
        {
            Bytes = bytes;
            Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            // Fill with small finite values (and fault every page in) before timing.
            var rng = new Random(17);
            for (long i = 0; i + 4 <= bytes; i += 4)
                *(float*)(Pointer + i) = (float)(rng.NextDouble() - 0.5);
        }

        public void Dispose() => NativeMemory.AlignedFree(Pointer);
    }

    private static NativeBuffer Weights(long elements, DType type)
    {
        var buf = new NativeBuffer(elements * DTypeInfo.SizeOf(type));
        if (type == DType.BF16)
        {
            // Turn the random float bits into plausible bf16 values (upper halves of floats in [-0.5, 0.5)).
            var h = (ushort*)buf.Pointer;
            for (long i = 0; i < elements; i++)
                h[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)((i * 2654435761L % 1000) / 1000.0 - 0.5)) >> 16);
        }
        return buf;
    }

    internal static (double Read, double Copy) MeasureBandwidth(int threads)
    {
        using var src = new NativeBuffer(BandwidthBufferBytes);
        using var dst = new NativeBuffer(BandwidthBufferBytes);
        int chunks = 64;
        long chunkBytes = BandwidthBufferBytes / chunks;
        float* sums = stackalloc float[chunks];
        double read = BestSeconds(_ => CpuParallel.For(chunks, threads, new ReadChunk(src.Pointer, chunkBytes, sums)), 2.0);
        double copy = BestSeconds(_ => CpuParallel.For(chunks, threads, new CopyChunk(src.Pointer, dst.Pointer, chunkBytes)), 2.0);
        return (BandwidthBufferBytes / read / 1e9, 2.0 * BandwidthBufferBytes / copy / 1e9);
    }

    private readonly struct ReadChunk(byte* data, long chunkBytes, float* sums) : IParallelBody
    {
        public void Invoke(int index)
        {
            var p = (float*)(data + index * chunkBytes);
            long count = chunkBytes / sizeof(float);
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (long i = 0; i < count; i += 64)
            {
                s0 += Vector512.Load(p + i);
                s1 += Vector512.Load(p + i + 16);
                s2 += Vector512.Load(p + i + 32);
                s3 += Vector512.Load(p + i + 48);
            }
            sums[index] = Vector512.Sum(s0 + s1 + s2 + s3); // keeps the loads alive
        }
    }

    private readonly struct CopyChunk(byte* src, byte* dst, long chunkBytes) : IParallelBody
    {
        public void Invoke(int index)
            => Buffer.MemoryCopy(src + index * chunkBytes, dst + index * chunkBytes, chunkBytes, chunkBytes);
    }

    private readonly struct SpinBody(double microseconds) : IParallelBody
    {
        public void Invoke(int index)
        {
            long end = Stopwatch.GetTimestamp() + (long)(microseconds * Stopwatch.Frequency / 1e6);
            while (Stopwatch.GetTimestamp() < end) { }
        }
    }

    /// <summary>Twelve independent chains of 512-bit FMAs per thread, no memory traffic: the practical compute ceiling.</summary>
    private static double FmaPeakGflops(int threads)
    {
        const int iterations = 2_000_000;
        float* sink = stackalloc float[threads];
        var body = new FmaChains(iterations, sink);
        double s = BestSeconds(_ => CpuParallel.For(threads, threads, in body), 0.5);
        return threads * (double)iterations * 12 * Vector512<float>.Count * 2 / s / 1e9;
    }

    private readonly struct FmaChains(int iterations, float* sink) : IParallelBody
    {
        public void Invoke(int index)
        {
            var m = Vector512.Create(0.999f);
            var a = Vector512.Create(1e-3f);
            Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
            for (int i = 0; i < iterations; i++)
            {
                c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
                c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
                c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
                c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
                c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
                c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
            }
            sink[index] = Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
        }
    }

    private static void ForkJoinOverhead(int threads, TextWriter o)
    {
        o.WriteLine($"fork-join, {threads} tasks of 20 µs each on {threads} threads (ideal 20 µs), and of empty tasks:");
        var spin = new SpinBody(20);
        var empty = new SpinBody(0);
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        const int calls = 2000;
        double Time(Action call) => BestSeconds(_ => { for (int i = 0; i < calls; i++) call(); }, 0.5) / calls * 1e6;
        double poolSpin = Time(() => CpuParallel.For(threads, threads, in spin));
        double poolEmpty = Time(() => CpuParallel.For(threads, threads, in empty));
        double tplSpin = Time(() => Parallel.For(0, threads, options, i => spin.Invoke(i)));
        double tplEmpty = Time(() => Parallel.For(0, threads, options, i => empty.Invoke(i)));
        o.WriteLine($"  CpuParallel.For: {poolSpin,6:F1} µs per 20 µs job, {poolEmpty,5:F2} µs empty");
        o.WriteLine($"  Parallel.For   : {tplSpin,6:F1} µs per 20 µs job, {tplEmpty,5:F2} µs empty");
    }

    /// <summary>
    /// Ours with float32 and bf16 weights and OpenBLAS, run in turns for the same wall-clock window so that
    /// load from other processes hits all three alike; best time of each.
    /// </summary>
    internal static (double F32, double Bf16, double? Blas) GemmGflops(OpenBlas? blas, int n, int m, int k, int threads)
    {
        using var a = new NativeBuffer((long)n * k * 4);
        using var w32 = Weights((long)m * k, DType.F32);
        using var w16 = Weights((long)m * k, DType.BF16);
        using var c = new NativeBuffer((long)n * m * 4);
        blas?.SetThreads(threads);
        var runs = new List<Action>
        {
            () => Gemm.MatMulNT((float*)a.Pointer, k, w32.Pointer, DType.F32, k, (float*)c.Pointer, m, n, m, k, false, threads),
            () => Gemm.MatMulNT((float*)a.Pointer, k, w16.Pointer, DType.BF16, k, (float*)c.Pointer, m, n, m, k, false, threads),
        };
        if (blas is not null)
            runs.Add(() => blas.MatMulNT((float*)a.Pointer, (float*)w32.Pointer, (float*)c.Pointer, n, m, k));
        double flops = 2.0 * n * m * k;
        double budget = Math.Clamp(flops / 30e9, 1.5, 6.0); // seconds for all three together
        var best = new double[runs.Count];
        Array.Fill(best, double.MaxValue);
        foreach (var run in runs)
            run(); // warm-up: JIT, pack buffers, OpenBLAS threads
        double total = 0;
        for (int round = 0; round < 3 || total < budget; round++)
            for (int r = 0; r < runs.Count; r++)
            {
                long start = Stopwatch.GetTimestamp();
                runs[r]();
                double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
                best[r] = Math.Min(best[r], s);
                total += s;
            }
        return (flops / best[0] / 1e9, flops / best[1] / 1e9, blas is null ? null : flops / best[2] / 1e9);
    }

    /// <summary>
    /// Seconds per product of n activation rows with an m × k weight, and seconds to merely read those weight
    /// bytes, run in turns over weight copies that together exceed the last-level cache; best of each.
    /// </summary>
    private static (double Product, double Read) MatVecSeconds(int n, int m, int k, DType w, int threads)
    {
        long weightBytes = (long)m * k * DTypeInfo.SizeOf(w);
        int copies = (int)Math.Max(2, (ColdWeightBytes + weightBytes - 1) / weightBytes);
        using var b = Weights((long)m * k * copies, w);
        using var x = new NativeBuffer((long)n * k * 4);
        using var y = new NativeBuffer((long)n * m * 4);
        const int chunks = 64;
        float* sums = stackalloc float[chunks];
        double product = double.MaxValue, read = double.MaxValue, total = 0;
        for (int rep = 0; rep < 4 * copies || total < 2.0; rep++)
        {
            byte* weights = b.Pointer + rep % copies * weightBytes;
            long start = Stopwatch.GetTimestamp();
            if (rep % 2 == 0)
            {
                Gemm.MatMulNT((float*)x.Pointer, k, weights, w, k, (float*)y.Pointer, m, n, m, k, false, threads);
                product = Math.Min(product, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            else
            {
                CpuParallel.For(chunks, threads, new ReadChunk(weights, weightBytes / chunks, sums));
                read = Math.Min(read, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            total += Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return (product, read);
    }
}
