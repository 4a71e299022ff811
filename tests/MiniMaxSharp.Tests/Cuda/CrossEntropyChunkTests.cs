using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>How many rows of logits the CUDA fused LM head + cross-entropy holds at once (host-side planning).</summary>
public sealed class CrossEntropyChunkTests
{
    [Fact]
    public void ChunksHoldAtMostTheBudgetOfLogits()
    {
        int rows = CudaBackend.CrossEntropyChunkRows(100_000, 32_000);
        Assert.Equal(CudaBackend.CrossEntropyChunkElements / 32_000, rows);
        Assert.True((long)rows * 32_000 <= CudaBackend.CrossEntropyChunkElements);
        Assert.True((long)(rows + 1) * 32_000 > CudaBackend.CrossEntropyChunkElements);
    }

    [Fact]
    public void FewRowsMakeOneChunkAndAHugeVocabularyStillTakesARow()
    {
        Assert.Equal(70, CudaBackend.CrossEntropyChunkRows(70, 1000));
        Assert.Equal(1, CudaBackend.CrossEntropyChunkRows(10, CudaBackend.CrossEntropyChunkElements * 2));
        Assert.Equal(1, CudaBackend.CrossEntropyChunkRows(0, 1000));
    }

    [Fact]
    public void ALoweredBudgetGivesThatManyRows()
    {
        Assert.Equal(64, CudaBackend.CrossEntropyChunkRows(700, 1000, budget: 64 * 1000));
        Assert.Equal(64, CudaBackend.CrossEntropyChunkRows(700, 1000, budget: 64 * 1000 + 999));
    }
}
