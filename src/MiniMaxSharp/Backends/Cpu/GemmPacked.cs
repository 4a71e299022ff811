using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>
/// Cache-blocked, packed matrix product for many rows (prefill). C[i, j] (+)= Σ_p A[i, p] · B'[p, j].
/// Loop nest (outer to inner): columns of C in NC blocks → k in KC blocks (B block packed to float32,
/// KC × NC, sized for L2) → rows in MC blocks (A block packed) → MR-row micro-panels of A (stay in L1)
/// → NR-column micro-panels of B (streamed from L2) → register-tiled micro-kernel of MR × NR accumulators.
/// B is widened from bf16/f16 while packing, so one micro-kernel serves every weight type.
/// </summary>
internal static unsafe class GemmPacked
{
    /// <summary>Rows of the register tile (broadcast A values).</summary>
    public const int MR = 8;
    /// <summary>Depth of one packed block: an MR × KC micro-panel of A is 8 KiB and stays in L1.</summary>
    public const int KC = 256;
    /// <summary>Rows of C per packed A block.</summary>
    public const int MC = 256;
    /// <summary>Columns of C per packed B block: KC × NC float32 = 1 MiB, half of a Zen 4 L2.</summary>
    public const int NC = 1024;
    /// <summary>Widest register tile (two Vector512) the pack buffers are sized for.</summary>
    private const int MaxNR = 32;

    /// <summary>Per-thread pack buffers, freed when their thread ends.</summary>
    private sealed class PackBuffers
    {
        public readonly float* A = (float*)NativeMemory.AlignedAlloc((nuint)(MC * KC * sizeof(float)), 64);
        public readonly float* B = (float*)NativeMemory.AlignedAlloc((nuint)(KC * NC * sizeof(float)), 64);
        ~PackBuffers()
        {
            NativeMemory.AlignedFree(A);
            NativeMemory.AlignedFree(B);
        }
    }

    [ThreadStatic] private static PackBuffers? buffers;

    /// <summary>How the right operand is read into a packed, float32, k-major panel.</summary>
    internal interface IPackB
    {
        /// <summary>dst[p * width + c] = B'(p0 + p, col0 + c) for c &lt; cols, 0 for cols ≤ c &lt; width.</summary>
        static abstract void Pack(void* b, int ldb, int col0, int cols, int p0, int kc, float* dst, int width, bool vectorPack);
    }

    /// <summary>B stored [m, k] (weights, row = output column of C) with element type TW.</summary>
    internal struct PackNT<TW> : IPackB where TW : unmanaged, IWeightType
    {
        public static void Pack(void* b, int ldb, int col0, int cols, int p0, int kc, float* dst, int width, bool vectorPack)
            => PackTransposed<TW>((byte*)b + ((nint)col0 * ldb + p0) * TW.ElementSize, ldb, cols, kc, dst, width, vectorPack);
    }

    /// <summary>B stored [k, m] as float32.</summary>
    internal struct PackNN : IPackB
    {
        public static void Pack(void* b, int ldb, int col0, int cols, int p0, int kc, float* dst, int width, bool vectorPack)
        {
            float* src = (float*)b + (nint)p0 * ldb + col0;
            for (int p = 0; p < kc; p++, src += ldb, dst += width)
            {
                int c = 0;
                if (vectorPack && cols == width)
                {
                    for (; c + 8 <= width; c += 8)
                        Vector256.Store(Vector256.Load(src + c), dst + c);
                }
                for (; c < cols; c++)
                    dst[c] = src[c];
                for (; c < width; c++)
                    dst[c] = 0f;
            }
        }
    }

