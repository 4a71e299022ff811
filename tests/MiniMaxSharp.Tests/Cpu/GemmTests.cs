using System.Runtime.Intrinsics;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Cpu;

public unsafe class GemmTests
{
    private static readonly int[] Rows = [1, 2, 3, 7, 16, 33, 100, 257];
    private static readonly int[] Sizes = [1, 15, 17, 64, 100, 1000, 1023];

    /// <summary>Every (n, m, k) of the grid whose product is cheap enough for a quick run, plus shapes that
    /// cross every cache block boundary (KC, MC, NC) and the thread split.</summary>
    private static IEnumerable<(int N, int M, int K)> Shapes(long maxWork)
    {
        foreach (int n in Rows)
            foreach (int m in Sizes)
                foreach (int k in Sizes)
                    if ((long)n * m * k <= maxWork)
                        yield return (n, m, k);
        yield return (257, 100, 300);   // two MC blocks, two KC blocks
        yield return (9, 1100, 20);     // more than NC columns
        yield return (40, 2100, 5);     // more than NC columns per thread
        yield return (100, 64, 1023);
    }

    // Instruction sets travel as names: the enum is internal and xunit test methods are public.
    public static TheoryData<string, DType> IsaAndType()
    {
        var data = new TheoryData<string, DType>();
        foreach (string isa in Enum.GetNames<GemmIsa>())
            foreach (DType t in Enum.GetValues<DType>().Where(t => t != DType.I32))   // every weight type (I32 holds token ids)
                data.Add(isa, t);
        return data;
    }

    public static TheoryData<string> Isas() => new(Enum.GetNames<GemmIsa>());

