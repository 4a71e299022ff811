using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>How the CUDA lightning prefill splits sequences into chunks (host-side planning, no GPU needed).</summary>
public sealed class LightningChunkPlanTests
{
    private static int ItemCount(BatchLayout layout, int heads, int chunk) =>
        layout.Sequences.Sum(s => (s.TokenCount + chunk - 1) / chunk) * heads;

    [Fact]
    public void EnoughSequencesAndHeadsKeepOneChunkPerSequence()
    {
        var layout = BatchLayout.Create([16384, 9000, 16384, 16384, 16384, 16384, 16384, 16384], new int[8]);
        Assert.Equal(16384, CudaBackend.LightningChunkLength(layout, heads: 32, multiprocessors: 132));
    }

    [Fact]
    public void ALongSingleSequenceIsSplitIntoAboutTwoItemsPerMultiprocessor()
    {
        var layout = BatchLayout.Create([131072], [0]);
        int chunk = CudaBackend.LightningChunkLength(layout, heads: 16, multiprocessors: 132);
        Assert.Equal(0, chunk % 64);
        int items = ItemCount(layout, 16, chunk);
        Assert.InRange(items, 2 * 132, 2 * 132 + 16);
    }

    [Fact]
    public void ShortSequencesUseChunksOfAtLeast256Tokens()
    {
        var layout = BatchLayout.Create([600], [0]);
        Assert.Equal(256, CudaBackend.LightningChunkLength(layout, heads: 2, multiprocessors: 132));
        var tiny = BatchLayout.Create([100], [0]);
        Assert.Equal(100, CudaBackend.LightningChunkLength(tiny, heads: 2, multiprocessors: 132));
    }

    [Theory]
    [InlineData(8, 32, 16384, 16384)]     // 256 pairs fill the GPU: one chunk per sequence
    [InlineData(1, 16, 131072, 16384)]    // 8 chunks per head: 128 items, one wave
    [InlineData(1, 64, 65536, 32768)]     // 2 chunks per head: 128 items
    [InlineData(1, 66, 4096, 2048)]       // exactly 132 items
    public void ThePipelinedKernelSplitsIntoOneFullWave(int batch, int heads, int tokens, int expected)
    {
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        Assert.Equal(expected, CudaBackend.LightningPipeChunkLength(layout, heads, multiprocessors: 132));
    }

    [Fact]
    public void ThePipelinedPlanTakesTheShortestChunkThatFitsOneWave()
    {
        var layout = BatchLayout.Create([3000, 1500, 70, 9000], new int[4]);
        int chunk = CudaBackend.LightningPipeChunkLength(layout, heads: 4, multiprocessors: 132);
        Assert.Equal(0, chunk % 64);
        Assert.True(ItemCount(layout, 4, chunk) <= 132);
        Assert.True(ItemCount(layout, 4, chunk - 64) > 132);
    }

    [Fact]
    public void ThePipelinedPlanKeepsChunksOfAtLeast256Tokens()
    {
        Assert.Equal(256, CudaBackend.LightningPipeChunkLength(BatchLayout.Create([600], [0]), heads: 2, multiprocessors: 132));
        Assert.Equal(100, CudaBackend.LightningPipeChunkLength(BatchLayout.Create([100], [0]), heads: 2, multiprocessors: 132));
    }

    [Theory]
    [InlineData(1, 64, 65536, 2)]     // 2 chunks of 32K: pass 0 has 64 items, in halves 128
    [InlineData(1, 16, 131072, 1)]    // 8 chunks of 16K: pass 0 has 112 items already
    [InlineData(8, 32, 16384, 1)]     // one chunk per sequence: no pass 0
    public void PassZeroSplitsItsChunksWhileItStillFitsOneWave(int batch, int heads, int tokens, int expected)
    {
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        int chunk = CudaBackend.LightningPipeChunkLength(layout, heads, multiprocessors: 132);
        int split = CudaBackend.LightningPass0Split(layout, heads, chunk, multiprocessors: 132);
        Assert.Equal(expected, split);
        Assert.Equal(0, chunk % (64 * split));
    }

    [Fact]
    public void PassZeroSubChunksAreWholeBlocksOfAtLeast256Tokens()
    {
        // 1344 = 21 blocks of 64: 3 sub-chunks of 448 (2 would be half blocks, 4 to 7 too, or under 256 tokens).
        Assert.Equal(3, CudaBackend.LightningPass0Split(BatchLayout.Create([2688], [0]), heads: 1, chunk: 1344, multiprocessors: 8));
        Assert.Equal(2, CudaBackend.LightningPass0Split(BatchLayout.Create([1024], [0]), heads: 1, chunk: 512, multiprocessors: 100));
        Assert.Equal(1, CudaBackend.LightningPass0Split(BatchLayout.Create([1024], [0]), heads: 1, chunk: 512, multiprocessors: 1));
        Assert.Equal(1, CudaBackend.LightningPass0Split(BatchLayout.Create([512], [0]), heads: 1, chunk: 256, multiprocessors: 100));
    }

    [Fact]
    public void TheKernelChoiceIsReadFromItsEnvironmentVariable()
    {
        Assert.Equal(LightningPrefillKernel.Hopper, CudaBackend.ParseLightningKernel(null));
        Assert.Equal(LightningPrefillKernel.Pair, CudaBackend.ParseLightningKernel("pair"));
        Assert.Equal(LightningPrefillKernel.Pipelined, CudaBackend.ParseLightningKernel("pipe"));
        Assert.Equal(LightningPrefillKernel.Chunk, CudaBackend.ParseLightningKernel(" Chunk "));
        Assert.Equal(LightningPrefillKernel.Hopper, CudaBackend.ParseLightningKernel("wgmma"));
        var e = Assert.Throws<ArgumentException>(() => CudaBackend.ParseLightningKernel("fast"));
        Assert.Contains("MINIMAXSHARP_LIGHTNING_KERNEL", e.Message);
    }

    [Fact]
    public void EveryPrefillKernelNamesAFunctionOfLightningCu()
    {
        string source = CudaDevice.Source("lightning.cu");
        foreach (var kernel in Enum.GetValues<LightningPrefillKernel>())
            Assert.Matches(@"extern ""C"" __global__ void(\s+__cluster_dims__\([^)]*\))?(\s+__launch_bounds__\([^)]*\))?\s+" + CudaBackend.LightningKernelFunction(kernel) + @"\(", source);
        Assert.Equal(4, Enum.GetValues<LightningPrefillKernel>().Select(CudaBackend.LightningKernelFunction).Distinct().Count());
    }

    [Fact]
    public void KernelExperimentSwitchesBecomeNvrtcOptions()
    {
        Assert.Empty(CudaDevice.ExtraNvrtcOptions(null, null));
        Assert.Empty(CudaDevice.ExtraNvrtcOptions("0", "  "));
        Assert.Equal(["--ptxas-options=-v", "-DA", "-DB=1"], CudaDevice.ExtraNvrtcOptions("1", " A  B=1 "));
    }
}
