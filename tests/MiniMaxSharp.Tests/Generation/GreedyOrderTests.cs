using System.Numerics.Tensors;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Generation;

/// <summary>
/// The greedy choice made on the device must be the host's (TensorPrimitives.IndexOfMax, what Sampler does at
/// temperature 0): the order the CUDA kernel reduces by (CpuBackend.GreedyBefore), scanned in order and combined the
/// way argmax_rows combines it (strided threads, warp butterflies, then warps), and the CPU op, all against it on
/// rows full of ties, signed zeros, infinities and NaN.
/// </summary>
public sealed class GreedyOrderTests
{
    public static TheoryData<int> Lengths() => [1, 2, 3, 5, 31, 32, 33, 97, 1023, 1024, 1025, 4099, 32768, 32771];

    [Theory]
    [MemberData(nameof(Lengths))]
    public void TheKernelsOrderPicksTheHostsIndex(int length)
    {
        var rng = new Random(length);
        for (int trial = 0; trial < 12; trial++)
        {
            float[] row = Row(rng, length, withNaN: trial % 4 == 3);
            int expected = TensorPrimitives.IndexOfMax(row);
            Assert.Equal(expected, CpuBackend.GreedyArgMax(row));
            Assert.Equal(expected, AsArgMaxRowsReduces(row, 1024, vec4: length % 4 == 0));
            Assert.Equal(expected, AsArgMaxRowsReduces(row, 64, vec4: false));
        }
    }

    [Fact]
    public void SignedZerosTiesAndNaNFollowIndexOfMax()
    {
        float nan = float.NaN;
        float[][] rows =
        [
            [-0f, 0f, -0f],          // +0 above -0
            [0f, -0f, 0f],           // the first of equal maxima
            [-1f, -1f, -1f],
            [1f, nan, 2f, nan],      // the first NaN, whatever is larger
            [float.NegativeInfinity, float.NegativeInfinity],
            [float.NegativeInfinity, -3f, float.PositiveInfinity, float.PositiveInfinity],
            [5f, 5f, 4f, 5f],
        ];
        foreach (var row in rows)
        {
            int expected = TensorPrimitives.IndexOfMax(row);
            Assert.Equal(expected, CpuBackend.GreedyArgMax(row));
            Assert.Equal(expected, AsArgMaxRowsReduces(row, 32, vec4: false));
        }
    }

    [Fact]
    public void ArgMaxRowsGivesTheSamplersGreedyChoiceOfEveryRow()
    {
        var rng = new Random(3);
        using var cpu = new CpuBackend(1);
        foreach (int cols in new[] { 1, 7, 100, 2051 })
        {
            const int rows = 9;
            var values = new float[rows * cols];
            for (int r = 0; r < rows; r++) Row(rng, cols, withNaN: false).CopyTo(values, r * cols);
            using var logits = cpu.Allocate(DType.F32, rows, cols);
            using var ids = cpu.Allocate(DType.I32, rows + 3, 1);   // more room than rows: only the first rows are written
            cpu.Upload(values, logits);
            cpu.UploadIds(Enumerable.Repeat(-7, rows + 3).ToArray(), ids);
            foreach (int columns in new[] { cols, (cols + 1) / 2 })
            {
                cpu.ArgMaxRows(logits, columns, ids);
                var chosen = new int[rows + 3];
                cpu.StartIdsDownload(ids, rows + 3);
                cpu.FinishIdsDownload(chosen);
                for (int r = 0; r < rows; r++)
                {
                    // The server's way of limiting the choice: the ids past the limit at -inf.
                    var row = values.AsSpan(r * cols, cols).ToArray();
                    row.AsSpan(columns).Fill(float.NegativeInfinity);
                    Assert.Equal(new Sampler(SamplingOptions.Greedy).Sample(row, []), chosen[r]);
                }
                Assert.Equal([-7, -7, -7], chosen[rows..]);
            }
        }
    }

