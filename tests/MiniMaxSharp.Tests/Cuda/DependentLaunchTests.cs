using System.Text.RegularExpressions;
using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>Programmatic dependent launch (MINIMAXSHARP_CUDA_PDL=1) is only safe if every kernel waits for its
/// predecessor before reading its output: the wait opens every kernel of every embedded file, except kernels marked
/// PDL_MANUAL, which wait themselves after the loads that do not depend on the predecessor.</summary>
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
    public void EveryKernelWaitsForItsPredecessor(string file)
    {
        string source = CudaDevice.Source(file);
        int declared = Regex.Matches(source, "extern \"C\"").Count;
        int manual = Regex.Matches(source, @"// PDL_MANUAL\s*\n\s*extern ""C""").Count;
        string patched = CudaDevice.WithDependentLaunchPrologue(source, out int kernels);
        Assert.True(declared > 0);
        Assert.Equal(declared, kernels);
        // The wait is the first statement of every kernel body, except in kernels marked PDL_MANUAL, which call it themselves.
        Assert.Equal(declared - manual, Regex.Matches(patched, @"\)\s*\{ pdl_wait_then_release\(\);").Count);
        foreach (Match m in Regex.Matches(patched, @"// PDL_MANUAL\s*\n\s*extern ""C"" __global__ void (\w+)"))
        {
            int bodyStart = patched.IndexOf('{', m.Index);
            int next = patched.IndexOf("extern \"C\"", bodyStart, StringComparison.Ordinal);
            string body = next < 0 ? patched[bodyStart..] : patched[bodyStart..next];
            // It waits itself, or through matvec_row, whose own order is checked below.
            Assert.True(body.Contains("pdl_wait_then_release();", StringComparison.Ordinal) || body.Contains("matvec_row(", StringComparison.Ordinal),
                $"{m.Groups[1].Value} is marked PDL_MANUAL but never waits");
        }
        Assert.Contains("griddepcontrol.wait;", patched);
    }

    [Fact]
    public void TheFewRowProductsWaitAfterIssuingTheirWeightLoads()
    {
        string source = CudaDevice.Source("elementwise.cu");
        int at = source.IndexOf("__device__ __forceinline__ void matvec_row(", StringComparison.Ordinal);
        Assert.True(at > 0);
        string body = source[at..source.IndexOf("\n}", at, StringComparison.Ordinal)];
        int prefetch = body.IndexOf("matvec_prefetch(", StringComparison.Ordinal), wait = body.IndexOf("pdl_wait_then_release();", StringComparison.Ordinal);
        int stage = body.IndexOf("matvec_stage_x(", StringComparison.Ordinal), compute = body.IndexOf("matvec_lane(", StringComparison.Ordinal);
        Assert.True(prefetch > 0 && prefetch < wait && wait < stage && stage < compute, body);
        foreach (string kernel in new[] { "matvec_bf16", "matvec_bf16_many" })
        {
            int k = Regex.Match(source, @"// PDL_MANUAL\s*\n\s*extern ""C"" __global__ void " + kernel + @"\(").Index;
            Assert.True(k > 0, kernel);
            Assert.Contains("matvec_row(", source[k..source.IndexOf("\n}", k, StringComparison.Ordinal)]);
        }
    }
}
