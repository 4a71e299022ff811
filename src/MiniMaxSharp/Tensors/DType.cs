namespace MiniMaxSharp.Tensors;

/// <summary>Element types the engine stores. Weights may be any of these; activations are F32 on the CPU.</summary>
public enum DType
{
    F32,
    BF16,
    F16,
    /// <summary>32-bit signed integers: token ids chosen on the device (<see cref="Backends.IGreedyDecoding"/>), never weights or activations.</summary>
    I32,
}

public static class DTypeInfo
{
    public static int SizeOf(DType t) => t switch
    {
        DType.F32 => 4,
        DType.BF16 => 2,
        DType.F16 => 2,
        DType.I32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    /// <summary>The safetensors spelling ("F32", "BF16", "F16").</summary>
    public static string SafeTensorsName(DType t) => t switch
    {
        DType.F32 => "F32",
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };
}
