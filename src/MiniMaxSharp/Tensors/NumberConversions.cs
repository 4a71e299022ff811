namespace MiniMaxSharp.Tensors;

/// <summary>Widening of any stored weight type to float32, by <see cref="DType"/> (the per-type code lives in
/// <see cref="BFloat16Conversions"/> and <see cref="HalfConversions"/>).</summary>
public static unsafe class NumberConversions
{
    /// <summary>dst[i] = (float)src[i] for <paramref name="dst"/>.Length elements of type <paramref name="type"/>.</summary>
    public static void Widen(void* src, DType type, Span<float> dst)
    {
        switch (type)
        {
            case DType.F32:
                new ReadOnlySpan<float>(src, dst.Length).CopyTo(dst);
                break;
            case DType.F16:
                HalfConversions.Widen(new ReadOnlySpan<Half>(src, dst.Length), dst);
                break;
            case DType.BF16:
                BFloat16Conversions.Widen(new ReadOnlySpan<ushort>(src, dst.Length), dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }
}
