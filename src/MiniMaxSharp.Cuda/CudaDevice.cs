using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using MiniMaxSharp.Backends.Cuda.Interop;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>
/// One GPU: its primary context, one non-blocking stream that every op runs on, a cuBLAS handle bound to
/// that stream, and the kernel modules (CUDA C embedded in this assembly, compiled by NVRTC at first use).
/// </summary>
internal sealed unsafe partial class CudaDevice : IDisposable
{
    private readonly Dictionary<string, nint> _modules = [];
    private readonly Dictionary<string, CudaKernel> _kernels = [];
    private readonly KernelCache _cache;
    private nint _stream;
    private nint _cublas;
    private bool _disposed;

    public CudaDevice(int ordinal = 0)
    {
        CudaLibraries.EnsureResolver();
        try
        {
            CudaLibraries.Load(CudaLibrary.Driver, Environment.GetEnvironmentVariable);
            int r = cuInit(0);
            if (r is ErrorNoDevice or ErrorInsufficientDriver or ErrorNotInitialized or ErrorInvalidDevice or 999 /* unknown */ or 304 /* OS call failed */)
                throw new CudaUnavailableException($"CUDA is not available: cuInit failed with {ErrorName(r)}");
            Check(r, "cuInit");
            Check(cuDeviceGetCount(out int count), "cuDeviceGetCount");
            if (count == 0) throw new CudaUnavailableException("CUDA is not available: the driver reports no GPU");
            if (ordinal < 0 || ordinal >= count)
                throw new CudaUnavailableException($"GPU {ordinal} requested but the driver reports {count} GPU(s)");
            Check(cuDeviceGet(out int device, ordinal), "cuDeviceGet");
            Ordinal = device;
        }
        catch (DllNotFoundException e)
        {
            throw new CudaUnavailableException($"CUDA is not available: {e.Message}", e);
        }
        catch (EntryPointNotFoundException e)
        {
            throw new CudaUnavailableException($"CUDA is not available: the driver library lacks an entry point ({e.Message}); it is too old for this backend", e);
        }

        Check(cuDevicePrimaryCtxRetain(out nint ctx, Ordinal), "cuDevicePrimaryCtxRetain");
        Context = ctx;
        MakeCurrent();
        byte* name = stackalloc byte[256];
        Check(cuDeviceGetName(name, 256, Ordinal), "cuDeviceGetName");
        Name = Marshal.PtrToStringUTF8((nint)name) ?? "?";
        Check(cuDeviceGetAttribute(out int major, AttrComputeCapabilityMajor, Ordinal), "cuDeviceGetAttribute");
        Check(cuDeviceGetAttribute(out int minor, AttrComputeCapabilityMinor, Ordinal), "cuDeviceGetAttribute");
        Check(cuDeviceGetAttribute(out int sms, AttrMultiprocessorCount, Ordinal), "cuDeviceGetAttribute");
        Check(cuDeviceGetAttribute(out int smem, AttrMaxSharedMemoryPerBlockOptin, Ordinal), "cuDeviceGetAttribute");
        ComputeCapability = major * 10 + minor;
        Multiprocessors = sms;
        MaxSharedMemoryPerBlock = smem;
        Check(cuDriverGetVersion(out int dv), "cuDriverGetVersion");
        DriverVersion = dv;
        Check(cuStreamCreate(out _stream, StreamNonBlocking), "cuStreamCreate");

        try
        {
            CudaLibraries.Load(CudaLibrary.Nvrtc, Environment.GetEnvironmentVariable);
            CudaLibraries.Load(CudaLibrary.Cublas, Environment.GetEnvironmentVariable);
        }
        catch (CudaUnavailableException)
        {
            Dispose();
            throw;
        }
        Cublas.Check(Cublas.cublasCreate(out _cublas), "cublasCreate");
        Cublas.Check(Cublas.cublasSetStream(_cublas, _stream), "cublasSetStream");
        Nvrtc.Check(Nvrtc.nvrtcVersion(out int nvMajor, out int nvMinor), "nvrtcVersion");
        NvrtcVersion = (nvMajor, nvMinor);
        _cache = new KernelCache(KernelCache.DefaultDirectory(Environment.GetEnvironmentVariable));
        DependentLaunch = Environment.GetEnvironmentVariable("MINIMAXSHARP_CUDA_PDL") != "0" && ComputeCapability >= 90;
    }

    /// <summary>Programmatic dependent launch (sm_90 and later, on by default; MINIMAXSHARP_CUDA_PDL=0 turns it off):
    /// every kernel is launched with the programmatic stream serialization attribute and compiled with a prologue that
    /// waits for the previous kernel (<c>griddepcontrol.wait</c>) and then lets the next one launch, so a kernel's launch
    /// and block scheduling overlap its predecessor instead of following it.</summary>
    public bool DependentLaunch { get; }

