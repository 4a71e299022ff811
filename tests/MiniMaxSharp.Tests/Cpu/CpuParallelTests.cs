using MiniMaxSharp.Backends.Cpu;

namespace MiniMaxSharp.Tests.Cpu;

public class CpuParallelTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 2)]
    [InlineData(1000, 2)]
    [InlineData(1000, 8)]
    public void For_RunsEveryIndexExactlyOnce(int count, int threads)
    {
        for (int round = 0; round < 50; round++)
        {
            var hits = new int[count];
            CpuParallel.For(count, threads, i => Interlocked.Increment(ref hits[i]));
            Assert.All(hits, h => Assert.Equal(1, h));
        }
    }

    private struct CountingBody(int[] hits) : IParallelBody
    {
        public void Invoke(int index) => Interlocked.Increment(ref hits[index]);
    }

    [Fact]
    public void StructBody_RunsEveryIndexExactlyOnce()
    {
        var hits = new int[333];
        var body = new CountingBody(hits);
        CpuParallel.For(hits.Length, 2, in body);
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void NestedCall_RunsSeriallyAndCompletes()
    {
        var hits = new int[16 * 16];
        CpuParallel.For(16, 2, i => CpuParallel.For(16, 2, j => Interlocked.Increment(ref hits[i * 16 + j])));
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ConcurrentCallers_AllComplete()
    {
        var hits = new int[4 * 500];
        Parallel.For(0, 4, caller => CpuParallel.For(500, 2, i => Interlocked.Increment(ref hits[caller * 500 + i])));
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void BodyException_IsRethrownOnTheCaller_AndThePoolStillWorks()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            CpuParallel.For(100, 2, i => { if (i == 37) throw new InvalidOperationException("index 37"); }));
        Assert.Equal("index 37", e.Message);
        var hits = new int[100];
        CpuParallel.For(100, 2, i => Interlocked.Increment(ref hits[i]));
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void WorkersSleepAndWakeAgain()
    {
        var hits = new int[10];
        CpuParallel.For(10, 2, i => Interlocked.Increment(ref hits[i]));
        Thread.Sleep(5); // longer than the spin period: the worker goes to sleep on its semaphore
        CpuParallel.For(10, 2, i => Interlocked.Increment(ref hits[i]));
        Assert.All(hits, h => Assert.Equal(2, h));
    }
}
