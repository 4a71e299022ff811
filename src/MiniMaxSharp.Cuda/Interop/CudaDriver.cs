using System.Runtime.InteropServices;

namespace MiniMaxSharp.Backends.Cuda.Interop;

/// <summary>The CUDA driver API calls the backend uses (libcuda). Every call returns a CUresult, checked by <see cref="Check"/>.</summary>
internal static unsafe partial class CudaDriver
{
    private const string Lib = CudaLibrarySearch.DriverImport;

    public const int Success = 0;
    public const int ErrorOutOfMemory = 2;
    public const int ErrorNotInitialized = 3;
    public const int ErrorInsufficientDriver = 35;
    public const int ErrorNoDevice = 100;
    public const int ErrorInvalidDevice = 101;

    public const int AttrMultiprocessorCount = 16;
    public const int AttrComputeCapabilityMajor = 75;
    public const int AttrComputeCapabilityMinor = 76;
    public const int AttrMaxSharedMemoryPerBlockOptin = 97;
    public const int FuncAttrMaxDynamicSharedSizeBytes = 8;
    public const uint StreamNonBlocking = 1;
    public const uint EventDefault = 0;
    /// <summary>CU_EVENT_DISABLE_TIMING: an event only waited on (cheaper to record and to wait for).</summary>
    public const uint EventDisableTiming = 2;
    /// <summary>CU_STREAM_CAPTURE_MODE_RELAXED: the capturing thread may still make calls the driver deems
    /// unsafe during a capture; the backend itself refuses allocations, copies and synchronisations then.</summary>
    public const int StreamCaptureModeRelaxed = 2;
    /// <summary>CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH: memory a library allocates inside a capture
    /// (e.g. a cuBLAS workspace) is freed before the graph runs again, so a graph can be relaunched.</summary>
    public const ulong GraphInstantiateAutoFreeOnLaunch = 1;

    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")] public static partial int cuDeviceTotalMem(out nuint bytes, int device);
    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] public static partial int cuCtxSynchronize();
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] public static partial int cuMemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(out ulong devicePtr, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(ulong devicePtr);
    [LibraryImport(Lib, EntryPoint = "cuMemAllocHost_v2")] public static partial int cuMemAllocHost(out nint hostPtr, nuint bytes);
    [LibraryImport(Lib)] public static partial int cuMemFreeHost(nint hostPtr);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(ulong dst, void* src, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial int cuMemcpyDtoDAsync(ulong dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD8Async(ulong dst, byte value, nuint count, nint stream);
    [LibraryImport(Lib)] public static partial int cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(nint stream);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(Lib)] public static partial int cuEventCreate(out nint ev, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] public static partial int cuEventDestroy(nint ev);
    [LibraryImport(Lib)] public static partial int cuEventRecord(nint ev, nint stream);
    [LibraryImport(Lib)] public static partial int cuEventSynchronize(nint ev);
    [LibraryImport(Lib)] public static partial int cuEventElapsedTime(out float ms, nint start, nint end);
    [LibraryImport(Lib)] public static partial int cuModuleLoadData(out nint module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(Lib)] public static partial int cuModuleGetFunction(out nint function, nint module, byte* name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(nint function, int attribute, int value);
    [LibraryImport(Lib)] public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedBytes, nint stream, void** parameters, void** extra);
    [LibraryImport(Lib)] public static partial int cuLaunchKernelEx(LaunchConfig* config, nint function, void** parameters, void** extra);
    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")] public static partial int cuStreamBeginCapture(nint stream, int mode);
    [LibraryImport(Lib)] public static partial int cuStreamEndCapture(nint stream, out nint graph);
    [LibraryImport(Lib)] public static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);
    [LibraryImport(Lib)] public static partial int cuGraphLaunch(nint graphExec, nint stream);
    [LibraryImport(Lib)] public static partial int cuGraphExecDestroy(nint graphExec);
    [LibraryImport(Lib)] public static partial int cuGraphDestroy(nint graph);
    [LibraryImport(Lib)] public static partial int cuGetErrorName(int error, out byte* name);
    [LibraryImport(Lib)] public static partial int cuGetErrorString(int error, out byte* text);

    /// <summary>Throws a <see cref="CudaException"/> naming the call and the driver's error name.</summary>
    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the kernel may start before the previous kernel of
    /// the stream ends (it waits for it with <c>griddepcontrol.wait</c>).</summary>
    public const int LaunchAttributeProgrammaticStreamSerialization = 6;

    /// <summary>CUlaunchAttribute: the id, 4 bytes of padding, a 64-byte value union.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchAttribute
    {
        public int Id;
        public int Padding;
        public fixed byte Value[64];
    }

    /// <summary>CUlaunchConfig (56 bytes: seven uints, the stream at offset 32, the attributes, their count).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridDimX, GridDimY, GridDimZ, BlockDimX, BlockDimY, BlockDimZ, SharedMemBytes;
        public nint Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    public static void Check(int result, string call)
    {
        if (result != Success) throw new CudaException($"{call} failed: {ErrorName(result)}");
    }

    public static string ErrorName(int result)
    {
        string name = $"CUresult {result}";
        try
        {
            if (cuGetErrorName(result, out byte* n) == Success && n != null) name = Marshal.PtrToStringUTF8((nint)n) ?? name;
            if (cuGetErrorString(result, out byte* s) == Success && s != null) name += $" ({Marshal.PtrToStringUTF8((nint)s)})";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return name;
    }
}