    /// <summary>
    /// <paramref name="source"/> with a call of <c>pdl_wait_then_release()</c> (common.cuh) as the first statement of every
    /// <c>extern "C" __global__</c> kernel not marked <c>// PDL_MANUAL</c>: wait until the previous kernel of the stream has
    /// finished and its writes are visible, then allow the next kernel to launch. Waiting first keeps at most one kernel
    /// ahead, and no kernel reads its predecessor's output early; a PDL_MANUAL kernel (the decode matvecs) first issues
    /// its weight loads, which do not depend on the predecessor, then waits. Without the launch attribute both
    /// instructions do nothing.
    /// </summary>
    internal static string WithDependentLaunchPrologue(string source, out int kernels)
    {
        int count = 0;
        string body = KernelOpening().Replace(source, m =>
        {
            count++;
            // A kernel marked "// PDL_MANUAL" on the line before waits itself (pdl_wait_then_release in common.cuh),
            // after issuing the loads that do not depend on its predecessor.
            int lineStart = source.LastIndexOf('\n', Math.Max(0, m.Index - 1));
            int previousLine = lineStart <= 0 ? 0 : source.LastIndexOf('\n', lineStart - 1) + 1;
            bool manual = lineStart > 0 && source.AsSpan(previousLine, lineStart - previousLine).Trim().SequenceEqual("// PDL_MANUAL");
            return manual ? m.Value : m.Value + " pdl_wait_then_release();";
        });
        kernels = count;
        return body;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"extern ""C"" __global__ void(?:\s+__cluster_dims__\([^)]*\))?(?:\s+__launch_bounds__\([^)]*\))?\s+\w+\s*\([^)]*\)\s*\{")]
    private static partial System.Text.RegularExpressions.Regex KernelOpening();

    public int Ordinal { get; }
    public nint Context { get; }
    public nint Stream => _stream;
    public nint CublasHandle => _cublas;
    public string Name { get; }
    public int ComputeCapability { get; }
    public int Multiprocessors { get; }
    public int MaxSharedMemoryPerBlock { get; }
    public int DriverVersion { get; }
    public (int Major, int Minor) NvrtcVersion { get; }

    public bool IsDisposed => _disposed;

    /// <summary>Whether launches run, are captured into a graph, or are checked against one (CudaBackend.Graphs.cs).</summary>
    public StepGraphLog Graphs { get; } = new();

    /// <summary>Binds the context to the calling thread (ops may come from any thread).</summary>
    public void MakeCurrent() => Check(cuCtxSetCurrent(Context), "cuCtxSetCurrent");

    public void Synchronize()
    {
        Graphs.RequireEager("a stream synchronisation");
        Check(cuStreamSynchronize(_stream), "cuStreamSynchronize");
    }

    /// <summary>Device memory of <paramref name="bytes"/> bytes; failure says how much was asked for and how much is free.</summary>
    public ulong Allocate(long bytes, string what)
    {
        Graphs.RequireEager($"allocating {what}");
        int r = cuMemAlloc(out ulong p, (nuint)Math.Max(1, bytes));
        if (r == ErrorOutOfMemory)
        {
            cuMemGetInfo(out nuint free, out nuint total);
            throw new OutOfMemoryException($"GPU out of memory: {what} needs {bytes / 1048576.0:F1} MiB; {free / 1048576.0:F1} MiB of {total / 1048576.0:F1} MiB free");
        }
        Check(r, $"cuMemAlloc({bytes} bytes for {what})");
        return p;
    }

    public void Free(ulong pointer)
    {
        if (pointer == 0 || _disposed) return;
        Graphs.RequireEager("freeing device memory");
        Check(cuMemFree(pointer), "cuMemFree");
    }

    /// <summary>The kernel <paramref name="function"/> of the embedded source <paramref name="file"/> (e.g. "elementwise.cu").</summary>
    public CudaKernel Kernel(string file, string function)
    {
        string id = file + ":" + function;
        if (_kernels.TryGetValue(id, out var k)) return k;
        if (!_modules.TryGetValue(file, out nint module))
        {
            Graphs.RequireEager($"loading kernel module {file}");
            module = LoadModule(file);
            _modules[file] = module;
        }
        byte[] nameBytes = Encoding.UTF8.GetBytes(function + "\0");
        nint f;
        fixed (byte* n = nameBytes) Check(cuModuleGetFunction(out f, module, n), $"cuModuleGetFunction({function})");
        k = new CudaKernel(this, function, f);
        _kernels[id] = k;
        return k;
    }

    /// <summary>The embedded CUDA source of <paramref name="file"/>, with the shared header in front.</summary>
    internal static string Source(string file)
    {
        static string Read(string name)
        {
            var asm = typeof(CudaDevice).Assembly;
            using var s = asm.GetManifestResourceStream("MiniMaxSharp.Cuda.Kernels." + name)
                ?? throw new InvalidOperationException($"kernel source {name} is not embedded in {asm.GetName().Name}");
            using var reader = new StreamReader(s);
            return reader.ReadToEnd();
        }
        return Read("common.cuh") + "\n#line 1 \"" + file + "\"\n" + Read(file);
    }

    private nint LoadModule(string file)
    {
        string source = Source(file);
        if (DependentLaunch) source = WithDependentLaunchPrologue(source, out _);
        var (target, cubin) = CompileTarget();
        string[] options = ["--gpu-architecture=" + target, "--std=c++17", "-default-device", .. ExtraNvrtcOptions()];
        string key = KernelCache.Key(source, options, target, NvrtcVersion);
        string ext = cubin ? ".cubin" : ".ptx";
        byte[] image = _cache.TryRead(key, ext) ?? Compile(file, source, options, cubin);
        _cache.Write(key, ext, image);
        nint module;
        fixed (byte* p = image) Check(cuModuleLoadData(out module, p), $"cuModuleLoadData({file}, {target})");
        return module;
    }

    private const string PtxasReport = "--ptxas-options=-v";

    /// <summary>
    /// For kernel work on the GPU machine (which has no SDK to rebuild with): MINIMAXSHARP_NVRTC_VERBOSE=1 compiles with
    /// ptxas's report (registers, spills, wgmma serialisation) and prints NVRTC's log to stderr; MINIMAXSHARP_NVRTC_DEFINES
    /// ("A B=1") adds -D options. Both are part of the kernel cache key, like every option.
    /// </summary>
    private static string[] ExtraNvrtcOptions() => ExtraNvrtcOptions(
        Environment.GetEnvironmentVariable("MINIMAXSHARP_NVRTC_VERBOSE"), Environment.GetEnvironmentVariable("MINIMAXSHARP_NVRTC_DEFINES"));

    internal static string[] ExtraNvrtcOptions(string? verbose, string? defines)
    {
        var extra = new List<string>();
        if (verbose?.Trim() == "1") extra.Add(PtxasReport);
        if (!string.IsNullOrWhiteSpace(defines))
            extra.AddRange(defines.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(d => "-D" + d));
        return [.. extra];
    }

    private static string ProgramLog(nint program)
    {
        Nvrtc.nvrtcGetProgramLogSize(program, out nuint logSize);
        var log = new byte[(int)logSize + 1];
        fixed (byte* l = log) Nvrtc.nvrtcGetProgramLog(program, l);
        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    /// <summary>Whether modules compile for sm_90a (an sm_90 GPU and NVRTC 12 or later, which introduced the target).</summary>
    public bool ArchSpecificTarget => ComputeCapability == 90 && NvrtcVersion.Major >= 12;

    /// <summary>sm_XX machine code when this NVRTC knows the GPU; else PTX of the newest architecture it knows, for the driver to compile.</summary>
    private (string Target, bool Cubin) CompileTarget()
    {
        Nvrtc.Check(Nvrtc.nvrtcGetNumSupportedArchs(out int n), "nvrtcGetNumSupportedArchs");
        var archs = new int[n];
        fixed (int* a = archs) Nvrtc.Check(Nvrtc.nvrtcGetSupportedArchs(a), "nvrtcGetSupportedArchs");
        // On sm_90 the arch-specific target sm_90a: it enables wgmma and setmaxnreg (lightning_wgmma), and its machine code
        // runs only on sm_90 GPUs, which is all a runtime-compiled module has to run on.
        if (archs.Contains(ComputeCapability)) return (ArchSpecificTarget ? "sm_90a" : $"sm_{ComputeCapability}", true);
        int best = archs.Where(a => a <= ComputeCapability).DefaultIfEmpty(0).Max();
        if (best == 0) throw new CudaUnavailableException($"NVRTC {NvrtcVersion.Major}.{NvrtcVersion.Minor} supports no architecture at or below the GPU's compute capability {ComputeCapability / 10}.{ComputeCapability % 10}");
        return ($"compute_{best}", false);
    }

    private static byte[] Compile(string file, string source, string[] options, bool cubin)
    {
        byte[] src = Encoding.UTF8.GetBytes(source + "\0");
        byte[] name = Encoding.UTF8.GetBytes(file + "\0");
        nint program;
        fixed (byte* s = src, n = name) Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out program, s, n, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var optionBytes = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = optionBytes.Select(b => GCHandle.Alloc(b, GCHandleType.Pinned)).ToArray();
            int result;
            try
            {
                byte** opts = stackalloc byte*[options.Length];
                for (int i = 0; i < options.Length; i++) opts[i] = (byte*)handles[i].AddrOfPinnedObject();
                result = Nvrtc.nvrtcCompileProgram(program, options.Length, opts);
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            if (result != 0)
                throw new CudaException($"NVRTC could not compile {file} ({string.Join(" ", options)}):\n{ProgramLog(program)}");
            if (options.Contains(PtxasReport)) Console.Error.WriteLine($"NVRTC {file}:\n{ProgramLog(program)}");
            if (cubin)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out nuint size), "nvrtcGetCUBINSize");
                var image = new byte[(int)size];
                fixed (byte* p = image) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, p), "nvrtcGetCUBIN");
                return image;
            }
            else
            {
                Nvrtc.Check(Nvrtc.nvrtcGetPTXSize(program, out nuint size), "nvrtcGetPTXSize");
                var image = new byte[(int)size];   // includes the terminating NUL cuModuleLoadData needs
                fixed (byte* p = image) Nvrtc.Check(Nvrtc.nvrtcGetPTX(program, p), "nvrtcGetPTX");
                return image;
            }
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            MakeCurrent();
            if (_stream != 0) cuStreamSynchronize(_stream);
            if (_cublas != 0) Cublas.cublasDestroy(_cublas);
            foreach (nint m in _modules.Values) cuModuleUnload(m);
            if (_stream != 0) cuStreamDestroy(_stream);
            if (Context != 0) cuDevicePrimaryCtxRelease(Ordinal);
        }
        finally
        {
            _cublas = 0;
            _stream = 0;
            _modules.Clear();
            _kernels.Clear();
            _disposed = true;
        }
    }
}

