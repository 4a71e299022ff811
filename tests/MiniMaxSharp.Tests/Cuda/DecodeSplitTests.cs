using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>The flash-decoding split count: a function of the step's shape only (so a recorded decode step
/// launches the same grid at every context length), about four work items per SM, within [1, 256].</summary>
public sealed class DecodeSplitTests
{
    [Theory]
    [InlineData(2, 132, 256)]     // bench-1b batch 1: 2 KV heads, capped
    [InlineData(16, 132, 33)]     // 16 work items: 528 / 16
    [InlineData(128, 132, 5)]     // batch 64 over 2 KV heads: ceil(528 / 128)
    [InlineData(100000, 132, 1)]  // a long non-flash prefill: no split
    [InlineData(3, 1, 2)]         // a one-SM device: ceil(4 / 3)
    public void SplitsGiveAboutFourWorkItemsPerMultiprocessor(long work, int multiprocessors, int expected) =>
        Assert.Equal(expected, CudaBackend.DecodeSplits(work, multiprocessors));
}
