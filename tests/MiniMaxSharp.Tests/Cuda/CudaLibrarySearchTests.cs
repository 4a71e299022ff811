using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Backends.Cuda.Interop;
using MiniMaxSharp.Tests.Checkpoints;

namespace MiniMaxSharp.Tests.Cuda;

public sealed class CudaLibrarySearchTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Touch(params string[] parts)
    {
        string path = Path.Combine([_dir.Path, .. parts]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, []);
        return path;
    }

    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.Where(v => v.Name == name).Select(v => v.Value).FirstOrDefault();

    [Fact]
    public void CudaHomeComesFirstAndTheNewestSonameWinsInsideAFolder()
    {
        string v12 = Touch("toolkit", "lib64", "libcublas.so.12");
        string v13 = Touch("toolkit", "lib64", "libcublas.so.13");
        string ld = Touch("ld", "libcublas.so.13");
        var env = Env(("CUDA_HOME", Path.Combine(_dir.Path, "toolkit")), ("LD_LIBRARY_PATH", Path.Combine(_dir.Path, "ld")));

        var candidates = CudaLibrarySearch.Candidates(CudaLibrary.Cublas, env);

        Assert.Equal(v13, candidates[0]);
        Assert.Equal(v12, candidates[1]);
        Assert.Equal(ld, candidates[2]);
        // The bare sonames close the list, for the system loader's own search.
        Assert.Equal(["libcublas.so.13", "libcublas.so.12", "libcublas.so"], candidates.TakeLast(3));
    }

    [Fact]
    public void LdLibraryPathEntriesKeepTheirOrderAndMissingFoldersAreSkipped()
    {
        string a = Touch("a", "libnvrtc.so.12");
        string b = Touch("b", "libnvrtc.so.13");
        var env = Env(("LD_LIBRARY_PATH", $"{Path.Combine(_dir.Path, "missing")}::{Path.Combine(_dir.Path, "a")}:{Path.Combine(_dir.Path, "b")}"));

        var dirs = CudaLibrarySearch.Directories(env);
        var candidates = CudaLibrarySearch.Candidates(CudaLibrary.Nvrtc, env);

        Assert.DoesNotContain(Path.Combine(_dir.Path, "missing"), dirs);
        Assert.True(candidates.ToList().IndexOf(a) < candidates.ToList().IndexOf(b), string.Join("\n", candidates));
    }

    [Fact]
    public void PipWheelsOfTheActiveVirtualEnvironmentAreFound()
    {
        string nvrtc = Touch("venv", "lib", "python3.12", "site-packages", "nvidia", "cu13", "lib", "libnvrtc.so.13");
        string cublas = Touch("venv", "lib", "python3.12", "site-packages", "nvidia", "cublas", "lib", "libcublas.so.12");
        var env = Env(("VIRTUAL_ENV", Path.Combine(_dir.Path, "venv")));

        Assert.Contains(nvrtc, CudaLibrarySearch.Candidates(CudaLibrary.Nvrtc, env));
        Assert.Contains(cublas, CudaLibrarySearch.Candidates(CudaLibrary.Cublas, env));
    }

    [Fact]
    public void CudnnIsItsGraphLibraryFromAPipWheelOrTheLoaderPath()
    {
        // PyTorch's wheel layout (site-packages/nvidia/cudnn/lib); LD_LIBRARY_PATH comes first, as for every library.
        string wheel = Touch("venv", "lib", "python3.12", "site-packages", "nvidia", "cudnn", "lib", "libcudnn_graph.so.9");
        string ld = Touch("ld", "libcudnn_graph.so.9");
        var env = Env(("VIRTUAL_ENV", Path.Combine(_dir.Path, "venv")), ("LD_LIBRARY_PATH", Path.Combine(_dir.Path, "ld")));

        var candidates = CudaLibrarySearch.Candidates(CudaLibrary.Cudnn, env).ToList();

        Assert.Equal(ld, candidates[0]);
        Assert.Contains(wheel, candidates);
        Assert.Equal("libcudnn_graph.so.9", candidates[^1]);
    }

    [Fact]
    public void TheDriverIsLookedUpByItsSoname()
    {
        string driver = Touch("driver", "libcuda.so.1");
        var candidates = CudaLibrarySearch.Candidates(CudaLibrary.Driver, Env(("LD_LIBRARY_PATH", Path.Combine(_dir.Path, "driver"))));
        Assert.Equal(driver, candidates[0]);
        Assert.Equal("libcuda.so.1", candidates[^2]);
    }

    [Fact]
    public void NoLoadableDriverGivesOneClearUnavailableError()
    {
        string planted = Touch("toolkit", "lib64", "libcuda.so.1");
        var tried = new List<string>();
        var e = Assert.Throws<CudaUnavailableException>(() => CudaLibraries.LoadFirst(CudaLibrary.Driver,
            Env(("CUDA_HOME", Path.Combine(_dir.Path, "toolkit"))),
            (string path, out nint handle) => { tried.Add(path); handle = 0; return false; }));

        Assert.StartsWith("CUDA is not available: no CUDA driver library (libcuda.so.1) could be loaded", e.Message);
        Assert.Contains(planted, e.Message);
        Assert.Contains("CUDA_HOME", e.Message);
        Assert.Equal(tried, CudaLibrarySearch.Candidates(CudaLibrary.Driver, Env(("CUDA_HOME", Path.Combine(_dir.Path, "toolkit")))));
    }

    [Fact]
    public void TheFirstCandidateThatLoadsIsUsed()
    {
        Touch("x", "libcublas.so.13");
        string second = Touch("y", "libcublas.so.12");
        var env = Env(("LD_LIBRARY_PATH", $"{Path.Combine(_dir.Path, "x")}:{Path.Combine(_dir.Path, "y")}"));
        var (handle, path) = CudaLibraries.LoadFirst(CudaLibrary.Cublas, env,
            (string p, out nint h) => { h = p == second ? 42 : 0; return h != 0; });
        Assert.Equal(42, handle);
        Assert.Equal(second, path);
    }
}