/// <summary>A kernel argument: a device pointer, int, long or float, passed in an 8-byte slot.</summary>
internal readonly struct KernelArg
{
    private KernelArg(ulong bits) => Bits = bits;
    public ulong Bits { get; }
    public static implicit operator KernelArg(int v) => new((uint)v);
    public static implicit operator KernelArg(long v) => new((ulong)v);
    public static implicit operator KernelArg(ulong v) => new(v);
    public static implicit operator KernelArg(float v) => new(BitConverter.SingleToUInt32Bits(v));
    public static implicit operator KernelArg(CudaTensor t) => new(t.Pointer);
}

/// <summary>A compiled kernel function.</summary>
internal sealed unsafe class CudaKernel(CudaDevice device, string name, nint function)
{
    private int _sharedOptIn;

    public string Name { get; } = name;

    private void OptInSharedMemory(int sharedBytes)
    {
        if (sharedBytes <= 48 * 1024 || sharedBytes <= _sharedOptIn) return;
        if (sharedBytes > device.MaxSharedMemoryPerBlock)
            throw new CudaException($"kernel {Name} needs {sharedBytes} bytes of shared memory; the GPU allows {device.MaxSharedMemoryPerBlock}");
        Check(cuFuncSetAttribute(function, FuncAttrMaxDynamicSharedSizeBytes, sharedBytes), $"cuFuncSetAttribute({Name})");
        _sharedOptIn = sharedBytes;
    }

