using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

public sealed partial class CudaBackend : IDeviceMemory
{
    public (long Free, long Total) MemoryInfo()
    {
        _device.MakeCurrent();
        Check(cuMemGetInfo(out nuint free, out nuint total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }
}
