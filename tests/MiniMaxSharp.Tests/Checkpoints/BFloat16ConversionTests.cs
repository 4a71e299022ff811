using System.Runtime.InteropServices;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Checkpoints;

public class BFloat16ConversionTests
{
    /// <summary>
    /// Reference narrowing written from the definition rather than with the bias trick: pick the nearer of the
    /// two bf16 neighbours by exact double arithmetic, ties to the even mantissa; past the largest finite
    /// bf16 the upper neighbour is infinity, which counts as 2^128 for the distance.
    /// </summary>
    private static ushort ReferenceNarrow(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return ushort.MaxValue; // marker: any NaN result is accepted, see AssertSameBFloat16
        ushort lower = (ushort)(bits >> 16); // truncation: the neighbour towards zero
        if ((bits & 0xFFFF) == 0) return lower;
        ushort upper = (ushort)(lower + 1); // the neighbour away from zero (may be infinity)
        double magnitude = Math.Abs((double)value);
        double lowerMagnitude = Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)lower << 16));
        double upperMagnitude = (upper & 0x7FFF) == 0x7F80 ? Math.Pow(2, 128) : Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)upper << 16));
        double toLower = magnitude - lowerMagnitude, toUpper = upperMagnitude - magnitude;
        if (toLower < toUpper) return lower;
        if (toUpper < toLower) return upper;
        return (lower & 1) == 0 ? lower : upper;
    }

    private static void AssertSameBFloat16(float input, ushort actual)
    {
        ushort expected = ReferenceNarrow(input);
        if (float.IsNaN(input))
        {
            float widened = BFloat16Conversions.BFloat16ToSingle(actual);
            Assert.True(float.IsNaN(widened), $"NaN 0x{BitConverter.SingleToUInt32Bits(input):X8} became 0x{actual:X4}");
            Assert.Equal(BitConverter.SingleToUInt32Bits(input) >> 31, (uint)actual >> 15); // sign kept
            return;
        }
        Assert.True(expected == actual,
            $"input 0x{BitConverter.SingleToUInt32Bits(input):X8} ({input:R}): expected 0x{expected:X4}, got 0x{actual:X4}");
    }

    private static readonly uint[] SpecialBits =
    [
        0x00000000, 0x80000000,             // ±0
        0x7F800000, 0xFF800000,             // ±inf
        0x7FC00000, 0xFFC00000, 0x7F800001, // NaNs, one with payload only in the low bits
        0xFF800001, 0x7FBFFFFF, 0x7FFFFFFF,
        0x00000001, 0x80000001, 0x007FFFFF, // float32 denormals
        0x00008000, 0x00018000, 0x00017FFF, // denormal ties and near-ties
        0x00800000, 0x00807FFF, 0x00808000, // smallest normal and neighbours
        0x3F800000, 0x3F808000, 0x3F818000, // 1.0 and ties to even (down, up)
        0x3F808001, 0x3F807FFF, 0xBF818000,
        0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, // near max bf16: tie at the top rounds to infinity
        0x7F7FFFFF, 0xFF7FFFFF,             // max float32 -> ±inf
        0x3F7FFFFF, 0x407FFFFF,             // carry into the exponent
    ];

    private static float[] TestValues(int randomCount, int seed)
    {
        var random = new Random(seed);
        var values = new List<float>(SpecialBits.Select(BitConverter.UInt32BitsToSingle));
        for (int i = 0; i < randomCount; i++)
        {
            uint bits = (uint)random.NextInt64(0, 1L << 32);
            // Half of the random values sit exactly on or next to a rounding tie.
            if (i % 2 == 1) bits = (bits & 0xFFFF0000) | (uint)(0x8000 + random.Next(-1, 2));
            values.Add(BitConverter.UInt32BitsToSingle(bits));
        }
        return values.ToArray();
    }

    [Fact]
    public void SingleToBFloat16_MatchesReference()
    {
        foreach (var v in TestValues(200_000, 11)) AssertSameBFloat16(v, BFloat16Conversions.SingleToBFloat16(v));
    }

    [Fact]
    public void SpecialValues_HaveKnownResults()
    {
        Assert.Equal(0x3F80, BFloat16Conversions.SingleToBFloat16(BitConverter.UInt32BitsToSingle(0x3F808000)));
        Assert.Equal(0x3F82, BFloat16Conversions.SingleToBFloat16(BitConverter.UInt32BitsToSingle(0x3F818000)));
        Assert.Equal(0x7F80, BFloat16Conversions.SingleToBFloat16(float.MaxValue));
        Assert.Equal(0x8000, BFloat16Conversions.SingleToBFloat16(-0f));
        Assert.Equal(0x0001, BFloat16Conversions.SingleToBFloat16(BitConverter.UInt32BitsToSingle(0x00008001)));
        Assert.True(float.IsNaN(BFloat16Conversions.BFloat16ToSingle(BFloat16Conversions.SingleToBFloat16(BitConverter.UInt32BitsToSingle(0x7F800001)))));
    }

    [Fact]
    public void BFloat16ToSingle_IsExactForEveryPattern()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        var widened = new float[all.Length];
        BFloat16Conversions.Widen(all, widened);
        for (int i = 0; i < all.Length; i++)
        {
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(widened[i]));
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(BFloat16Conversions.BFloat16ToSingle((ushort)i)));
        }
        // Every non-NaN bf16 survives widening then narrowing unchanged.
        var back = new ushort[all.Length];
        BFloat16Conversions.Narrow(widened, back);
        for (int i = 0; i < all.Length; i++)
            if (!float.IsNaN(widened[i])) Assert.Equal(all[i], back[i]);
    }

    private delegate int NarrowKernel(ReadOnlySpan<float> source, Span<ushort> destination);

    private delegate int WidenKernel(ReadOnlySpan<ushort> source, Span<float> destination);

    private static readonly (string Name, NarrowKernel Narrow, WidenKernel Widen)[] Kernels =
    [
        ("public", (s, d) => { BFloat16Conversions.Narrow(s, d); return s.Length; }, (s, d) => { BFloat16Conversions.Widen(s, d); return s.Length; }),
        ("512", BFloat16Conversions.NarrowVector512, BFloat16Conversions.WidenVector512),
        ("256", BFloat16Conversions.NarrowVector256, BFloat16Conversions.WidenVector256),
        ("128", BFloat16Conversions.NarrowVector128, BFloat16Conversions.WidenVector128),
    ];

    [Fact]
    public void SpanConversions_MatchScalarForLengths0To70AtEveryWidth()
    {
        // Each width runs even where the CPU lacks it (the runtime then emulates it), so all code paths are checked.
        var pool = TestValues(4000, 5);
        var random = new Random(7);
        foreach (var (name, narrow, widen) in Kernels)
        {
            for (int length = 0; length <= 70; length++)
            {
                // Odd start offsets make the spans unaligned.
                int start = random.Next(0, pool.Length - length);
                var source = pool.AsSpan(start, length);
                var narrowed = new ushort[length + 1];
                narrowed[length] = 0xABCD; // sentinel: nothing past the end is written
                int done = narrow(source, narrowed.AsSpan(0, length));
                AssertWholeVectorsDone(name, done, length);
                BFloat16Conversions.NarrowScalar(source[done..], narrowed.AsSpan(done, length - done));
                for (int i = 0; i < length; i++) AssertSameBFloat16(source[i], narrowed[i]);
                Assert.Equal(0xABCD, narrowed[length]);

                var widened = new float[length + 1];
                widened[length] = 123f;
                int wdone = widen(narrowed.AsSpan(0, length), widened.AsSpan(0, length));
                AssertWholeVectorsDone(name, wdone, length);
                BFloat16Conversions.WidenScalar(narrowed.AsSpan(wdone, length - wdone), widened.AsSpan(wdone, length - wdone));
                for (int i = 0; i < length; i++) Assert.Equal((uint)narrowed[i] << 16, BitConverter.SingleToUInt32Bits(widened[i]));
                Assert.Equal(123f, widened[length]);
            }
        }
    }

    /// <summary>A kernel converts exactly the whole 16-bit vectors that fit (the public entry points do everything).</summary>
    private static void AssertWholeVectorsDone(string kernel, int done, int length)
    {
        int expected = kernel == "public" ? length : length / (int.Parse(kernel) / 16) * (int.Parse(kernel) / 16);
        Assert.True(done == expected, $"kernel {kernel}: converted {done} of {length}, expected {expected}");
    }

    [Fact]
    public void Narrow_ShortDestination_Throws()
    {
        Assert.Throws<ArgumentException>(() => BFloat16Conversions.Narrow(new float[4], new ushort[3]));
        Assert.Throws<ArgumentException>(() => BFloat16Conversions.Widen(new ushort[4], new float[3]));
    }

    [Fact]
    public void HalfConversions_MatchSystemHalf()
    {
        var values = TestValues(2000, 3);
        var halves = new Half[values.Length];
        HalfConversions.Narrow(values, halves);
        var back = new float[values.Length];
        HalfConversions.Widen(halves, back);
        for (int i = 0; i < values.Length; i++)
        {
            Half expected = (Half)values[i];
            Assert.Equal(BitConverter.HalfToUInt16Bits(expected) & (Half.IsNaN(expected) ? 0xFC00 : 0xFFFF),
                BitConverter.HalfToUInt16Bits(halves[i]) & (Half.IsNaN(expected) ? 0xFC00 : 0xFFFF));
            if (!Half.IsNaN(expected)) Assert.Equal((float)expected, back[i]);
        }
    }
}
