using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>Which rows the vectorised norm kernels take, and with how many threads: one 8-column piece per thread up to
/// 256 threads, at most 4 pieces per thread, 16-byte aligned tensors; 0 sends a row to the generic kernels.</summary>
public sealed class NormThreadsTests
{
    [Theory]
    [InlineData(2048, 256u)]     // bench-1b's hidden size: a piece per thread
    [InlineData(1000, 128u)]     // 125 pieces: the last warp partly idle
    [InlineData(8, 32u)]         // one piece: still a whole warp
    [InlineData(6144, 256u)]     // 768 pieces: 3 per thread (768 threads did not launch: registers)
    [InlineData(8192, 256u)]     // 1024 pieces: 4 per thread, the most
    [InlineData(8200, 0u)]       // 1025 pieces: too many
    [InlineData(1004, 0u)]       // not a multiple of 8
    [InlineData(0, 0u)]
    public void ThreadsFollowTheRowWidth(int cols, uint expected) =>
        Assert.Equal(expected, CudaBackend.NormThreads(cols, 0x1000UL, 0x2000UL));

    [Fact]
    public void AnUnalignedTensorSendsTheRowToTheGenericKernel()
    {
        Assert.Equal(0u, CudaBackend.NormThreads(2048, 0x1000UL, 0x2008UL));
        Assert.Equal(256u, CudaBackend.NormThreads(2048, 0x1010UL, 0x2020UL));
    }
}
