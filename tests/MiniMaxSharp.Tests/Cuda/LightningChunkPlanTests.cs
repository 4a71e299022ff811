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
}
