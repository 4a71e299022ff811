using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends;

/// <summary>
/// Optional backend capability: greedy decoding whose token choice stays on the device. A decode step then
/// ends with <see cref="ArgMaxRows"/> into an <see cref="Tensors.DType.I32"/> tensor of token ids (4 bytes per
/// sequence to read back instead of a row of float32 logits), and the next step's embedding can read those
/// ids where they are (<see cref="EmbeddingFromDevice"/>), so the host need not know a token before the step
/// that consumes it is issued. Every method but the downloads may be part of a recorded step (IStepGraphs).
/// </summary>
public interface IGreedyDecoding
{
    /// <summary>
    /// ids[r] = the index of the largest of the first <paramref name="columns"/> values of row r of
    /// <paramref name="logits"/> (float32 [rows, vocab]; 1 ≤ columns ≤ vocab) exactly as the host's greedy choice
    /// (<c>TensorPrimitives.IndexOfMax</c>): the first NaN if the row has one, +0 above -0, and the lowest index among
    /// equal maxima. <paramref name="ids"/>: I32 with at least rows elements (the first rows are written).
    /// </summary>
    void ArgMaxRows(DeviceTensor logits, int columns, DeviceTensor ids);

    /// <summary><see cref="IComputeBackend.Embedding"/> with the ids read on the device from the first output-rows
    /// elements of <paramref name="ids"/> (I32). An id outside the table's rows gives a row of NaN, never a read
    /// outside the table.</summary>
    void EmbeddingFromDevice(DeviceTensor table, DeviceTensor ids, DeviceTensor output);

    /// <summary>Writes <paramref name="values"/> into the first elements of <paramref name="ids"/> (I32), in stream order.</summary>
    void UploadIds(ReadOnlySpan<int> values, DeviceTensor ids);

    /// <summary>Starts copying the first <paramref name="count"/> ids to the host after the work issued so far,
    /// without waiting; <see cref="FinishIdsDownload"/> waits for them. One download at a time.</summary>
    void StartIdsDownload(DeviceTensor ids, int count);

    /// <summary>Waits for the download <see cref="StartIdsDownload"/> began and copies its ids to <paramref name="destination"/>
    /// (exactly that many values).</summary>
    void FinishIdsDownload(Span<int> destination);
}

/// <summary>Argument checks every <see cref="IGreedyDecoding"/> implementation shares.</summary>
internal static class GreedyArguments
{
    /// <summary>The arguments every backend's ArgMaxRows takes (float32 logits, 1 ≤ columns ≤ their width, an I32 id per row).</summary>
    internal static void CheckArgMax(DeviceTensor logits, int columns, DeviceTensor ids)
    {
        if (logits.DType != DType.F32 || ids.DType != DType.I32 || ids.ElementCount < logits.Rows)
            throw new ArgumentException($"argmax of the rows of {logits} into {ids}: needs float32 logits and at least one I32 id per row");
        if (columns < 1 || columns > logits.Cols)
            throw new ArgumentOutOfRangeException(nameof(columns), $"argmax over the first {columns} columns of {logits}: needs 1 to {logits.Cols}");
    }
}
