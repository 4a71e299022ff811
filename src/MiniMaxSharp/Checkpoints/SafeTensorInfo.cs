using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Checkpoints;

/// <summary>One tensor of a safetensors file, as validated from its header.</summary>
/// <param name="Name">The tensor's name in the header.</param>
/// <param name="DType">Its element type as the file spells it.</param>
/// <param name="Shape">Its dimensions, outermost first (row-major); empty for a scalar.</param>
/// <param name="DataOffset">Offset of its first byte from the start of the file (header included), not from the data section.</param>
/// <param name="ByteLength">Number of bytes it occupies.</param>
public sealed record SafeTensorInfo(string Name, SafeTensorsDType DType, long[] Shape, long DataOffset, long ByteLength)
{
    /// <summary>The file the tensor was read from, used in error messages; empty when built by hand.</summary>
    public string FilePath { get; init; } = "";

    /// <summary>Product of the dimensions (1 for a scalar).</summary>
    public long ElementCount => ShapeMath.TryElementCount(Shape, out long count)
        ? count
        : throw new OverflowException($"tensor '{Name}': shape {ShapeMath.Format(Shape)} has no valid element count");

    public bool TryGetDType(out DType engineDType) => SafeTensorsDTypeInfo.TryToEngine(DType, out engineDType);

    /// <summary>The engine type of this tensor, or a <see cref="CheckpointException"/> naming the tensor when the engine cannot use it.</summary>
    public DType ToEngineDType()
    {
        if (TryGetDType(out var engineDType)) return engineDType;
        var where = FilePath.Length > 0 ? $" in {FilePath}" : "";
        throw new CheckpointException(
            $"tensor '{Name}'{where} has dtype {SafeTensorsDTypeInfo.Name(DType)}; supported: F32, BF16, F16");
    }

    public override string ToString() =>
        $"{Name}: {DType} {ShapeMath.Format(Shape)} at {DataOffset} ({ByteLength} bytes)";
}
