using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MiniMaxSharp.Tensors;

/// <summary>Widening of stored weight types to float32 and narrowing back, vectorised.</summary>
public static unsafe class NumberConversions
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest even; NaN stays NaN (quiet).</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return (ushort)((bits >> 16) | 0x0040);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static void NarrowToBFloat16(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        for (int i = 0; i < src.Length; i++) dst[i] = SingleToBFloat16(src[i]);
    }

    /// <summary>dst[i] = (float)src[i] for <paramref name="dst"/>.Length elements of type <paramref name="type"/>.</summary>
    public static void Widen(void* src, DType type, Span<float> dst)
    {
        switch (type)
        {
            case DType.F32:
                new ReadOnlySpan<float>(src, dst.Length).CopyTo(dst);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, dst.Length), dst);
                break;
            case DType.BF16:
                WidenBFloat16((ushort*)src, dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    public static void WidenBFloat16(ushort* src, Span<float> dst)
    {
        int n = dst.Length, i = 0;
        fixed (float* d = dst)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 16 <= n; i += 16)
                {
                    var w = Vector512.WidenLower(Vector256.Load(src + i).ToVector512Unsafe());
                    Vector512.Store(Vector512.ShiftLeft(w, 16).AsSingle(), d + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= n; i += 8)
                {
                    var w = Vector256.WidenLower(Vector128.Load(src + i).ToVector256Unsafe());
                    Vector256.Store(Vector256.ShiftLeft(w, 16).AsSingle(), d + i);
                }
            }
            for (; i < n; i++) d[i] = BFloat16ToSingle(src[i]);
        }
    }
}
