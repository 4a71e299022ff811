using System.Numerics.Tensors;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

// Greedy token choice as the reference: TensorPrimitives.IndexOfMax, the host Sampler's greedy choice. GreedyBefore
// writes down the order the CUDA kernel (sampling.cu) reduces by; tests check it against IndexOfMax on ties, signed
// zeros and NaN.
public sealed unsafe partial class CpuBackend : IGreedyDecoding
{
    private int[] _downloadedIds = [];
    private int _pendingIds = -1;

    /// <summary>Whether value <paramref name="a"/> at index <paramref name="ia"/> wins the greedy choice over
    /// <paramref name="b"/> at <paramref name="ib"/>: NaN above everything (the first NaN wins), then the larger
    /// value, +0 above -0, then the lower index. A total order, so any reduction order picks the same winner.</summary>
    internal static bool GreedyBefore(float a, int ia, float b, int ib)
    {
        bool an = float.IsNaN(a), bn = float.IsNaN(b);
        if (an || bn) return an && (!bn || ia < ib);
        if (a != b) return a > b;
        bool aNeg = float.IsNegative(a), bNeg = float.IsNegative(b);   // differs only for +0 against -0
        if (aNeg != bNeg) return bNeg;
        return ia < ib;
    }

    /// <summary>The greedy choice of one row by <see cref="GreedyBefore"/>, scanned in order (-1 for an empty row, as IndexOfMax).</summary>
    internal static int GreedyArgMax(ReadOnlySpan<float> row)
    {
        int best = row.IsEmpty ? -1 : 0;
        for (int i = 1; i < row.Length; i++)
            if (GreedyBefore(row[i], i, row[best], best)) best = i;
        return best;
    }

    public void ArgMaxRows(DeviceTensor logits, int columns, DeviceTensor ids)
    {
        var l = AsCpu(logits);
        var d = AsCpu(ids);
        GreedyArguments.CheckArgMax(l, columns, d);
        var output = IdSpan(d);
        // The host's own greedy choice (what Sampler does at temperature 0), so the reference is that by construction.
        for (long r = 0; r < l.Rows; r++)
            output[(int)r] = TensorPrimitives.IndexOfMax(new ReadOnlySpan<float>(l.F32 + r * l.Cols, columns));
    }

    public void EmbeddingFromDevice(DeviceTensor table, DeviceTensor ids, DeviceTensor output)
    {
        var d = AsCpu(ids);
        var o = AsCpu(output);
        if (d.DType != DType.I32 || d.ElementCount < o.Rows)
            throw new ArgumentException($"embedding of {o.Rows} ids from {d} into {o}: needs an I32 tensor of at least that many ids");
        var t = AsCpu(table);
        var read = IdSpan(d)[..(int)o.Rows];
        for (int i = 0; i < read.Length; i++)
        {
            using var row = (CpuTensor)o.RowSlice(i, 1);
            // The device contract: a row of NaN for an id outside the table, never a read outside it.
            if ((uint)read[i] < t.Rows) Embedding(t, read.Slice(i, 1), row);
            else row.AsSpan().Fill(float.NaN);
        }
    }

    public void UploadIds(ReadOnlySpan<int> values, DeviceTensor ids)
    {
        var d = AsCpu(ids);
        if (d.DType != DType.I32 || values.Length > d.ElementCount) throw new ArgumentException($"upload of {values.Length} ids into {d}");
        values.CopyTo(IdSpan(d));
    }

    public void StartIdsDownload(DeviceTensor ids, int count)
    {
        var d = AsCpu(ids);
        if (d.DType != DType.I32 || count < 0 || count > d.ElementCount) throw new ArgumentException($"download of {count} ids from {d}");
        if (_pendingIds >= 0) throw new InvalidOperationException("an id download is already under way");
        if (_downloadedIds.Length < count) _downloadedIds = new int[count];
        IdSpan(d)[..count].CopyTo(_downloadedIds);
        _pendingIds = count;
    }

    public void FinishIdsDownload(Span<int> destination)
    {
        if (_pendingIds < 0) throw new InvalidOperationException("no id download was started");
        if (destination.Length != _pendingIds) throw new ArgumentException($"the download holds {_pendingIds} ids, not {destination.Length}");
        _downloadedIds.AsSpan(0, _pendingIds).CopyTo(destination);
        _pendingIds = -1;
    }

    private static Span<int> IdSpan(CpuTensor t) => new((int*)t.Data, checked((int)t.ElementCount));
}