    /// <summary>Launches on the device's stream. Small scalars sit in the low bytes of their slot (little endian).</summary>
    public void Launch(uint gridX, uint gridY, uint gridZ, uint block, int sharedBytes, params ReadOnlySpan<KernelArg> args)
    {
        if (gridX == 0 || gridY == 0 || gridZ == 0) return;
        OptInSharedMemory(sharedBytes);
        ulong* slots = stackalloc ulong[Math.Max(1, args.Length)];
        void** pointers = stackalloc void*[Math.Max(1, args.Length)];
        for (int i = 0; i < args.Length; i++)
        {
            slots[i] = args[i].Bits;
            pointers[i] = slots + i;
        }
        if (!device.Graphs.Launch(Name, (ulong)function, gridX, gridY, gridZ, block, sharedBytes, new ReadOnlySpan<ulong>(slots, args.Length))) return;
        if (device.DependentLaunch)
        {
            LaunchAttribute attribute = default;
            attribute.Id = LaunchAttributeProgrammaticStreamSerialization;
            *(int*)attribute.Value = 1;
            var config = new LaunchConfig
            {
                GridDimX = gridX, GridDimY = gridY, GridDimZ = gridZ, BlockDimX = block, BlockDimY = 1, BlockDimZ = 1,
                SharedMemBytes = (uint)sharedBytes, Stream = device.Stream, Attributes = &attribute, AttributeCount = 1,
            };
            Check(cuLaunchKernelEx(&config, function, pointers, null), $"cuLaunchKernelEx({Name}, grid {gridX}x{gridY}x{gridZ}, block {block}, programmatic dependent launch)");
            return;
        }
        Check(cuLaunchKernel(function, gridX, gridY, gridZ, block, 1, 1, (uint)sharedBytes, device.Stream, pointers, null),
            $"cuLaunchKernel({Name}, grid {gridX}x{gridY}x{gridZ}, block {block})");
    }
}
