using MiniMaxSharp.Tensors;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

// Greedy token choice on the device (sampling.cu): the argmax of each logits row into int32 ids, the embedding of
// ids that stay on the device, and the ids' way back to the host through pinned memory and an event, so a caller
// can wait for 4 bytes per sequence while it prepares the next step.
public sealed unsafe partial class CudaBackend : IGreedyDecoding
{
    /// <summary>Threads of an <c>argmax_rows</c> block: a 32k-column row is 8 float4 loads per thread.</summary>
    private const uint ArgMaxThreads = 1024;

    private nint _pinnedIds;
    private int _pinnedIdsCapacity;
    private nint _idsCopied;
    private int _pendingIds = -1;

    public void ArgMaxRows(DeviceTensor logits, int columns, DeviceTensor ids)
    {
        var l = AsCuda(logits);
        var d = AsCuda(ids);
        GreedyArguments.CheckArgMax(l, columns, d);
        if (l.Rows == 0) return;
        _device.MakeCurrent();
        int vec4 = columns % 4 == 0 && l.Cols % 4 == 0 && l.Pointer % 16 == 0 ? 1 : 0;
        _device.Kernel("sampling.cu", "argmax_rows").Launch(RowBlocks(l.Rows), 1, 1, ArgMaxThreads, 0,
            l.Pointer, (int)l.Rows, columns, l.Cols, vec4, d.Pointer);
    }

    public void EmbeddingFromDevice(DeviceTensor table, DeviceTensor ids, DeviceTensor output)
    {
        var t = AsCuda(table);
        var d = AsCuda(ids);
        var o = AsCuda(output);
        if (o.Cols != t.Cols || d.DType != DType.I32 || d.ElementCount < o.Rows)
            throw new ArgumentException($"embedding of {o.Rows} ids from {d} (I32) out of {t} into {o}");
        if (o.Rows == 0) return;
        _device.MakeCurrent();
        _device.Kernel("sampling.cu", "embedding_ids").Launch(Blocks(o.ElementCount), 1, 1, ElementwiseBlock, 0,
            t, t.KernelType, t.Rows, d, o, o.KernelType, (int)o.Rows, o.Cols);
    }

    public void UploadIds(ReadOnlySpan<int> values, DeviceTensor ids)
    {
        var d = AsCuda(ids);
        if (d.DType != DType.I32 || values.Length > d.ElementCount) throw new ArgumentException($"upload of {values.Length} ids into {d}");
        _device.MakeCurrent();
        fixed (int* p = values) CopyToDevice(p, d.Pointer, values.Length * 4L);
    }

    public void StartIdsDownload(DeviceTensor ids, int count)
    {
        var d = AsCuda(ids);
        if (d.DType != DType.I32 || count < 0 || count > d.ElementCount) throw new ArgumentException($"download of {count} ids from {d}");
        if (_pendingIds >= 0) throw new InvalidOperationException("an id download is already under way");
        _device.MakeCurrent();
        _device.Graphs.RequireEager("a device-to-host copy");
        if (_pinnedIdsCapacity < count)
        {
            if (_pinnedIds != 0) Check(cuMemFreeHost(_pinnedIds), "cuMemFreeHost");
            _pinnedIds = 0;
            _pinnedIdsCapacity = 0;
            int capacity = Math.Max(count, 64);
            Check(cuMemAllocHost(out _pinnedIds, (nuint)(capacity * 4L)), "cuMemAllocHost");
            _pinnedIdsCapacity = capacity;
        }
        if (_idsCopied == 0) Check(cuEventCreate(out _idsCopied, EventDisableTiming), "cuEventCreate");
        if (count > 0) Check(cuMemcpyDtoHAsync((void*)_pinnedIds, d.Pointer, (nuint)(count * 4L), _device.Stream), "cuMemcpyDtoHAsync");
        Check(cuEventRecord(_idsCopied, _device.Stream), "cuEventRecord");
        _pendingIds = count;
    }

    public void FinishIdsDownload(Span<int> destination)
    {
        if (_pendingIds < 0) throw new InvalidOperationException("no id download was started");
        if (destination.Length != _pendingIds) throw new ArgumentException($"the download holds {_pendingIds} ids, not {destination.Length}");
        if (_device.Graphs.Mode != StepGraphMode.Eager) throw new InvalidOperationException("waiting for ids inside a recorded step");
        _device.MakeCurrent();
        // Waiting issues nothing: a step held meanwhile stays valid.
        _pendingIds = -1;
        Check(cuEventSynchronize(_idsCopied), "cuEventSynchronize");
        new ReadOnlySpan<int>((void*)_pinnedIds, destination.Length).CopyTo(destination);
    }

    private void ReleaseGreedy()
    {
        if (_pinnedIds != 0) cuMemFreeHost(_pinnedIds);
        if (_idsCopied != 0) cuEventDestroy(_idsCopied);
        _pinnedIds = 0;
        _pinnedIdsCapacity = 0;
        _idsCopied = 0;
        _pendingIds = -1;
    }
}
