using System.Runtime.InteropServices;

namespace MiniMaxSharp.Tensors;

/// <summary>
/// A tensor in host memory that a backend can take weights from: a view into a memory-mapped
/// checkpoint (zero-copy) or a pinned array. <see cref="Owner"/> keeps the memory alive.
/// </summary>
public sealed unsafe class HostTensor
{
    public HostTensor(void* data, DType type, long[] shape, object? owner)
    {
        Data = data;
        DType = type;
        Shape = shape;
        Owner = owner;
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            n *= d;
        }
        ElementCount = n;
    }

    public void* Data { get; }
    public DType DType { get; }
    public long[] Shape { get; }
    public object? Owner { get; }
    public long ElementCount { get; }
    public long ByteLength => ElementCount * DTypeInfo.SizeOf(DType);

    /// <summary>Element <paramref name="index"/> of the first dimension, as a tensor of one rank less.</summary>
    public HostTensor Index(long index)
    {
        if (Shape.Length == 0 || index < 0 || index >= Shape[0])
            throw new ArgumentOutOfRangeException(nameof(index), $"index {index} outside [0, {(Shape.Length == 0 ? 0 : Shape[0])})");
        long[] inner = Shape[1..];
        long stride = 1;
        foreach (long d in inner) stride *= d;
        return new HostTensor((byte*)Data + index * stride * DTypeInfo.SizeOf(DType), DType, inner, Owner);
    }

    /// <summary>Rows [start, start+count) of the first dimension.</summary>
    public HostTensor Rows(long start, long count)
    {
        if (Shape.Length == 0 || start < 0 || count < 0 || start + count > Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside [0, {(Shape.Length == 0 ? 0 : Shape[0])})");
        long rowElems = 1;
        for (int i = 1; i < Shape.Length; i++) rowElems *= Shape[i];
        long[] shape = (long[])Shape.Clone();
        shape[0] = count;
        return new HostTensor((byte*)Data + start * rowElems * DTypeInfo.SizeOf(DType), DType, shape, Owner);
    }

    /// <summary>A pinned host tensor holding <paramref name="values"/> stored as <paramref name="storeAs"/>.</summary>
    public static HostTensor FromFloats(ReadOnlySpan<float> values, long[] shape, DType storeAs = DType.F32)
    {
        var bytes = GC.AllocateUninitializedArray<byte>(values.Length * DTypeInfo.SizeOf(storeAs), pinned: true);
        switch (storeAs)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(bytes);
                break;
            case DType.BF16:
                BFloat16Conversions.Narrow(values, MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan()));
                break;
            case DType.F16:
                HalfConversions.Narrow(values, MemoryMarshal.Cast<byte, Half>(bytes.AsSpan()));
                break;
        }
        fixed (byte* p = bytes)
        {
            var t = new HostTensor(p, storeAs, shape, bytes);
            if (t.ElementCount != values.Length)
                throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {t.ElementCount} elements, data has {values.Length}");
            return t;
        }
    }

    /// <summary>Widens the whole tensor to float32 (for small tensors and tests).</summary>
    public float[] ToFloat32()
    {
        var result = new float[ElementCount];
        NumberConversions.Widen(Data, DType, result);
        return result;
    }
}
