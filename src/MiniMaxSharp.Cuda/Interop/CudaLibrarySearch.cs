using System.Reflection;
using System.Runtime.InteropServices;

namespace MiniMaxSharp.Backends.Cuda.Interop;

/// <summary>The native libraries the CUDA backend binds to, by the name the bindings import.</summary>
internal enum CudaLibrary
{
    Driver,
    Nvrtc,
    Cublas,
    CublasLt,
    /// <summary>cuDNN 9's graph API (optional: the fused attention uses it when it is there).</summary>
    Cudnn,
}

/// <summary>
/// Where the CUDA libraries are looked for, in order: $CUDA_HOME and $CUDA_PATH (lib64, lib,
/// targets/x86_64-linux/lib), every $LD_LIBRARY_PATH entry, /usr/local/cuda, the driver's usual folders,
/// and the lib folders of pip-installed NVIDIA wheels (site-packages/nvidia/*/lib, of the active virtual
/// environment, $PYTHONPATH and the usual interpreter locations). In each folder the newest soname wins
/// (CUDA 13, then 12). Last come the bare sonames, for the system loader's own search (ld.so.cache).
/// The search is a pure function of the environment and the file system, so it is unit-tested.
/// </summary>
internal static class CudaLibrarySearch
{
    /// <summary>Import names used by the bindings' LibraryImport attributes.</summary>
    public const string DriverImport = "cuda";
    public const string NvrtcImport = "nvrtc";
    public const string CublasImport = "cublas";
    public const string CudnnImport = "cudnn";

    public static IReadOnlyList<string> FileNames(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => ["libcuda.so.1", "libcuda.so"],
        CudaLibrary.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
        CudaLibrary.Cublas => ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
        CudaLibrary.CublasLt => ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
        CudaLibrary.Cudnn => ["libcudnn_graph.so.9"],
        _ => throw new ArgumentOutOfRangeException(nameof(library)),
    };

    /// <summary>The folders searched, in order, without duplicates; only folders that exist.</summary>
    public static IReadOnlyList<string> Directories(Func<string, string?> getEnvironment)
    {
        var dirs = new List<string>();
        void Add(string? dir)
        {
            if (string.IsNullOrWhiteSpace(dir)) return;
            string full;
            try { full = Path.GetFullPath(dir); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return; }
            if (Directory.Exists(full) && !dirs.Contains(full)) dirs.Add(full);
        }
        void AddToolkit(string? root)
        {
            if (string.IsNullOrWhiteSpace(root)) return;
            Add(Path.Combine(root, "lib64"));
            Add(Path.Combine(root, "lib"));
            Add(Path.Combine(root, "targets", "x86_64-linux", "lib"));
        }
        AddToolkit(getEnvironment("CUDA_HOME"));
        AddToolkit(getEnvironment("CUDA_PATH"));
        foreach (string d in Split(getEnvironment("LD_LIBRARY_PATH"))) Add(d);
        AddToolkit("/usr/local/cuda");
        // Where container images and distributions put the driver library.
        Add("/usr/local/nvidia/lib64");
        Add("/usr/lib/x86_64-linux-gnu");
        Add("/usr/lib64");
        foreach (string site in SitePackages(getEnvironment))
        {
            string nvidia = Path.Combine(site, "nvidia");
            if (!Directory.Exists(nvidia)) continue;
            foreach (string package in SortedSubdirectories(nvidia))
            {
                Add(Path.Combine(package, "lib"));
                Add(Path.Combine(package, "lib64"));
            }
        }
        return dirs;
    }

    /// <summary>Full paths of existing candidate files, then the bare sonames.</summary>
    public static IReadOnlyList<string> Candidates(CudaLibrary library, Func<string, string?> getEnvironment)
    {
        var result = new List<string>();
        foreach (string dir in Directories(getEnvironment))
            foreach (string name in FileNames(library))
            {
                string path = Path.Combine(dir, name);
                if (File.Exists(path)) result.Add(path);
            }
        result.AddRange(FileNames(library));
        return result;
    }

    /// <summary>site-packages / dist-packages folders that pip may have installed NVIDIA wheels into.</summary>
    internal static IEnumerable<string> SitePackages(Func<string, string?> getEnvironment)
    {
        foreach (string p in Split(getEnvironment("PYTHONPATH"))) yield return p;
        var roots = new List<string>();
        if (getEnvironment("VIRTUAL_ENV") is { Length: > 0 } venv) roots.Add(venv);
        if (getEnvironment("CONDA_PREFIX") is { Length: > 0 } conda) roots.Add(conda);
        if (getEnvironment("HOME") is { Length: > 0 } home) roots.Add(Path.Combine(home, ".local"));
        roots.Add("/usr/local");
        roots.Add("/usr");
        // Images often keep a virtual environment under /opt/<name>/.venv (the device machine does).
        if (Directory.Exists("/opt"))
            foreach (string opt in SortedSubdirectories("/opt"))
            {
                roots.Add(Path.Combine(opt, ".venv"));
                roots.Add(Path.Combine(opt, "venv"));
            }
        foreach (string root in roots)
        {
            string lib = Path.Combine(root, "lib");
            if (!Directory.Exists(lib)) continue;
            foreach (string python in SortedSubdirectories(lib).Where(d => Path.GetFileName(d).StartsWith("python3", StringComparison.Ordinal)).Reverse())
            {
                yield return Path.Combine(python, "site-packages");
                yield return Path.Combine(python, "dist-packages");
            }
        }
    }

