using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>A tensor in GPU memory: owned (freed on dispose) or a view of another tensor's memory.</summary>
public sealed class CudaTensor : DeviceTensor
{
    private readonly CudaDevice _device;
    private readonly bool _owns;
    private readonly CudaTensor? _parent;
    private ulong _pointer;

    internal CudaTensor(CudaDevice device, DType type, int[] shape, ulong pointer, bool owns, CudaTensor? parent) : base(type, shape)
    {
        _device = device;
        _pointer = pointer;
        _owns = owns;
        _parent = parent;
    }

    internal CudaDevice Device => _device;

    /// <summary>The device address of the first element.</summary>
    public ulong Pointer => _pointer != 0 || ElementCount == 0 ? _pointer : throw new ObjectDisposedException(nameof(CudaTensor), $"{this} was disposed");

    /// <summary>The dtype code the kernels take (DT_F32 = 0, DT_BF16 = 1).</summary>
    internal int KernelType => CudaBackend.KernelType(DType);

    public override DeviceTensor RowSlice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside a tensor of {Rows} rows");
        return new CudaTensor(_device, DType, [count, Cols], Pointer + (ulong)((long)start * Cols * DTypeInfo.SizeOf(DType)), owns: false, parent: this);
    }

    public override void Dispose()
    {
        // After the backend is gone its context and memory are released with it.
        if (_owns && _pointer != 0 && !_device.IsDisposed)
        {
            _device.MakeCurrent();
            _device.Free(_pointer);
        }
        _pointer = 0;
        GC.KeepAlive(_parent);
    }
}
