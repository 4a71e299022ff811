using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

// INTERIM naive kernels (replaced by the tuned kernels of the gemm branch at merge).
public static unsafe class Gemm
{
    public static void MatMulNT(float* a, int lda, void* b, DType bType, int ldb, float* c, int ldc, int n, int m, int k, bool accumulate, int threads)
    {
        var row = new float[k];
        for (int j = 0; j < m; j++)
        {
            byte* bj = (byte*)b + (long)j * ldb * DTypeInfo.SizeOf(bType);
            NumberConversions.Widen(bj, bType, row);
            for (int i = 0; i < n; i++)
            {
                float s = 0;
                float* ai = a + (long)i * lda;
                for (int p = 0; p < k; p++) s += ai[p] * row[p];
                float* cij = c + (long)i * ldc + j;
                *cij = accumulate ? *cij + s : s;
            }
        }
    }

    public static void MatMulNN(float* a, int lda, float* b, int ldb, float* c, int ldc, int n, int m, int k, bool accumulate, int threads)
    {
        for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
        {
            float s = 0;
            for (int p = 0; p < k; p++) s += a[(long)i * lda + p] * b[(long)p * ldb + j];
            float* cij = c + (long)i * ldc + j;
            *cij = accumulate ? *cij + s : s;
        }
    }
}
