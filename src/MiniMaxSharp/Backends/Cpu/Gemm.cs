using System.Runtime.Intrinsics;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>
/// Float32-accumulating matrix products of the CPU backend. All matrices are row-major with leading
/// dimensions in elements. Few rows of A (decode) take a streaming matrix-vector path; many rows take a
/// packed, cache-blocked GEMM. Work is split over <c>threads</c> only when the product is big enough to
/// repay the fork-join.
/// </summary>
public static unsafe class Gemm
{
    /// <summary>
    /// Few rows of A: MatMulNT computes dot products straight from the weight rows instead of packing them,
    /// which reads the weights exactly once. Measured on Zen 4 (single thread, 4096-wide weights) it matches or
    /// beats the packed GEMM up to 32 rows with 16-bit weights and up to about 16 rows with float32 weights,
    /// provided k is deep enough for the per-tile horizontal sums not to matter.
    /// </summary>
    internal static bool UseDotPathNT(int n, int k, DType bType)
        => n <= 4 || (k >= 256 && n <= (bType == DType.F32 ? 16 : 32));

    /// <summary>MatMulNN's streaming path rebuilds each row of C from all of B, so it only pays for very few rows.</summary>
    internal const int SmallRowLimitNN = 4;

    /// <summary>Below this many FLOPs per thread a product runs on the calling thread.</summary>
    internal const double MinFlopsPerThread = 1 << 20;

    /// <summary>The widest instruction set this machine accelerates.</summary>
    internal static readonly GemmIsa BestIsa =
        Vector512.IsHardwareAccelerated ? GemmIsa.Vector512 :
        Vector256.IsHardwareAccelerated ? GemmIsa.Vector256 : GemmIsa.Scalar;

    /// <summary>
    /// C[n, m] = (accumulate ? C : 0) + A[n, k] · B[m, k]^T, B stored with element type <paramref name="bType"/>
    /// (the y = x W^T of a Linear layer with W [out = m, in = k]). bf16/f16 weights are widened in the kernel.
    /// </summary>
    public static void MatMulNT(float* a, int lda, void* b, DType bType, int ldb, float* c, int ldc,
                                int n, int m, int k, bool accumulate, int threads)
        => MatMulNT(a, lda, b, bType, ldb, c, ldc, n, m, k, accumulate, threads, BestIsa);

    /// <summary>C[n, m] = (accumulate ? C : 0) + A[n, k] · B[k, m], B float32 (attention's P·V).</summary>
    public static void MatMulNN(float* a, int lda, float* b, int ldb, float* c, int ldc,
                                int n, int m, int k, bool accumulate, int threads)
        => MatMulNN(a, lda, b, ldb, c, ldc, n, m, k, accumulate, threads, BestIsa);

    internal static void MatMulNT(float* a, int lda, void* b, DType bType, int ldb, float* c, int ldc,
                                  int n, int m, int k, bool accumulate, int threads, GemmIsa isa)
    {
        Validate(a, lda, b, ldb, c, ldc, n, m, k, threads, bRowLength: k, nameof(MatMulNT));
        if (bType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentOutOfRangeException(nameof(bType), bType, "MatMulNT: unsupported weight element type.");
        if (TrivialShape(c, ldc, n, m, k, accumulate))
            return;
        var job = new Job(a, lda, b, ldb, c, ldc, n, m, k, accumulate, bType, transposedB: true);
        Dispatch(ref job, threads, isa);
    }

    internal static void MatMulNN(float* a, int lda, float* b, int ldb, float* c, int ldc,
                                  int n, int m, int k, bool accumulate, int threads, GemmIsa isa)
    {
        Validate(a, lda, b, ldb, c, ldc, n, m, k, threads, bRowLength: m, nameof(MatMulNN));
        if (TrivialShape(c, ldc, n, m, k, accumulate))
            return;
        var job = new Job(a, lda, b, ldb, c, ldc, n, m, k, accumulate, DType.F32, transposedB: false);
        Dispatch(ref job, threads, isa);
    }

    private static void Validate(float* a, int lda, void* b, int ldb, float* c, int ldc, int n, int m, int k,
                                 int threads, int bRowLength, string op)
    {
        if (n < 0 || m < 0 || k < 0)
            throw new ArgumentOutOfRangeException(nameof(n), $"{op}: negative shape n={n}, m={m}, k={k}.");
        if (threads < 1)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, $"{op}: threads must be at least 1.");
        if (n == 0 || m == 0)
            return;
        if (ldc < m)
            throw new ArgumentOutOfRangeException(nameof(ldc), ldc, $"{op}: ldc must be at least m={m}.");
        if (c == null)
            throw new ArgumentNullException(nameof(c), $"{op}: C is null.");
        if (k == 0)
            return;
        if (lda < k)
            throw new ArgumentOutOfRangeException(nameof(lda), lda, $"{op}: lda must be at least k={k}.");
        if (ldb < bRowLength)
            throw new ArgumentOutOfRangeException(nameof(ldb), ldb, $"{op}: ldb must be at least {bRowLength}.");
        if (a == null || b == null)
            throw new ArgumentNullException(a == null ? nameof(a) : nameof(b), $"{op}: input matrix is null.");
    }

    /// <summary>Handles empty outputs and k = 0 (C = accumulate ? C : 0); true when nothing is left to do.</summary>
    private static bool TrivialShape(float* c, int ldc, int n, int m, int k, bool accumulate)
    {
        if (n == 0 || m == 0)
            return true;
        if (k != 0)
            return false;
        if (!accumulate)
            for (int i = 0; i < n; i++)
                new Span<float>(c + (nint)i * ldc, m).Clear();
        return true;
    }

