using System.Runtime.CompilerServices;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>
/// Matrix products with few rows of A (decode, batched decode), where packing would cost as much as the
/// product itself: they are bound by reading B once, so the kernels stream B rows with wide loads,
/// widen bf16/f16 in registers and keep several independent accumulators in flight.
/// </summary>
internal static unsafe class GemmSmall
{
    /// <summary>
    /// NT: C[i, j] (+)= Σ_p A[i, p] · B[j, p] for i in [0, n), j in [j0, j1); B rows have element type TW.
    /// </summary>
    public static void RunNT<TOps, V, TW>(float* a, int lda, void* b, int ldb, float* c, int ldc,
                                          int n, int j0, int j1, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        if (n == 1)
        {
            int j = j0;
            for (; j + 4 <= j1; j += 4)
                Dot1x4<TOps, V, TW>(a, b, ldb, c, j, k, accumulate);
            for (; j < j1; j++)
                c[j] = (accumulate ? c[j] : 0f) + Dot<TOps, V, TW>(a, b, (nint)j * ldb, k);
            return;
        }

        float** rows = stackalloc float*[4];
        float* discard = stackalloc float[2 * 4];
        float** outs = stackalloc float*[4];
        for (int i0 = 0; i0 < n; i0 += 4)
        {
            int count = Math.Min(4, n - i0);
            int j = j0;
            for (; j + 2 <= j1; j += 2)
            {
                // Missing rows of a partial group repeat the last real row; their results go to a scratch slot.
                for (int r = 0; r < 4; r++)
                {
                    bool real = r < count;
                    rows[r] = a + (nint)(i0 + (real ? r : count - 1)) * lda;
                    outs[r] = real ? c + (nint)(i0 + r) * ldc + j : discard + 2 * r;
                }
                Dot4x2<TOps, V, TW>(rows, b, (nint)j * ldb, ldb, outs, k, accumulate);
            }
            for (; j < j1; j++)
                for (int r = 0; r < count; r++)
                {
                    float* cij = c + (nint)(i0 + r) * ldc + j;
                    *cij = (accumulate ? *cij : 0f) + Dot<TOps, V, TW>(a + (nint)(i0 + r) * lda, b, (nint)j * ldb, k);
                }
        }
    }

