using System.Text.RegularExpressions;
using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>Programmatic dependent launch (MINIMAXSHARP_CUDA_PDL=1) is only safe if every kernel waits for its
/// predecessor first: the prologue must open every kernel of every embedded file, before anything else.</summary>
public sealed class DependentLaunchTests
{
    /// <summary>Every kernel file embedded in the CUDA assembly.</summary>
    public static TheoryData<string> KernelFiles()
    {
        const string prefix = "MiniMaxSharp.Cuda.Kernels.";
        var files = typeof(CudaBackend).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n[prefix.Length..]).ToArray();
        Assert.True(files.Length >= 7, string.Join(", ", files));
        return [.. files];
    }

    [Theory]
    [MemberData(nameof(KernelFiles))]
    public void EveryKernelOpensWithThePrologue(string file)
    {
        string source = CudaDevice.Source(file);
        int declared = Regex.Matches(source, "extern \"C\"").Count;
        string patched = CudaDevice.WithDependentLaunchPrologue(source, out int kernels);
        Assert.True(declared > 0);
        Assert.Equal(declared, kernels);
        // The call is the first statement of each kernel body, and the helper is defined before any kernel.
        Assert.Equal(declared, Regex.Matches(patched, @"\)\s*\{ dependent_launch_prologue\(\);").Count);
        Assert.True(patched.IndexOf("void dependent_launch_prologue()", StringComparison.Ordinal) < patched.IndexOf("extern \"C\"", StringComparison.Ordinal));
        Assert.Contains("griddepcontrol.wait;", patched);
    }
}