    private static IEnumerable<string> Split(string? pathList) =>
        string.IsNullOrEmpty(pathList) ? [] : pathList.Split(':', StringSplitOptions.RemoveEmptyEntries);

    private static string[] SortedSubdirectories(string dir)
    {
        try
        {
            var d = Directory.GetDirectories(dir);
            Array.Sort(d, StringComparer.Ordinal);
            return d;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}

/// <summary>
/// Loads the CUDA libraries for the bindings (a DllImport resolver for this assembly), so that a plain
/// <c>dotnet build</c> needs no toolkit and a published binary finds CUDA 12 or 13 wherever it is.
/// </summary>
internal static class CudaLibraries
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<CudaLibrary, nint> Loaded = [];
    private static readonly Dictionary<CudaLibrary, string> LoadedFrom = [];
    private static bool _resolverSet;

    public static void EnsureResolver()
    {
        lock (Gate)
        {
            if (_resolverSet) return;
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
            _resolverSet = true;
        }
    }

    /// <summary>Where each loaded library came from (for the verify report).</summary>
    public static IReadOnlyDictionary<CudaLibrary, string> Sources
    {
        get { lock (Gate) return new Dictionary<CudaLibrary, string>(LoadedFrom); }
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        CudaLibrary? lib = name switch
        {
            CudaLibrarySearch.DriverImport => CudaLibrary.Driver,
            CudaLibrarySearch.NvrtcImport => CudaLibrary.Nvrtc,
            CudaLibrarySearch.CublasImport => CudaLibrary.Cublas,
            CudaLibrarySearch.CudnnImport => CudaLibrary.Cudnn,
            _ => null,
        };
        return lib is { } l ? Load(l, Environment.GetEnvironmentVariable) : 0;
    }

    /// <summary>Loads a library (once), or throws <see cref="CudaUnavailableException"/> listing where it looked.</summary>
    public static nint Load(CudaLibrary library, Func<string, string?> getEnvironment)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(library, out nint h)) return h;
            var (handle, path) = LoadFirst(library, getEnvironment, NativeLibrary.TryLoad);
            string? dir = Path.IsPathRooted(path) ? Path.GetDirectoryName(path) : null;
            if (dir is not null) PreloadCompanions(library, dir);
            Loaded[library] = handle;
            LoadedFrom[library] = path;
            return handle;
        }
    }

    internal delegate bool TryLoadLibrary(string path, out nint handle);

    /// <summary>The first candidate that loads, or a <see cref="CudaUnavailableException"/> naming every candidate tried.</summary>
    internal static (nint Handle, string Path) LoadFirst(CudaLibrary library, Func<string, string?> getEnvironment, TryLoadLibrary tryLoad)
    {
        var candidates = CudaLibrarySearch.Candidates(library, getEnvironment);
        foreach (string candidate in candidates)
            if (tryLoad(candidate, out nint h)) return (h, candidate);
        throw new CudaUnavailableException(
            $"CUDA is not available: no {Describe(library)} could be loaded (tried {string.Join(", ", candidates)}). "
            + "Install the NVIDIA driver and CUDA 12 or 13 (toolkit, or the pip wheels nvidia-cuda-nvrtc and nvidia-cublas), or set CUDA_HOME / LD_LIBRARY_PATH.");
    }

    // cuBLAS needs cuBLASLt and NVRTC its builtins library; neither may sit on the loader's path, so load
    // the ones beside the library found: the loader then matches them by soname.
    private static void PreloadCompanions(CudaLibrary library, string dir)
    {
        if (library == CudaLibrary.Cublas)
        {
            foreach (string name in CudaLibrarySearch.FileNames(CudaLibrary.CublasLt))
                if (File.Exists(Path.Combine(dir, name)) && NativeLibrary.TryLoad(Path.Combine(dir, name), out _)) break;
        }
        else if (library == CudaLibrary.Nvrtc)
        {
            foreach (string f in Directory.GetFiles(dir, "libnvrtc-builtins.so*").OrderByDescending(f => f.Length))
                if (NativeLibrary.TryLoad(f, out _)) break;
        }
        else if (library == CudaLibrary.Cudnn)
        {
            // The graph library opens its engine libraries by soname at run time.
            foreach (string name in CudnnCompanions)
                if (File.Exists(Path.Combine(dir, name))) NativeLibrary.TryLoad(Path.Combine(dir, name), out _);
        }
    }

    private static readonly string[] CudnnCompanions =
    [
        "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9",
        "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9", "libcudnn.so.9",
    ];

    private static string Describe(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => "CUDA driver library (libcuda.so.1)",
        CudaLibrary.Nvrtc => "NVRTC runtime compiler (libnvrtc.so.13 or .12)",
        CudaLibrary.Cublas => "cuBLAS (libcublas.so.13 or .12)",
        CudaLibrary.CublasLt => "cuBLASLt (libcublasLt.so.13 or .12)",
        CudaLibrary.Cudnn => "cuDNN 9 (libcudnn_graph.so.9)",
        _ => library.ToString(),
    };
}