    [Theory]
    [MemberData(nameof(IsaAndType))]
    public void MatMulNT_MatchesFloat64Reference(string isaName, DType bType)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        var rng = new Random(1234 + (int)isa * 10 + (int)bType);
        int caseIndex = 0;
        foreach (var (n, m, k) in Shapes(isa == GemmIsa.Scalar ? 300_000 : 1_000_000))
        {
            var p = Layout.Random(rng, n, m, k, caseIndex++, transposedB: true);
            float[] a = RandomFloats(rng, n * p.Lda);
            float[] bValues = RandomFloats(rng, m * p.Ldb);
            byte[] bBytes = Encode(bValues, bType); // bValues now hold the exactly representable weights
            float[] c = RandomFloats(rng, n * p.Ldc);
            float[] cBefore = (float[])c.Clone();
            double[] expected = Reference(a, p.Lda, bValues, p.Ldb, transposedB: true, c, p.Ldc, n, m, k, p.Accumulate);

            fixed (float* pa = a) fixed (byte* pb = bBytes) fixed (float* pc = c)
                Gemm.MatMulNT(pa, p.Lda, pb, bType, p.Ldb, pc, p.Ldc, n, m, k, p.Accumulate, p.Threads, isa);

            AssertClose(expected, c, p.Ldc, n, m, $"NT {isa} {bType} n={n} m={m} k={k} {p}");
            AssertPaddingUnchanged(cBefore, c, p.Ldc, n, m);
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void MatMulNN_MatchesFloat64Reference(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        var rng = new Random(99 + (int)isa);
        int caseIndex = 0;
        foreach (var (n, m, k) in Shapes(isa == GemmIsa.Scalar ? 300_000 : 1_000_000))
        {
            var p = Layout.Random(rng, n, m, k, caseIndex++, transposedB: false);
            float[] a = RandomFloats(rng, n * p.Lda);
            float[] b = RandomFloats(rng, k * p.Ldb);
            float[] c = RandomFloats(rng, n * p.Ldc);
            float[] cBefore = (float[])c.Clone();
            double[] expected = Reference(a, p.Lda, b, p.Ldb, transposedB: false, c, p.Ldc, n, m, k, p.Accumulate);

            fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
                Gemm.MatMulNN(pa, p.Lda, pb, p.Ldb, pc, p.Ldc, n, m, k, p.Accumulate, p.Threads, isa);

            AssertClose(expected, c, p.Ldc, n, m, $"NN {isa} n={n} m={m} k={k} {p}");
            AssertPaddingUnchanged(cBefore, c, p.Ldc, n, m);
        }
    }

    [Fact]
    public void PublicEntryPoints_UseTheBestKernelCorrectly()
    {
        var rng = new Random(7);
        const int n = 50, m = 70, k = 90;
        float[] a = RandomFloats(rng, n * k), w = RandomFloats(rng, m * k), c = new float[n * m];
        byte[] wBf16 = Encode(w, DType.BF16);
        double[] expected = Reference(a, k, w, k, transposedB: true, c, m, n, m, k, accumulate: false);
        fixed (float* pa = a) fixed (byte* pw = wBf16) fixed (float* pc = c)
            Gemm.MatMulNT(pa, k, pw, DType.BF16, k, pc, m, n, m, k, accumulate: false, threads: 2);
        AssertClose(expected, c, m, n, m, "public NT");

        float[] b = RandomFloats(rng, k * m);
        expected = Reference(a, k, b, m, transposedB: false, c, m, n, m, k, accumulate: true);
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Gemm.MatMulNN(pa, k, pb, m, pc, m, n, m, k, accumulate: true, threads: 2);
        AssertClose(expected, c, m, n, m, "public NN");
    }

    [Fact]
    public void RepeatedCalls_DoNotAllocate()
    {
        var rng = new Random(3);
        float[] a = RandomFloats(rng, 64 * 300), w = RandomFloats(rng, 200 * 300), c = new float[64 * 300];
        byte[] wBf16 = Encode(w, DType.BF16);
        fixed (float* pa = a) fixed (byte* pw = wBf16) fixed (float* pc = c)
        {
            static void Products(float* pa, byte* pw, float* pc)
            {
                for (int path = 0; path < 3; path++)
                    for (int threads = 1; threads <= 2; threads++)
                    {
                        int rows = path switch { 0 => 1, 1 => 3, _ => 64 }; // streaming and packed paths
                        Gemm.MatMulNT(pa, 300, pw, DType.BF16, 300, pc, 200, rows, 200, 300, false, threads);
                        Gemm.MatMulNN(pa, 300, pa, 300, pc, 300, rows, 300, 60, true, threads);
                    }
            }
            Products(pa, pw, pc); // first calls create the per-thread pack buffers and JIT the kernels
            // One-time work can still land in a later round: which thread runs which index is dynamic (the caller may
            // first run a packed product in round 2 and create its buffers then), and tiering may re-JIT. A per-call
            // allocation shows in every round, so some round of five calls must allocate nothing at all.
            var perRound = new List<long>();
            for (int round = 0; round < 6; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 5; i++)
                    Products(pa, pw, pc);
                perRound.Add(GC.GetAllocatedBytesForCurrentThread() - before);
                if (perRound[^1] == 0)
                    break;
            }
            Assert.True(perRound[^1] == 0, $"bytes allocated per round of 5 calls: {string.Join(", ", perRound)}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ZeroDepth_ClearsOrKeepsC_AndLeavesPaddingAlone(bool accumulate)
    {
        const int n = 3, m = 5, ldc = 7;
        float[] c = Enumerable.Range(1, n * ldc).Select(i => (float)i).ToArray();
        float[] before = (float[])c.Clone();
        float[] dummy = [42f];
        fixed (float* pc = c) fixed (float* pd = dummy)
        {
            Gemm.MatMulNT(pd, 1, pd, DType.F32, 1, pc, ldc, n, m, 0, accumulate, 2);
            Gemm.MatMulNN(pd, 1, pd, m, pc, ldc, n, m, 0, accumulate, 2);
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < ldc; j++)
            {
                float want = j >= m || accumulate ? before[i * ldc + j] : 0f;
                Assert.Equal(want, c[i * ldc + j]);
            }
    }

    [Fact]
    public void EmptyOutput_IsANoOp()
    {
        float[] c = [5f];
        fixed (float* pc = c)
        {
            Gemm.MatMulNT(null, 0, null, DType.BF16, 0, pc, 1, 0, 1, 10, false, 1);
            Gemm.MatMulNN(null, 0, null, 0, pc, 1, 1, 0, 10, false, 1);
        }
        Assert.Equal(5f, c[0]);
    }

    [Fact]
    public void BadArguments_ThrowNamingTheProblem()
    {
        float[] buf = new float[64];
        fixed (float* p = buf)
        {
            float* q = p;
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNT(q, 3, q, DType.F32, 4, q, 4, 2, 2, 4, false, 1));
            Assert.Contains("lda", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNT(q, 4, q, DType.F32, 3, q, 4, 2, 2, 4, false, 1));
            Assert.Contains("ldb", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNN(q, 4, q, 1, q, 2, 2, 2, 4, false, 1));
            Assert.Contains("ldb", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNN(q, 4, q, 2, q, 1, 2, 2, 4, false, 1));
            Assert.Contains("ldc", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNT(q, 4, q, DType.F32, 4, q, 4, -1, 2, 4, false, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNT(q, 4, q, DType.F32, 4, q, 4, 2, 2, 4, false, 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MatMulNT(q, 4, q, (DType)77, 4, q, 4, 2, 2, 4, false, 1));
            Assert.Throws<ArgumentNullException>(() => Gemm.MatMulNT(null, 4, q, DType.F32, 4, q, 4, 2, 2, 4, false, 1));
        }
    }

    /// <summary>Every half bit pattern widens exactly as System.Half does, in every vector width.</summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void F16Widening_IsExactForAllBitPatterns(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        ushort[] bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)i;
        float[] wide = new float[bits.Length];
        fixed (ushort* pb = bits) fixed (float* pw = wide)
        {
            for (int i = 0; i < bits.Length; i += 16)
            {
                switch (isa)
                {
                    case GemmIsa.Vector512: Simd512.LoadF16(pb + i).Store(pw + i); break;
                    case GemmIsa.Vector256:
                        Simd256.LoadF16(pb + i).Store(pw + i);
                        Simd256.LoadF16(pb + i + 8).Store(pw + i + 8);
                        break;
                    default:
                        for (int j = 0; j < 16; j++) pw[i + j] = SimdScalar.LoadF16(pb + i + j);
                        break;
                }
            }
        }
        for (int i = 0; i < bits.Length; i++)
        {
            float want = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            if (float.IsNaN(want))
                Assert.True(float.IsNaN(wide[i]), $"half 0x{i:X4} should widen to NaN, got {wide[i]}");
            else
                Assert.True(BitConverter.SingleToUInt32Bits(want) == BitConverter.SingleToUInt32Bits(wide[i]),
                            $"half 0x{i:X4}: want {want}, got {wide[i]}");
        }
    }

    /// <summary>Leading dimensions, accumulate and threads for one case; varied deterministically over the cases.</summary>
    private readonly record struct Layout(int Lda, int Ldb, int Ldc, bool Accumulate, int Threads)
    {
        public static Layout Random(Random rng, int n, int m, int k, int caseIndex, bool transposedB)
        {
            bool padded = caseIndex % 3 != 0;
            int Pad() => padded ? rng.Next(1, 5) : 0;
            return new Layout(k + Pad(), (transposedB ? k : m) + Pad(), m + Pad(),
                              Accumulate: caseIndex % 2 == 1, Threads: caseIndex / 2 % 2 + 1);
        }

        public override string ToString() => $"lda={Lda} ldb={Ldb} ldc={Ldc} accumulate={Accumulate} threads={Threads}";
    }

    /// <summary>Uniform in [-0.25, 1): mixed signs, but with a positive mean so that a single dot product
    /// does not cancel to near zero, where float32 rounding alone would exceed the relative tolerance.</summary>
    private static float[] RandomFloats(Random rng, int count)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 1.25 - 0.25);
        return x;
    }

    /// <summary>Stores values as <paramref name="type"/> and replaces each value by its stored (rounded) value.</summary>
    private static byte[] Encode(float[] values, DType type)
    {
        byte[] bytes = new byte[values.Length * DTypeInfo.SizeOf(type)];
        for (int i = 0; i < values.Length; i++)
        {
            switch (type)
            {
                case DType.F32:
                    BitConverter.TryWriteBytes(bytes.AsSpan(4 * i), values[i]);
                    break;
                case DType.BF16:
                {
                    ushort h = (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16);
                    BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), h);
                    values[i] = BitConverter.UInt32BitsToSingle((uint)h << 16);
                    break;
                }
                case DType.F16:
                {
                    Half h = (Half)values[i];
                    BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), BitConverter.HalfToUInt16Bits(h));
                    values[i] = (float)h;
                    break;
                }
            }
        }
        return bytes;
    }

    private static double[] Reference(float[] a, int lda, float[] b, int ldb, bool transposedB, float[] c, int ldc,
                                      int n, int m, int k, bool accumulate)
    {
        var r = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double s = accumulate ? c[i * ldc + j] : 0.0;
                for (int p = 0; p < k; p++)
                    s += (double)a[i * lda + p] * (transposedB ? b[j * ldb + p] : b[p * ldb + j]);
                r[i * m + j] = s;
            }
        return r;
    }

    private static void AssertPaddingUnchanged(float[] before, float[] after, int ldc, int n, int m)
    {
        for (int i = 0; i < n; i++)
            for (int j = m; j < ldc; j++)
                Assert.Equal(before[i * ldc + j], after[i * ldc + j]);
    }

    private static void AssertClose(double[] expected, float[] c, int ldc, int n, int m, string what)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double d = c[i * ldc + j] - expected[i * m + j];
                err += d * d;
                norm += expected[i * m + j] * expected[i * m + j];
            }
        double rel = Math.Sqrt(err) / Math.Sqrt(norm);
        Assert.True(rel <= 1e-5, $"{what}: relative error {rel:E2}");
    }
}
