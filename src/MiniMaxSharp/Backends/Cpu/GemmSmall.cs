using System.Runtime.CompilerServices;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>
/// Matrix products with few rows of A (decode, batched decode), where packing B would cost as much as the
/// product itself. One token is bound by reading the weights once, so the kernels stream B rows with wide
/// loads, widen bf16/f16 in registers and keep sixteen independent accumulators in flight; with a few dozen
/// rows the same tiles become compute-bound and still beat packing, since B is widened only once.
/// </summary>
internal static unsafe class GemmSmall
{
    /// <summary>
    /// NT: C[i, j] (+)= Σ_p A[i, p] · B[j, p] for i in [0, n), j in [j0, j1); B rows have element type TW.
    /// Tiles of up to 4 rows of A × 4 rows of B are computed as dot products straight from the weight rows
    /// (no packing): each weight vector is widened once and used for every row of A in the tile.
    /// </summary>
    public static void RunNT<TOps, V, TW>(float* a, int lda, void* b, int ldb, float* c, int ldc,
                                          int n, int j0, int j1, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        if (n == 1)
        {
            // One token. Short rows (k ≤ 2048, e.g. a 1024-wide model) are read one after another: consecutive
            // rows are one sequential stream the hardware prefetcher follows, where eight interleaved 2 KB streams
            // reached half the bandwidth (k = 1024 bf16, 2 threads: 34–38 GB/s against 19–20 GB/s).
            // Long rows: eight weight rows at a time; eight concurrent read streams keep more cache misses in
            // flight than four (measured +20% weight bandwidth on Zen 4 at k = 4096).
            int j = j0;
            if (k > 2048)
                for (; j + 8 <= j1; j += 8)
                    Dot1x8<TOps, V, TW>(a, b, ldb, j, c, k, accumulate);
            for (; j < j1; j++)
                c[j] = (accumulate ? c[j] : 0f) + DotRow<TOps, V, TW>(a, b, (nint)j * ldb, k);
            return;
        }
        // Weight rows outermost: each 4-row strip of B is read from memory once and reused from L1/L2 for
        // every group of A rows.
        for (int j = j0; j < j1; j += 4)
        {
            int cols = Math.Min(4, j1 - j);
            for (int i = 0; i < n; i += 4)
            {
                float* x = a + (nint)i * lda;
                float* cRows = c + (nint)i * ldc;
                switch (Math.Min(4, n - i))
                {
                    case 1: DotTile<TOps, V, TW, Rows1>(x, lda, b, ldb, j, cols, cRows, ldc, k, accumulate); break;
                    case 2: DotTile<TOps, V, TW, Rows2>(x, lda, b, ldb, j, cols, cRows, ldc, k, accumulate); break;
                    case 3: DotTile<TOps, V, TW, Rows3>(x, lda, b, ldb, j, cols, cRows, ldc, k, accumulate); break;
                    default: DotTile<TOps, V, TW, Rows4>(x, lda, b, ldb, j, cols, cRows, ldc, k, accumulate); break;
                }
            }
        }
    }