    /// <summary>
    /// dst[p * width + r] = widen(src[r * ld + p]) for r &lt; rows (zeros for rows ≤ r &lt; width), p &lt; kc:
    /// a row-major block turned k-major. Full groups of 8 rows go through 8 × 8 AVX transposes.
    /// </summary>
    internal static void PackTransposed<TW>(byte* src, int ld, int rows, int kc, float* dst, int width, bool vectorPack)
        where TW : unmanaged, IWeightType
    {
        nint rowBytes = (nint)ld * TW.ElementSize;
        int r0 = 0;
        if (vectorPack && Avx.IsSupported)
        {
            for (; r0 + 8 <= rows; r0 += 8)
            {
                byte* s = src + r0 * rowBytes;
                int p = 0;
                for (; p + 8 <= kc; p += 8)
                {
                    Vector256<float> x0 = TW.Load<Simd256, Vector256<float>>(s, p);
                    Vector256<float> x1 = TW.Load<Simd256, Vector256<float>>(s + rowBytes, p);
                    Vector256<float> x2 = TW.Load<Simd256, Vector256<float>>(s + 2 * rowBytes, p);
                    Vector256<float> x3 = TW.Load<Simd256, Vector256<float>>(s + 3 * rowBytes, p);
                    Vector256<float> x4 = TW.Load<Simd256, Vector256<float>>(s + 4 * rowBytes, p);
                    Vector256<float> x5 = TW.Load<Simd256, Vector256<float>>(s + 5 * rowBytes, p);
                    Vector256<float> x6 = TW.Load<Simd256, Vector256<float>>(s + 6 * rowBytes, p);
                    Vector256<float> x7 = TW.Load<Simd256, Vector256<float>>(s + 7 * rowBytes, p);
                    Transpose8x8(ref x0, ref x1, ref x2, ref x3, ref x4, ref x5, ref x6, ref x7);
                    float* d = dst + (nint)p * width + r0;
                    x0.Store(d);
                    x1.Store(d + width);
                    x2.Store(d + 2 * width);
                    x3.Store(d + 3 * width);
                    x4.Store(d + 4 * width);
                    x5.Store(d + 5 * width);
                    x6.Store(d + 6 * width);
                    x7.Store(d + 7 * width);
                }
                for (; p < kc; p++)
                    for (int r = r0; r < r0 + 8; r++)
                        dst[(nint)p * width + r] = TW.LoadScalar(src + r * rowBytes, p);
            }
        }
        for (int r = r0; r < width; r++)
        {
            float* d = dst + r;
            if (r < rows)
            {
                byte* s = src + r * rowBytes;
                for (int p = 0; p < kc; p++)
                    d[(nint)p * width] = TW.LoadScalar(s, p);
            }
            else
            {
                for (int p = 0; p < kc; p++)
                    d[(nint)p * width] = 0f;
            }
        }
    }