    [Fact]
    public void BadArgumentsAreRefusedByName()
    {
        using var cpu = new CpuBackend(1);
        using var logits = cpu.Allocate(DType.F32, 3, 10);
        using var floats = cpu.Allocate(DType.F32, 3, 1);
        using var small = cpu.Allocate(DType.I32, 2, 1);
        Assert.Throws<ArgumentException>(() => cpu.ArgMaxRows(logits, 10, floats));
        Assert.Throws<ArgumentException>(() => cpu.ArgMaxRows(logits, 10, small));
        using var ids = cpu.Allocate(DType.I32, 3, 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.ArgMaxRows(logits, 0, ids));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.ArgMaxRows(logits, 11, ids));
        Assert.Throws<InvalidOperationException>(() => cpu.FinishIdsDownload(new int[2]));
        cpu.StartIdsDownload(small, 2);
        Assert.Throws<InvalidOperationException>(() => cpu.StartIdsDownload(small, 2));
        Assert.Throws<ArgumentException>(() => cpu.FinishIdsDownload(new int[1]));
    }

    [Fact]
    public void AnEmbeddingOfAnIdOutsideTheTableIsARowOfNaN()
    {
        using var cpu = new CpuBackend(1);
        using var table = cpu.Allocate(DType.F32, 4, 3);
        cpu.Upload(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), table);
        using var ids = cpu.Allocate(DType.I32, 3, 1);
        cpu.UploadIds([2, 4, -1], ids);
        using var output = cpu.Allocate(DType.F32, 3, 3);
        cpu.EmbeddingFromDevice(table, ids, output);
        var values = new float[9];
        cpu.Download(output, values);
        Assert.Equal([6f, 7f, 8f], values[..3]);
        Assert.All(values[3..], v => Assert.True(float.IsNaN(v)));
    }

    /// <summary>Values from a few levels (ties everywhere), signed zeros, infinities, and NaN when asked.</summary>
    private static float[] Row(Random rng, int length, bool withNaN)
    {
        var row = new float[length];
        for (int i = 0; i < length; i++)
            row[i] = rng.Next(12) switch
            {
                0 => 0f,
                1 => -0f,
                2 => float.NegativeInfinity,
                _ => rng.Next(-4, 4) * 0.5f,
            };
        if (rng.Next(3) == 0) row[rng.Next(length)] = float.PositiveInfinity;
        if (withNaN)
            for (int k = 0; k < 1 + length / 500; k++) row[rng.Next(length)] = float.NaN;
        return row;
    }

    /// <summary>argmax_rows (sampling.cu) on the host: each of <paramref name="threads"/> threads scans its strided
    /// columns (float4 pieces when <paramref name="vec4"/>), lanes combine by xor butterflies, lane 0 of each warp
    /// hands its winner over, and warp 0 combines those the same way.</summary>
    private static int AsArgMaxRowsReduces(float[] row, int threads, bool vec4)
    {
        var best = new float[threads];
        var index = Enumerable.Repeat(-1, threads).ToArray();
        for (int t = 0; t < threads; t++)
        {
            if (vec4)
                for (int c = t; c < row.Length / 4; c += threads)
                    for (int j = 0; j < 4; j++) Take(row[4 * c + j], 4 * c + j, ref best[t], ref index[t]);
            else
                for (int c = t; c < row.Length; c += threads) Take(row[c], c, ref best[t], ref index[t]);
        }
        int warps = threads / 32;
        var warpBest = new float[32];
        var warpIndex = Enumerable.Repeat(-1, 32).ToArray();
        for (int w = 0; w < warps; w++)
        {
            Butterfly(best.AsSpan(w * 32, 32), index.AsSpan(w * 32, 32));
            warpBest[w] = best[w * 32];
            warpIndex[w] = index[w * 32];
        }
        Butterfly(warpBest, warpIndex);
        return warpIndex[0];
    }

    private static void Butterfly(Span<float> best, Span<int> index)
    {
        for (int o = 16; o > 0; o >>= 1)
        {
            var (b, i) = (best.ToArray(), index.ToArray());   // every lane reads its partner's value before any writes
            for (int lane = 0; lane < 32; lane++) Take(b[lane ^ o], i[lane ^ o], ref best[lane], ref index[lane]);
        }
    }

    private static void Take(float v, int i, ref float best, ref int bi)
    {
        if (i >= 0 && (bi < 0 || CpuBackend.GreedyBefore(v, i, best, bi)))
        {
            best = v;
            bi = i;
        }
    }
}
