using System.Runtime.InteropServices;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>A tensor in host memory: owned (64-byte aligned native memory) or a view of other memory.</summary>
public sealed unsafe class CpuTensor : DeviceTensor
{
    private readonly bool _owns;
    private readonly object? _keepAlive;
    private byte* _data;

    private CpuTensor(DType type, int[] shape, byte* data, bool owns, object? keepAlive) : base(type, shape)
    {
        _data = data;
        _owns = owns;
        _keepAlive = keepAlive;
    }

    public byte* Data => _data != null || ElementCount == 0 ? _data : throw new ObjectDisposedException(nameof(CpuTensor));
    public float* F32 => DType == DType.F32 ? (float*)Data : throw new InvalidOperationException($"expected a float32 tensor, got {this}");
    public Span<float> AsSpan() => new(F32, checked((int)ElementCount));

    internal static CpuTensor AllocateZeroed(DType type, int[] shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        nuint bytes = (nuint)Math.Max(64, n * DTypeInfo.SizeOf(type));
        byte* p;
        try
        {
            p = (byte*)NativeMemory.AlignedAlloc(bytes, 64);
        }
        catch (OutOfMemoryException)
        {
            throw new OutOfMemoryException($"cannot allocate {bytes / (1024.0 * 1024):F1} MiB for a {type}[{string.Join(", ", shape)}] tensor");
        }
        NativeMemory.Clear(p, bytes);
        return new CpuTensor(type, shape, p, owns: true, keepAlive: null);
    }

    internal static CpuTensor Wrap(HostTensor source)
    {
        int[] shape = source.Shape.Select(d => checked((int)d)).ToArray();
        if (shape.Length == 0) shape = [1];
        return new CpuTensor(source.DType, shape, (byte*)source.Data, owns: false, keepAlive: source);
    }

    public override DeviceTensor RowSlice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside a tensor of {Rows} rows");
        int[] shape = [count, Cols];
        return new CpuTensor(DType, shape, Data + (long)start * Cols * DTypeInfo.SizeOf(DType), owns: false, keepAlive: this);
    }

    public override void Dispose()
    {
        if (_owns && _data != null) NativeMemory.AlignedFree(_data);
        _data = null;
        GC.KeepAlive(_keepAlive);
    }
}
