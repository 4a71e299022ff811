using System.Runtime.InteropServices;

namespace MiniMaxSharp.Backends.Cuda.Interop;

/// <summary>cuBLAS (libcublas): only the calls the backend uses.</summary>
internal static unsafe partial class Cublas
{
    private const string Lib = CudaLibrarySearch.CublasImport;

    public const int OpN = 0;
    public const int OpT = 1;
    public const int DataF32 = 0;     // CUDA_R_32F
    public const int DataBF16 = 14;   // CUDA_R_16BF
    public const int ComputeF32 = 68; // CUBLAS_COMPUTE_32F
    public const int GemmDefault = -1;

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")] public static partial int cublasCreate(out nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")] public static partial int cublasDestroy(nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")] public static partial int cublasSetStream(nint handle, nint stream);
    [LibraryImport(Lib, EntryPoint = "cublasGetVersion_v2")] public static partial int cublasGetVersion(nint handle, out int version);
    [LibraryImport(Lib)] public static partial int cublasSetWorkspace_v2(nint handle, ulong workspace, nuint bytes);
    [LibraryImport(Lib)] public static partial int cublasGemmEx(nint handle, int transA, int transB, int m, int n, int k,
        float* alpha, ulong a, int aType, int lda, ulong b, int bType, int ldb, float* beta, ulong c, int cType, int ldc,
        int computeType, int algo);
    [LibraryImport(Lib)] public static partial int cublasGemmBatchedEx(nint handle, int transA, int transB, int m, int n, int k,
        float* alpha, ulong aArray, int aType, int lda, ulong bArray, int bType, int ldb, float* beta, ulong cArray, int cType, int ldc,
        int batchCount, int computeType, int algo);
    [LibraryImport(Lib)] public static partial int cublasGemmStridedBatchedEx(nint handle, int transA, int transB, int m, int n, int k,
        float* alpha, ulong a, int aType, int lda, long strideA, ulong b, int bType, int ldb, long strideB, float* beta,
        ulong c, int cType, int ldc, long strideC, int batchCount, int computeType, int algo);
    [LibraryImport(Lib)] public static partial byte* cublasGetStatusName(int status);

    public static void Check(int status, string call)
    {
        if (status == 0) return;
        string name = $"cublasStatus {status}";
        try
        {
            name = Marshal.PtrToStringUTF8((nint)cublasGetStatusName(status)) ?? name;
        }
        catch (EntryPointNotFoundException)
        {
        }
        throw new CudaException($"{call} failed: {name}");
    }
}
