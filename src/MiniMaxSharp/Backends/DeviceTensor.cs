using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends;

/// <summary>
/// A tensor owned by a backend (host memory for the CPU backend, device memory for CUDA).
/// Row-major; <see cref="Rows"/> is the product of every dimension but the last.
/// Views (<see cref="RowSlice"/>) share memory with their parent and never free it.
/// </summary>
public abstract class DeviceTensor : IDisposable
{
    protected DeviceTensor(DType type, int[] shape)
    {
        if (shape.Length == 0) throw new ArgumentException("a tensor needs at least one dimension");
        DType = type;
        Shape = shape;
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            n *= d;
        }
        ElementCount = n;
    }

    public DType DType { get; }
    public int[] Shape { get; }
    public long ElementCount { get; }
    public int Cols => Shape[^1];
    public long Rows => Shape[^1] == 0 ? 0 : ElementCount / Shape[^1];
    public long ByteLength => ElementCount * DTypeInfo.SizeOf(DType);

    /// <summary>Rows [start, start+count) of a 2-D tensor (same backend memory).</summary>
    public abstract DeviceTensor RowSlice(int start, int count);

    public abstract void Dispose();

    public override string ToString() => $"{DType}[{string.Join(", ", Shape)}]";
}
