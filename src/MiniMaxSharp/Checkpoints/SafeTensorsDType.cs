using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Checkpoints;

/// <summary>
/// Every element type the safetensors format defines. Files holding any of them can be opened and validated;
/// only <see cref="F32"/>, <see cref="BF16"/> and <see cref="F16"/> map to an engine <see cref="DType"/>.
/// </summary>
public enum SafeTensorsDType
{
    BOOL,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F4,
    F6_E2M3,
    F6_E3M2,
    F8_E4M3,
    F8_E5M2,
    F8_E8M0,
    F8_E4M3FNUZ,
    F8_E5M2FNUZ,
    F16,
    BF16,
    F32,
    F64,
    C64,
}

public static class SafeTensorsDTypeInfo
{
    /// <summary>The spelling a safetensors header uses for each type; it is also the enum member's name.</summary>
    public static string Name(SafeTensorsDType t) => t.ToString();

    /// <summary>Bits per element; sub-byte types (F4, F6_*) are packed, so sizes are counted in bits.</summary>
    public static int SizeInBits(SafeTensorsDType t) => t switch
    {
        SafeTensorsDType.F4 => 4,
        SafeTensorsDType.F6_E2M3 or SafeTensorsDType.F6_E3M2 => 6,
        SafeTensorsDType.BOOL or SafeTensorsDType.U8 or SafeTensorsDType.I8
            or SafeTensorsDType.F8_E4M3 or SafeTensorsDType.F8_E5M2 or SafeTensorsDType.F8_E8M0
            or SafeTensorsDType.F8_E4M3FNUZ or SafeTensorsDType.F8_E5M2FNUZ => 8,
        SafeTensorsDType.U16 or SafeTensorsDType.I16 or SafeTensorsDType.F16 or SafeTensorsDType.BF16 => 16,
        SafeTensorsDType.U32 or SafeTensorsDType.I32 or SafeTensorsDType.F32 => 32,
        SafeTensorsDType.U64 or SafeTensorsDType.I64 or SafeTensorsDType.F64 or SafeTensorsDType.C64 => 64,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    /// <summary>Parses a header spelling such as "BF16"; exact, case-sensitive match as the format requires.</summary>
    public static bool TryParse(string name, out SafeTensorsDType t)
    {
        // Enum.TryParse would also accept digits ("3") and other casings, which are not valid headers.
        foreach (var candidate in Enum.GetValues<SafeTensorsDType>())
        {
            if (string.Equals(candidate.ToString(), name, StringComparison.Ordinal))
            {
                t = candidate;
                return true;
            }
        }
        t = default;
        return false;
    }

    public static bool TryToEngine(SafeTensorsDType t, out DType engine)
    {
        switch (t)
        {
            case SafeTensorsDType.F32: engine = DType.F32; return true;
            case SafeTensorsDType.BF16: engine = DType.BF16; return true;
            case SafeTensorsDType.F16: engine = DType.F16; return true;
            default: engine = default; return false;
        }
    }

    public static SafeTensorsDType FromEngine(DType t) => t switch
    {
        DType.F32 => SafeTensorsDType.F32,
        DType.BF16 => SafeTensorsDType.BF16,
        DType.F16 => SafeTensorsDType.F16,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    /// <summary>Bytes taken by <paramref name="elementCount"/> elements, or null when that is not a whole number of bytes or overflows.</summary>
    internal static long? ByteLengthOf(SafeTensorsDType t, long elementCount)
    {
        long bits;
        try
        {
            bits = checked(elementCount * SizeInBits(t));
        }
        catch (OverflowException)
        {
            return null;
        }
        return bits % 8 == 0 ? bits / 8 : null;
    }
}
