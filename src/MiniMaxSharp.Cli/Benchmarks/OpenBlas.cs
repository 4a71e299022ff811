using System.Runtime.InteropServices;

namespace MiniMaxSharp.Cli.Benchmarks;

/// <summary>Optional OpenBLAS, loaded at run time only to compare against; absent on most machines.</summary>
internal sealed unsafe class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private readonly delegate* unmanaged<int, void> setNumThreads;

    public string LibraryName { get; }

    private OpenBlas(string name, nint sgemm, nint setNumThreads)
    {
        LibraryName = name;
        this.sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
        this.setNumThreads = (delegate* unmanaged<int, void>)setNumThreads;
    }

    public static OpenBlas? TryLoad()
    {
        foreach (string name in new[] { "libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libopenblas.dll" })
        {
            if (!NativeLibrary.TryLoad(name, out nint handle))
                continue;
            if (NativeLibrary.TryGetExport(handle, "cblas_sgemm", out nint sgemm) &&
                NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out nint setThreads))
                return new OpenBlas(name, sgemm, setThreads);
            NativeLibrary.Free(handle);
        }
        return null;
    }

    public void SetThreads(int threads) => setNumThreads(threads);

    /// <summary>C[n, m] = A[n, k] · B[m, k]^T (the same product as Gemm.MatMulNT with float32 weights).</summary>
    public void MatMulNT(float* a, float* b, float* c, int n, int m, int k)
        => sgemm(RowMajor, NoTrans, Trans, n, m, k, 1f, a, k, b, k, 0f, c, m);
}