    /// <summary>c[j + q] (+)= x · B[j + q] for q &lt; 8: one row of A against eight weight rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot1x8<TOps, V, TW>(float* x, void* b, int ldb, int j, float* c, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        int w = TOps.Count;
        nint o0 = (nint)j * ldb;
        V s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero, s4 = TOps.Zero, s5 = TOps.Zero, s6 = TOps.Zero, s7 = TOps.Zero;
        int p = 0;
        for (; p + w <= k; p += w)
        {
            V v = TOps.Load(x + p);
            nint o = o0 + p;
            s0 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s0); o += ldb;
            s1 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s1); o += ldb;
            s2 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s2); o += ldb;
            s3 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s3); o += ldb;
            s4 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s4); o += ldb;
            s5 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s5); o += ldb;
            s6 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s6); o += ldb;
            s7 = TOps.MultiplyAdd(v, TW.Load<TOps, V>(b, o), s7);
        }
        float* sums = stackalloc float[8];
        sums[0] = TOps.Sum(s0); sums[1] = TOps.Sum(s1); sums[2] = TOps.Sum(s2); sums[3] = TOps.Sum(s3);
        sums[4] = TOps.Sum(s4); sums[5] = TOps.Sum(s5); sums[6] = TOps.Sum(s6); sums[7] = TOps.Sum(s7);
        nint* offsets = stackalloc nint[8];
        for (int q = 0; q < 8; q++)
            offsets[q] = o0 + q * (nint)ldb;
        FinishRow<TW>(x, b, offsets, p, k, sums, c + j, 8, accumulate);
    }

    /// <summary>x · B[offset ..], four accumulator chains; the leftover weight rows of a one-token product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotRow<TOps, V, TW>(float* x, void* b, nint offset, int k)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        int w = TOps.Count;
        V s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero;
        int p = 0;
        for (; p + 4 * w <= k; p += 4 * w)
        {
            s0 = TOps.MultiplyAdd(TOps.Load(x + p), TW.Load<TOps, V>(b, offset + p), s0);
            s1 = TOps.MultiplyAdd(TOps.Load(x + p + w), TW.Load<TOps, V>(b, offset + p + w), s1);
            s2 = TOps.MultiplyAdd(TOps.Load(x + p + 2 * w), TW.Load<TOps, V>(b, offset + p + 2 * w), s2);
            s3 = TOps.MultiplyAdd(TOps.Load(x + p + 3 * w), TW.Load<TOps, V>(b, offset + p + 3 * w), s3);
        }
        for (; p + w <= k; p += w)
            s0 = TOps.MultiplyAdd(TOps.Load(x + p), TW.Load<TOps, V>(b, offset + p), s0);
        float sum = TOps.Sum(TOps.Add(TOps.Add(s0, s1), TOps.Add(s2, s3)));
        for (; p < k; p++)
            sum += x[p] * TW.LoadScalar(b, offset + p);
        return sum;
    }

    /// <summary>Rows of A handled together by <see cref="DotTile"/>; a type so the JIT drops the unused ones.</summary>
    internal interface IRowCount { static abstract int Value { get; } }
    internal struct Rows1 : IRowCount { public static int Value => 1; }
    internal struct Rows2 : IRowCount { public static int Value => 2; }
    internal struct Rows3 : IRowCount { public static int Value => 3; }
    internal struct Rows4 : IRowCount { public static int Value => 4; }

    /// <summary>
    /// c[r, j + q] (+)= x[r] · B[j + q] for r &lt; TR, q &lt; cols (≤ 4). Missing weight rows of an edge tile
    /// repeat the last real one and are not stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile<TOps, V, TW, TR>(float* x, int lda, void* b, int ldb, int j, int cols, float* c, int ldc,
                                                 int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType where TR : IRowCount
    {
        int w = TOps.Count;
        int rows = TR.Value;
        nint o0 = (nint)j * ldb;
        nint o1 = o0 + (cols > 1 ? ldb : 0);
        nint o2 = o0 + (nint)Math.Min(2, cols - 1) * ldb;
        nint o3 = o0 + (nint)Math.Min(3, cols - 1) * ldb;
        float* x0 = x, x1 = x + (rows > 1 ? lda : 0), x2 = x + (rows > 2 ? 2 * lda : 0), x3 = x + (rows > 3 ? 3 * lda : 0);
        V s00 = TOps.Zero, s01 = TOps.Zero, s02 = TOps.Zero, s03 = TOps.Zero;
        V s10 = TOps.Zero, s11 = TOps.Zero, s12 = TOps.Zero, s13 = TOps.Zero;
        V s20 = TOps.Zero, s21 = TOps.Zero, s22 = TOps.Zero, s23 = TOps.Zero;
        V s30 = TOps.Zero, s31 = TOps.Zero, s32 = TOps.Zero, s33 = TOps.Zero;
        int p = 0;
        for (; p + w <= k; p += w)
        {
            V w0 = TW.Load<TOps, V>(b, o0 + p), w1 = TW.Load<TOps, V>(b, o1 + p);
            V w2 = TW.Load<TOps, V>(b, o2 + p), w3 = TW.Load<TOps, V>(b, o3 + p);
            V v = TOps.Load(x0 + p);
            s00 = TOps.MultiplyAdd(v, w0, s00); s01 = TOps.MultiplyAdd(v, w1, s01);
            s02 = TOps.MultiplyAdd(v, w2, s02); s03 = TOps.MultiplyAdd(v, w3, s03);
            if (rows > 1)
            {
                v = TOps.Load(x1 + p);
                s10 = TOps.MultiplyAdd(v, w0, s10); s11 = TOps.MultiplyAdd(v, w1, s11);
                s12 = TOps.MultiplyAdd(v, w2, s12); s13 = TOps.MultiplyAdd(v, w3, s13);
            }
            if (rows > 2)
            {
                v = TOps.Load(x2 + p);
                s20 = TOps.MultiplyAdd(v, w0, s20); s21 = TOps.MultiplyAdd(v, w1, s21);
                s22 = TOps.MultiplyAdd(v, w2, s22); s23 = TOps.MultiplyAdd(v, w3, s23);
            }
            if (rows > 3)
            {
                v = TOps.Load(x3 + p);
                s30 = TOps.MultiplyAdd(v, w0, s30); s31 = TOps.MultiplyAdd(v, w1, s31);
                s32 = TOps.MultiplyAdd(v, w2, s32); s33 = TOps.MultiplyAdd(v, w3, s33);
            }
        }
        // Reduce in registers before any call: vector values live across a call would be spilled inside the loop.
        float* sums = stackalloc float[16];
        sums[0] = TOps.Sum(s00); sums[1] = TOps.Sum(s01); sums[2] = TOps.Sum(s02); sums[3] = TOps.Sum(s03);
        if (rows > 1) { sums[4] = TOps.Sum(s10); sums[5] = TOps.Sum(s11); sums[6] = TOps.Sum(s12); sums[7] = TOps.Sum(s13); }
        if (rows > 2) { sums[8] = TOps.Sum(s20); sums[9] = TOps.Sum(s21); sums[10] = TOps.Sum(s22); sums[11] = TOps.Sum(s23); }
        if (rows > 3) { sums[12] = TOps.Sum(s30); sums[13] = TOps.Sum(s31); sums[14] = TOps.Sum(s32); sums[15] = TOps.Sum(s33); }
        nint* offsets = stackalloc nint[4] { o0, o1, o2, o3 };
        for (int r = 0; r < rows; r++)
            FinishRow<TW>(x + (nint)r * lda, b, offsets, p, k, sums + 4 * r, c + (nint)r * ldc + j, cols, accumulate);
    }

    /// <summary>Adds the k tail [p, k) to one row of A's sums against weight rows offsets[0..cols) and stores them.</summary>
    private static void FinishRow<TW>(float* x, void* b, nint* offsets, int p, int k, float* sums, float* o, int cols,
                                      bool accumulate)
        where TW : unmanaged, IWeightType
    {
        for (int q = 0; q < cols; q++)
        {
            float s = sums[q];
            for (int t = p; t < k; t++)
                s += x[t] * TW.LoadScalar(b, offsets[q] + t);
            o[q] = (accumulate ? o[q] : 0f) + s;
        }
    }

    /// <summary>
    /// NN: C[i, j] (+)= Σ_p A[i, p] · B[p, j] for i in [0, n), j in [j0, j1), B float32 [k, m].
    /// Each row of C is built in registers, a strip of four vectors at a time, streaming B rows.
    /// </summary>
    public static void RunNN<TOps, V>(float* a, int lda, float* b, int ldb, float* c, int ldc,
                                      int n, int j0, int j1, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged
    {
        int w = TOps.Count;
        for (int i = 0; i < n; i++)
        {
            float* x = a + (nint)i * lda;
            float* cRow = c + (nint)i * ldc;
            int j = j0;
            for (; j + 4 * w <= j1; j += 4 * w)
            {
                V s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero;
                float* bp = b + j;
                for (int p = 0; p < k; p++, bp += ldb)
                {
                    V xp = TOps.Broadcast(x[p]);
                    s0 = TOps.MultiplyAdd(xp, TOps.Load(bp), s0);
                    s1 = TOps.MultiplyAdd(xp, TOps.Load(bp + w), s1);
                    s2 = TOps.MultiplyAdd(xp, TOps.Load(bp + 2 * w), s2);
                    s3 = TOps.MultiplyAdd(xp, TOps.Load(bp + 3 * w), s3);
                }
                float* cj = cRow + j;
                if (accumulate)
                {
                    s0 = TOps.Add(s0, TOps.Load(cj)); s1 = TOps.Add(s1, TOps.Load(cj + w));
                    s2 = TOps.Add(s2, TOps.Load(cj + 2 * w)); s3 = TOps.Add(s3, TOps.Load(cj + 3 * w));
                }
                TOps.Store(cj, s0); TOps.Store(cj + w, s1); TOps.Store(cj + 2 * w, s2); TOps.Store(cj + 3 * w, s3);
            }
            for (; j + w <= j1; j += w)
            {
                V s = TOps.Zero;
                float* bp = b + j;
                for (int p = 0; p < k; p++, bp += ldb)
                    s = TOps.MultiplyAdd(TOps.Broadcast(x[p]), TOps.Load(bp), s);
                if (accumulate)
                    s = TOps.Add(s, TOps.Load(cRow + j));
                TOps.Store(cRow + j, s);
            }
            for (; j < j1; j++)
            {
                float s = 0f;
                float* bp = b + j;
                for (int p = 0; p < k; p++, bp += ldb)
                    s += x[p] * *bp;
                cRow[j] = (accumulate ? cRow[j] : 0f) + s;
            }
        }
    }
}
