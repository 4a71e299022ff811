using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MiniMaxSharp.Tensors;

/// <summary>
/// bfloat16 is the upper half of an IEEE float32: widening is a 16-bit shift and is exact; narrowing
/// rounds to nearest, ties to even, and keeps NaNs NaN (quietened, sign and top payload bits kept).
/// The span versions process whole vectors (512, 256 or 128 bits, the widest the CPU accelerates) and
/// finish with the scalar code, so every width gives bit-identical results.
/// </summary>
public static class BFloat16Conversions
{
    private const uint QuietNaNBit = 0x0040;

    public static float BFloat16ToSingle(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        // Truncating a NaN whose payload sits only in the low 16 bits would give infinity; force the quiet bit.
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | QuietNaNBit);
        // Adding 0x7FFF plus the lowest kept bit rounds half-way cases towards the even neighbour;
        // the carry may ripple into the exponent, which is the correct rounding up to the next binade or to infinity.
        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        int done = 0;
        if (Vector512.IsHardwareAccelerated) done = WidenVector512(source, destination);
        else if (Vector256.IsHardwareAccelerated) done = WidenVector256(source, destination);
        else if (Vector128.IsHardwareAccelerated) done = WidenVector128(source, destination);
        WidenScalar(source[done..], destination[done..]);
    }

    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckLengths(source.Length, destination.Length);
        int done = 0;
        if (Vector512.IsHardwareAccelerated) done = NarrowVector512(source, destination);
        else if (Vector256.IsHardwareAccelerated) done = NarrowVector256(source, destination);
        else if (Vector128.IsHardwareAccelerated) done = NarrowVector128(source, destination);
        NarrowScalar(source[done..], destination[done..]);
    }

    private static void CheckLengths(int sourceLength, int destinationLength)
    {
        if (destinationLength < sourceLength)
            throw new ArgumentException(
                $"destination holds {destinationLength} elements but the source has {sourceLength}", "destination");
    }

    internal static void WidenScalar(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = BFloat16ToSingle(source[i]);
    }

    internal static void NarrowScalar(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = SingleToBFloat16(source[i]);
    }

    // Each kernel below converts the longest prefix made of whole vectors and returns its length. They are
    // internal so tests can run every width, including ones this CPU emulates in software.

    internal static int WidenVector512(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int step = Vector512<ushort>.Count;
        int i = 0;
        for (; i <= source.Length - step; i += step)
        {
            var (lower, upper) = Vector512.Widen(Vector512.LoadUnsafe(ref src, (nuint)i));
            Vector512.ShiftLeft(lower, 16).StoreUnsafe(ref dst, (nuint)i);
            Vector512.ShiftLeft(upper, 16).StoreUnsafe(ref dst, (nuint)(i + step / 2));
        }
        return i;
    }

    internal static int WidenVector256(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int step = Vector256<ushort>.Count;
        int i = 0;
        for (; i <= source.Length - step; i += step)
        {
            var (lower, upper) = Vector256.Widen(Vector256.LoadUnsafe(ref src, (nuint)i));
            Vector256.ShiftLeft(lower, 16).StoreUnsafe(ref dst, (nuint)i);
            Vector256.ShiftLeft(upper, 16).StoreUnsafe(ref dst, (nuint)(i + step / 2));
        }
        return i;
    }

    internal static int WidenVector128(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int step = Vector128<ushort>.Count;
        int i = 0;
        for (; i <= source.Length - step; i += step)
        {
            var (lower, upper) = Vector128.Widen(Vector128.LoadUnsafe(ref src, (nuint)i));
            Vector128.ShiftLeft(lower, 16).StoreUnsafe(ref dst, (nuint)i);
            Vector128.ShiftLeft(upper, 16).StoreUnsafe(ref dst, (nuint)(i + step / 2));
        }
        return i;
    }

    internal static int NarrowVector512(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        ref uint src = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(source));
        ref ushort dst = ref MemoryMarshal.GetReference(destination);
        int half = Vector512<uint>.Count;
        int i = 0;
        for (; i <= source.Length - 2 * half; i += 2 * half)
        {
            var lower = RoundToUpperHalf(Vector512.LoadUnsafe(ref src, (nuint)i));
            var upper = RoundToUpperHalf(Vector512.LoadUnsafe(ref src, (nuint)(i + half)));
            Vector512.Narrow(lower, upper).StoreUnsafe(ref dst, (nuint)i);
        }
        return i;
    }

    internal static int NarrowVector256(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        ref uint src = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(source));
        ref ushort dst = ref MemoryMarshal.GetReference(destination);
        int half = Vector256<uint>.Count;
        int i = 0;
        for (; i <= source.Length - 2 * half; i += 2 * half)
        {
            var lower = RoundToUpperHalf(Vector256.LoadUnsafe(ref src, (nuint)i));
            var upper = RoundToUpperHalf(Vector256.LoadUnsafe(ref src, (nuint)(i + half)));
            Vector256.Narrow(lower, upper).StoreUnsafe(ref dst, (nuint)i);
        }
        return i;
    }

    internal static int NarrowVector128(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        ref uint src = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(source));
        ref ushort dst = ref MemoryMarshal.GetReference(destination);
        int half = Vector128<uint>.Count;
        int i = 0;
        for (; i <= source.Length - 2 * half; i += 2 * half)
        {
            var lower = RoundToUpperHalf(Vector128.LoadUnsafe(ref src, (nuint)i));
            var upper = RoundToUpperHalf(Vector128.LoadUnsafe(ref src, (nuint)(i + half)));
            Vector128.Narrow(lower, upper).StoreUnsafe(ref dst, (nuint)i);
        }
        return i;
    }

    // Vector forms of SingleToBFloat16: the result sits in the low 16 bits of each lane, ready for Narrow.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> RoundToUpperHalf(Vector512<uint> bits)
    {
        var asFloat = bits.AsSingle();
        var isNaN = ~Vector512.Equals(asFloat, asFloat).AsUInt32();
        var rounded = Vector512.ShiftRightLogical(bits + Vector512.Create(0x7FFFu) + (Vector512.ShiftRightLogical(bits, 16) & Vector512<uint>.One), 16);
        var quietNaN = Vector512.ShiftRightLogical(bits, 16) | Vector512.Create(QuietNaNBit);
        return Vector512.ConditionalSelect(isNaN, quietNaN, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundToUpperHalf(Vector256<uint> bits)
    {
        var asFloat = bits.AsSingle();
        var isNaN = ~Vector256.Equals(asFloat, asFloat).AsUInt32();
        var rounded = Vector256.ShiftRightLogical(bits + Vector256.Create(0x7FFFu) + (Vector256.ShiftRightLogical(bits, 16) & Vector256<uint>.One), 16);
        var quietNaN = Vector256.ShiftRightLogical(bits, 16) | Vector256.Create(QuietNaNBit);
        return Vector256.ConditionalSelect(isNaN, quietNaN, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> RoundToUpperHalf(Vector128<uint> bits)
    {
        var asFloat = bits.AsSingle();
        var isNaN = ~Vector128.Equals(asFloat, asFloat).AsUInt32();
        var rounded = Vector128.ShiftRightLogical(bits + Vector128.Create(0x7FFFu) + (Vector128.ShiftRightLogical(bits, 16) & Vector128<uint>.One), 16);
        var quietNaN = Vector128.ShiftRightLogical(bits, 16) | Vector128.Create(QuietNaNBit);
        return Vector128.ConditionalSelect(isNaN, quietNaN, rounded);
    }
}

/// <summary>IEEE half precision (F16) spans, converted with the runtime's exact, round-to-nearest-even routines.</summary>
public static class HalfConversions
{
    public static void Widen(ReadOnlySpan<Half> source, Span<float> destination) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(source, destination);

    public static void Narrow(ReadOnlySpan<float> source, Span<Half> destination) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(source, destination);
}