    /// <summary>One product, split into column (or row) ranges that threads take in turn.</summary>
    private struct Job
    {
        public float* A; public int Lda;
        public void* B; public int Ldb;
        public float* C; public int Ldc;
        public int N, M, K;
        public bool Accumulate;
        public DType BType;
        public bool TransposedB;
        public bool Small;
        // Task t covers columns [t·ColumnChunk, …) and rows [r·RowChunk, …), t = r·ColumnTasks + column task.
        public int ColumnChunk, ColumnTasks, RowChunk, RowTasks;

        public Job(float* a, int lda, void* b, int ldb, float* c, int ldc, int n, int m, int k, bool accumulate,
                   DType bType, bool transposedB)
        {
            A = a; Lda = lda; B = b; Ldb = ldb; C = c; Ldc = ldc; N = n; M = m; K = k;
            Accumulate = accumulate; BType = bType; TransposedB = transposedB;
            Small = transposedB ? UseDotPathNT(n, k, bType) : n <= SmallRowLimitNN;
        }
    }

    private static void Dispatch(ref Job job, int threads, GemmIsa isa)
    {
        switch (isa)
        {
            case GemmIsa.Vector512: Dispatch<Simd512, Vector512<float>>(ref job, threads); break;
            case GemmIsa.Vector256: Dispatch<Simd256, Vector256<float>>(ref job, threads); break;
            default: Dispatch<SimdScalar, float>(ref job, threads); break;
        }
    }

    private static void Dispatch<TOps, V>(ref Job job, int threads) where TOps : unmanaged, ISimdOps<V> where V : unmanaged
    {
        if (!job.TransposedB)
            Dispatch<TOps, V, F32Weights>(ref job, threads);
        else if (job.BType == DType.BF16)
            Dispatch<TOps, V, Bf16Weights>(ref job, threads);
        else if (job.BType == DType.F16)
            Dispatch<TOps, V, F16Weights>(ref job, threads);
        else
            Dispatch<TOps, V, F32Weights>(ref job, threads);
    }

    private static void Dispatch<TOps, V, TW>(ref Job job, int threads)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        double flops = 2.0 * job.N * job.M * job.K;
        int useThreads = (int)Math.Clamp(flops / MinFlopsPerThread, 1, Math.Min(threads, CpuParallel.MaxThreads));
        int columnAlign = job.Small ? 16 : 2 * TOps.Count;
        // The streaming path takes twice as many tasks as threads, so that a thread whose core is shared with
        // another process hands work to the others. The packed path repacks A in every task, so it takes one
        // task per thread.
        int tasks = useThreads == 1 ? 1 : job.Small ? 2 * useThreads : useThreads;
        job.ColumnTasks = job.RowTasks = 1;
        job.ColumnChunk = job.M;
        job.RowChunk = job.N;
        if (tasks > 1)
        {
            int columnBlocks = (job.M + columnAlign - 1) / columnAlign;
            int rowBlocks = (job.N + GemmPacked.MR - 1) / GemmPacked.MR;
            // Each task of the packed path packs its own A rows and B columns: splitting the columns repeats
            // the packing of A (n·k), splitting the rows repeats that of B (m·k). Repeat the smaller one.
            bool splitRows = !job.Small && (columnBlocks < tasks || (job.N > job.M && rowBlocks >= tasks));
            if (!splitRows)
            {
                job.ColumnChunk = (columnBlocks + tasks - 1) / tasks * columnAlign;
                job.ColumnTasks = (job.M + job.ColumnChunk - 1) / job.ColumnChunk;
            }
            else
            {
                job.RowChunk = (rowBlocks + tasks - 1) / tasks * GemmPacked.MR;
                job.RowTasks = (job.N + job.RowChunk - 1) / job.RowChunk;
            }
        }
        var body = new JobBody<TOps, V, TW>(job);
        int taskCount = job.ColumnTasks * job.RowTasks;
        if (taskCount == 1)
            body.Invoke(0);
        else
            CpuParallel.For(taskCount, useThreads, in body);
    }

    private readonly struct JobBody<TOps, V, TW>(Job job) : IParallelBody
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        public void Invoke(int task)
        {
            int j0 = task % job.ColumnTasks * job.ColumnChunk, j1 = Math.Min(job.M, j0 + job.ColumnChunk);
            int i0 = task / job.ColumnTasks * job.RowChunk, i1 = Math.Min(job.N, i0 + job.RowChunk);
            if (job.Small)
            {
                if (job.TransposedB)
                    GemmSmall.RunNT<TOps, V, TW>(job.A, job.Lda, job.B, job.Ldb, job.C, job.Ldc, job.N, j0, j1, job.K, job.Accumulate);
                else
                    GemmSmall.RunNN<TOps, V>(job.A, job.Lda, (float*)job.B, job.Ldb, job.C, job.Ldc, job.N, j0, j1, job.K, job.Accumulate);
            }
            else if (job.TransposedB)
            {
                GemmPacked.Run<TOps, V, GemmPacked.PackNT<TW>>(job.A, job.Lda, job.B, job.Ldb, job.C, job.Ldc,
                                                               i0, i1, j0, j1, job.K, job.Accumulate);
            }
            else
            {
                GemmPacked.Run<TOps, V, GemmPacked.PackNN>(job.A, job.Lda, job.B, job.Ldb, job.C, job.Ldc,
                                                          i0, i1, j0, j1, job.K, job.Accumulate);
            }
        }
    }
}