    /// <summary>Σ_p x[p] · B[offset + p], one accumulator chain; used for leftover rows only.</summary>
    private static float Dot<TOps, V, TW>(float* x, void* b, nint offset, int k)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        int w = TOps.Count;
        V acc = TOps.Zero;
        int p = 0;
        for (; p + w <= k; p += w)
            acc = TOps.MultiplyAdd(TOps.Load(x + p), TW.Load<TOps, V>(b, offset + p), acc);
        float sum = TOps.Sum(acc);
        for (; p < k; p++)
            sum += x[p] * TW.LoadScalar(b, offset + p);
        return sum;
    }

    /// <summary>Four weight rows j..j+3 against one activation row: c[j + r] (+)= x · B[j + r].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot1x4<TOps, V, TW>(float* x, void* b, int ldb, float* c, int j, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        int w = TOps.Count;
        nint o0 = (nint)j * ldb, o1 = o0 + ldb, o2 = o1 + ldb, o3 = o2 + ldb;
        V s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero;
        V t0 = TOps.Zero, t1 = TOps.Zero, t2 = TOps.Zero, t3 = TOps.Zero;
        int p = 0;
        // Two k-vectors per step: eight independent FMA chains hide the FMA latency.
        for (; p + 2 * w <= k; p += 2 * w)
        {
            V x0 = TOps.Load(x + p), x1 = TOps.Load(x + p + w);
            s0 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o0 + p), s0);
            s1 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o1 + p), s1);
            s2 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o2 + p), s2);
            s3 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o3 + p), s3);
            t0 = TOps.MultiplyAdd(x1, TW.Load<TOps, V>(b, o0 + p + w), t0);
            t1 = TOps.MultiplyAdd(x1, TW.Load<TOps, V>(b, o1 + p + w), t1);
            t2 = TOps.MultiplyAdd(x1, TW.Load<TOps, V>(b, o2 + p + w), t2);
            t3 = TOps.MultiplyAdd(x1, TW.Load<TOps, V>(b, o3 + p + w), t3);
        }
        for (; p + w <= k; p += w)
        {
            V x0 = TOps.Load(x + p);
            s0 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o0 + p), s0);
            s1 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o1 + p), s1);
            s2 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o2 + p), s2);
            s3 = TOps.MultiplyAdd(x0, TW.Load<TOps, V>(b, o3 + p), s3);
        }
        float r0 = TOps.Sum(TOps.Add(s0, t0)), r1 = TOps.Sum(TOps.Add(s1, t1));
        float r2 = TOps.Sum(TOps.Add(s2, t2)), r3 = TOps.Sum(TOps.Add(s3, t3));
        for (; p < k; p++)
        {
            float xp = x[p];
            r0 += xp * TW.LoadScalar(b, o0 + p);
            r1 += xp * TW.LoadScalar(b, o1 + p);
            r2 += xp * TW.LoadScalar(b, o2 + p);
            r3 += xp * TW.LoadScalar(b, o3 + p);
        }
        if (accumulate)
        {
            r0 += c[j]; r1 += c[j + 1]; r2 += c[j + 2]; r3 += c[j + 3];
        }
        c[j] = r0; c[j + 1] = r1; c[j + 2] = r2; c[j + 3] = r3;
    }

    /// <summary>Two weight rows against four activation rows: *outs[r] / outs[r][1] (+)= rows[r] · B rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x2<TOps, V, TW>(float** rows, void* b, nint offset, int ldb, float** outs, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TW : unmanaged, IWeightType
    {
        int w = TOps.Count;
        float* x0 = rows[0], x1 = rows[1], x2 = rows[2], x3 = rows[3];
        nint o0 = offset, o1 = offset + ldb;
        V a00 = TOps.Zero, a01 = TOps.Zero, a10 = TOps.Zero, a11 = TOps.Zero;
        V a20 = TOps.Zero, a21 = TOps.Zero, a30 = TOps.Zero, a31 = TOps.Zero;
        int p = 0;
        for (; p + w <= k; p += w)
        {
            V w0 = TW.Load<TOps, V>(b, o0 + p), w1 = TW.Load<TOps, V>(b, o1 + p);
            V v = TOps.Load(x0 + p); a00 = TOps.MultiplyAdd(v, w0, a00); a01 = TOps.MultiplyAdd(v, w1, a01);
            v = TOps.Load(x1 + p); a10 = TOps.MultiplyAdd(v, w0, a10); a11 = TOps.MultiplyAdd(v, w1, a11);
            v = TOps.Load(x2 + p); a20 = TOps.MultiplyAdd(v, w0, a20); a21 = TOps.MultiplyAdd(v, w1, a21);
            v = TOps.Load(x3 + p); a30 = TOps.MultiplyAdd(v, w0, a30); a31 = TOps.MultiplyAdd(v, w1, a31);
        }
        float* r = stackalloc float[8];
        r[0] = TOps.Sum(a00); r[1] = TOps.Sum(a01); r[2] = TOps.Sum(a10); r[3] = TOps.Sum(a11);
        r[4] = TOps.Sum(a20); r[5] = TOps.Sum(a21); r[6] = TOps.Sum(a30); r[7] = TOps.Sum(a31);
        for (; p < k; p++)
        {
            float b0 = TW.LoadScalar(b, o0 + p), b1 = TW.LoadScalar(b, o1 + p);
            r[0] += x0[p] * b0; r[1] += x0[p] * b1;
            r[2] += x1[p] * b0; r[3] += x1[p] * b1;
            r[4] += x2[p] * b0; r[5] += x2[p] * b1;
            r[6] += x3[p] * b0; r[7] += x3[p] * b1;
        }
        for (int i = 0; i < 4; i++)
        {
            float* o = outs[i];
            o[0] = (accumulate ? o[0] : 0f) + r[2 * i];
            o[1] = (accumulate ? o[1] : 0f) + r[2 * i + 1];
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