    /// <summary>In-register transpose: row i of the input becomes column i of the output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
                                     ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        // Interleave pairs of rows, then pairs of pairs (within 128-bit lanes), then swap 128-bit halves.
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1);
        Vector256<float> t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5);
        Vector256<float> t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE);
        Vector256<float> u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE);
        Vector256<float> u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        r0 = Avx.Permute2x128(u0, u4, 0x20);
        r1 = Avx.Permute2x128(u1, u5, 0x20);
        r2 = Avx.Permute2x128(u2, u6, 0x20);
        r3 = Avx.Permute2x128(u3, u7, 0x20);
        r4 = Avx.Permute2x128(u0, u4, 0x31);
        r5 = Avx.Permute2x128(u1, u5, 0x31);
        r6 = Avx.Permute2x128(u2, u6, 0x31);
        r7 = Avx.Permute2x128(u3, u7, 0x31);
    }

    /// <summary>
    /// C rows [i0, i1) × columns [j0, j1) (+)= A · B'. With <paramref name="accumulate"/> false C is overwritten.
    /// Requires k &gt; 0.
    /// </summary>
    public static void Run<TOps, V, TPackB>(float* a, int lda, void* b, int ldb, float* c, int ldc,
                                            int i0, int i1, int j0, int j1, int k, bool accumulate)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged where TPackB : unmanaged, IPackB
    {
        int nr = 2 * TOps.Count;
        bool vectorPack = TOps.Count > 1;
        PackBuffers buf = buffers ??= new PackBuffers();
        float* scratch = stackalloc float[MR * MaxNR];
        int ncMax = NC / nr * nr;

        for (int jc = j0; jc < j1; jc += ncMax)
        {
            int nc = Math.Min(ncMax, j1 - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                bool addToC = accumulate || pc > 0;
                for (int jr = 0; jr < nc; jr += nr)
                    TPackB.Pack(b, ldb, jc + jr, Math.Min(nr, nc - jr), pc, kc, buf.B + (nint)jr * kc, nr, vectorPack);

                for (int ic = i0; ic < i1; ic += MC)
                {
                    int mc = Math.Min(MC, i1 - ic);
                    for (int ir = 0; ir < mc; ir += MR)
                        PackTransposed<F32Weights>((byte*)(a + (nint)(ic + ir) * lda + pc), lda, Math.Min(MR, mc - ir), kc,
                                                   buf.A + (nint)ir * kc, MR, vectorPack);

                    for (int ir = 0; ir < mc; ir += MR)
                    {
                        int rows = Math.Min(MR, mc - ir);
                        float* ap = buf.A + (nint)ir * kc;
                        float* cRow = c + (nint)(ic + ir) * ldc + jc;
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            int cols = Math.Min(nr, nc - jr);
                            float* bp = buf.B + (nint)jr * kc;
                            if (rows == MR && cols == nr)
                            {
                                MicroKernel<TOps, V>(kc, ap, bp, cRow + jr, ldc, addToC);
                            }
                            else
                            {
                                MicroKernel<TOps, V>(kc, ap, bp, scratch, nr, false);
                                StoreEdge(scratch, nr, cRow + jr, ldc, rows, cols, addToC);
                            }
                        }
                    }
                }
            }
        }
    }

    private static void StoreEdge(float* tile, int ldt, float* c, int ldc, int rows, int cols, bool addToC)
    {
        for (int r = 0; r < rows; r++)
        {
            float* t = tile + r * ldt;
            float* cr = c + (nint)r * ldc;
            if (addToC)
                for (int j = 0; j < cols; j++) cr[j] += t[j];
            else
                for (int j = 0; j < cols; j++) cr[j] = t[j];
        }
    }

    /// <summary>
    /// The register tile: C[0..MR, 0..2·Count] (+)= Σ_p ap[p·MR + r] · bp[p·2·Count + j].
    /// 16 accumulators plus two B vectors and one broadcast fit the 32 zmm registers of AVX-512.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel<TOps, V>(int kc, float* ap, float* bp, float* c, nint ldc, bool addToC)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged
    {
        int w = TOps.Count;
        if (Sse.IsSupported)
        {
            // The C tile is touched only after the k loop; fetching it now hides its cache misses behind the FMAs.
            for (int r = 0; r < MR; r++)
            {
                Sse.Prefetch0(c + r * ldc);
                Sse.Prefetch0(c + r * ldc + 2 * w - 1);
            }
        }
        V c00 = TOps.Zero, c01 = TOps.Zero, c10 = TOps.Zero, c11 = TOps.Zero;
        V c20 = TOps.Zero, c21 = TOps.Zero, c30 = TOps.Zero, c31 = TOps.Zero;
        V c40 = TOps.Zero, c41 = TOps.Zero, c50 = TOps.Zero, c51 = TOps.Zero;
        V c60 = TOps.Zero, c61 = TOps.Zero, c70 = TOps.Zero, c71 = TOps.Zero;
        for (int p = 0; p < kc; p++)
        {
            V b0 = TOps.Load(bp), b1 = TOps.Load(bp + w);
            V x = TOps.Broadcast(ap[0]); c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(ap[1]); c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(ap[2]); c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(ap[3]); c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
            x = TOps.Broadcast(ap[4]); c40 = TOps.MultiplyAdd(x, b0, c40); c41 = TOps.MultiplyAdd(x, b1, c41);
            x = TOps.Broadcast(ap[5]); c50 = TOps.MultiplyAdd(x, b0, c50); c51 = TOps.MultiplyAdd(x, b1, c51);
            x = TOps.Broadcast(ap[6]); c60 = TOps.MultiplyAdd(x, b0, c60); c61 = TOps.MultiplyAdd(x, b1, c61);
            x = TOps.Broadcast(ap[7]); c70 = TOps.MultiplyAdd(x, b0, c70); c71 = TOps.MultiplyAdd(x, b1, c71);
            ap += MR;
            bp += 2 * w;
        }
        StoreRow<TOps, V>(c, w, addToC, c00, c01); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c10, c11); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c20, c21); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c30, c31); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c40, c41); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c50, c51); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c60, c61); c += ldc;
        StoreRow<TOps, V>(c, w, addToC, c70, c71);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TOps, V>(float* c, int w, bool addToC, V v0, V v1)
        where TOps : unmanaged, ISimdOps<V> where V : unmanaged
    {
        if (addToC)
        {
            v0 = TOps.Add(v0, TOps.Load(c));
            v1 = TOps.Add(v1, TOps.Load(c + w));
        }
        TOps.Store(c, v0);
        TOps.Store(c + w, v1);
    }
}
