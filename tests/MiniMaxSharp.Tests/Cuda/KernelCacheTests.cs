using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Tests.Checkpoints;

namespace MiniMaxSharp.Tests.Cuda;

public sealed class KernelCacheTests
{
    private static readonly string[] Options = ["--gpu-architecture=sm_90", "--std=c++17"];

    [Fact]
    public void TheKeyIsStableForTheSameInputs()
    {
        string a = KernelCache.Key("__global__ void f() {}", Options, "sm_90", (13, 0));
        string b = KernelCache.Key("__global__ void f() {}", [.. Options], "sm_90", (13, 0));
        Assert.Equal(a, b);
        Assert.Equal(64, a.Length);   // SHA-256, hex
    }

    [Fact]
    public void SourceOptionsTargetAndCompilerVersionEachChangeTheKey()
    {
        string baseline = KernelCache.Key("src", Options, "sm_90", (13, 0));
        string[] variants =
        [
            KernelCache.Key("src ", Options, "sm_90", (13, 0)),
            KernelCache.Key("src", ["--gpu-architecture=sm_90"], "sm_90", (13, 0)),
            KernelCache.Key("src", Options, "sm_89", (13, 0)),
            KernelCache.Key("src", Options, "compute_90", (13, 0)),
            KernelCache.Key("src", Options, "sm_90", (12, 8)),
            KernelCache.Key("src", Options, "sm_90", (13, 1)),
        ];
        Assert.DoesNotContain(baseline, variants);
        Assert.Equal(variants.Length, variants.Distinct().Count());
    }

    [Fact]
    public void OptionsCannotRunTogetherIntoTheSameKey()
    {
        // Without length prefixes, ["a", "b"] + "c" and ["a\nb"] + "c" would hash the same text.
        Assert.NotEqual(KernelCache.Key("c", ["a", "b"], "sm_90", (13, 0)), KernelCache.Key("c", ["a\nb"], "sm_90", (13, 0)));
        Assert.NotEqual(KernelCache.Key("b\nc", ["a"], "sm_90", (13, 0)), KernelCache.Key("c", ["a", "b"], "sm_90", (13, 0)));
    }

    [Fact]
    public void TheDefaultFolderFollowsTheEnvironment()
    {
        Assert.Equal("/x/k", KernelCache.DefaultDirectory(n => n == "MINIMAXSHARP_KERNEL_CACHE" ? "/x/k" : n == "HOME" ? "/home/u" : null));
        Assert.Equal(Path.Combine("/xdg", "minimaxsharp", "kernels"), KernelCache.DefaultDirectory(n => n switch { "XDG_CACHE_HOME" => "/xdg", "HOME" => "/home/u", _ => null }));
        Assert.Equal(Path.Combine("/home/u", ".cache", "minimaxsharp", "kernels"), KernelCache.DefaultDirectory(n => n == "HOME" ? "/home/u" : null));
        Assert.Null(KernelCache.DefaultDirectory(_ => null));
    }

    [Fact]
    public void WrittenModulesReadBackAndLeaveNoTemporaryFiles()
    {
        using var dir = new TempDirectory();
        var cache = new KernelCache(Path.Combine(dir.Path, "kernels"));
        string key = KernelCache.Key("src", Options, "sm_90", (13, 0));
        Assert.Null(cache.TryRead(key, ".cubin"));
        cache.Write(key, ".cubin", [1, 2, 3]);
        cache.Write(key, ".cubin", [4, 5]);
        Assert.Equal([4, 5], cache.TryRead(key, ".cubin"));
        Assert.Null(cache.TryRead(key, ".ptx"));
        Assert.Equal([key + ".cubin"], Directory.GetFiles(cache.Directory!).Select(Path.GetFileName));
    }

    [Fact]
    public void EveryKernelFileIsEmbeddedWithTheSharedHeader()
    {
        foreach (string file in new[] { "elementwise.cu", "lightning.cu", "attention.cu", "moe.cu", "backward_attention.cu" })
        {
            string source = CudaDevice.Source(file);
            Assert.Contains("__device__ __forceinline__ float bf2f", source);
            Assert.Contains("extern \"C\" __global__", source);
        }
    }
}
