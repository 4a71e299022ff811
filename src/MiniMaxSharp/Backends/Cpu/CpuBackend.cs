using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>
/// The reference backend: float32 arithmetic on the host, vectorised (TensorPrimitives, Vector512)
/// and multi-threaded. Weights are used where they lie (memory-mapped checkpoints), widened inside the kernels.
/// </summary>
public sealed unsafe partial class CpuBackend : IComputeBackend
{
    public CpuBackend(int threads = 0)
    {
        Threads = threads > 0 ? threads : Environment.ProcessorCount;
    }

    public string Name => "cpu";
    public DType ActivationType => DType.F32;
    public int Threads { get; }

    public DeviceTensor Allocate(DType type, params int[] shape) => CpuTensor.AllocateZeroed(type, shape);

    public DeviceTensor LoadWeight(HostTensor source) => CpuTensor.Wrap(source);

    public void Upload(ReadOnlySpan<float> source, DeviceTensor destination)
    {
        var d = AsCpu(destination);
        if (source.Length != d.ElementCount) throw new ArgumentException($"upload of {source.Length} values into {d}");
        source.CopyTo(d.AsSpan());
    }

    public void Download(DeviceTensor source, Span<float> destination)
    {
        var s = AsCpu(source);
        if (destination.Length != s.ElementCount) throw new ArgumentException($"download of {s} into {destination.Length} values");
        NumberConversions.Widen(s.Data, s.DType, destination);
    }

    public void CopyRows(DeviceTensor source, DeviceTensor destination, int rows)
    {
        var s = AsCpu(source);
        var d = AsCpu(destination);
        if (s.Cols != d.Cols || s.DType != d.DType || rows > s.Rows || rows > d.Rows)
            throw new ArgumentException($"cannot copy {rows} rows from {s} to {d}");
        long bytes = (long)rows * s.Cols * DTypeInfo.SizeOf(s.DType);
        Buffer.MemoryCopy(s.Data, d.Data, d.ByteLength, bytes);
    }

    public void GatherRows(DeviceTensor source, ReadOnlySpan<int> rowIndices, DeviceTensor destination)
    {
        var s = AsCpu(source);
        var d = AsCpu(destination);
        int w = s.Cols;
        if (d.Cols != w || d.Rows < rowIndices.Length) throw new ArgumentException($"cannot gather {rowIndices.Length} rows of {s} into {d}");
        for (int i = 0; i < rowIndices.Length; i++)
        {
            int r = rowIndices[i];
            if ((uint)r >= s.Rows) throw new ArgumentOutOfRangeException(nameof(rowIndices), $"row {r} outside {s}");
            new ReadOnlySpan<float>(s.F32 + (long)r * w, w).CopyTo(new Span<float>(d.F32 + (long)i * w, w));
        }
    }

    public void Embedding(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output)
    {
        var t = AsCpu(table);
        var o = AsCpu(output);
        int hidden = t.Cols;
        if (o.Cols != hidden || o.Rows != ids.Length) throw new ArgumentException($"embedding of {ids.Length} ids from {t} into {o}");
        int es = DTypeInfo.SizeOf(t.DType);
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= t.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} at position {i} is outside the vocabulary (0..{t.Rows - 1})");
            NumberConversions.Widen(t.Data + (long)id * hidden * es, t.DType, new Span<float>(o.F32 + (long)i * hidden, hidden));
        }
    }

    public void RmsNorm(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor output)
    {
        var xs = AsCpu(x);
        var os = AsCpu(output);
        int w = xs.Cols;
        if (weight.ElementCount != w || os.Cols != w || os.Rows != xs.Rows)
            throw new ArgumentException($"rms norm of {xs} with weight {weight} into {os}");
        float[] wf = ArrayPool<float>.Shared.Rent(w);
        try
        {
            NumberConversions.Widen(AsCpu(weight).Data, weight.DType, wf.AsSpan(0, w));
            float* xp = xs.F32, op = os.F32;
            For((int)xs.Rows, w, r =>
            {
                var row = new ReadOnlySpan<float>(xp + (long)r * w, w);
                var dst = new Span<float>(op + (long)r * w, w);
                float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / w + eps);
                TensorPrimitives.Multiply(row, scale, dst);
                TensorPrimitives.Multiply(dst, wf.AsSpan(0, w), dst);
            });
        }
        finally
        {
            ArrayPool<float>.Shared.Return(wf);
        }
    }

    public void ScaleAdd(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor output)
    {
        var sa = AsCpu(a);
        var sb = AsCpu(b);
        var so = AsCpu(output);
        if (sa.ElementCount != sb.ElementCount || sa.ElementCount != so.ElementCount)
            throw new ArgumentException($"scale-add of {sa} and {sb} into {so}");
        float* pa = sa.F32, pb = sb.F32, po = so.F32;
        ForChunks(sa.ElementCount, 4096, 4, (start, len) => ScaleAddKernel(pa + start, alpha, pb + start, beta, po + start, len));
    }

    private static void ScaleAddKernel(float* a, float alpha, float* b, float beta, float* o, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            var vb = Vector512.Create(beta);
            for (; i + 16 <= n; i += 16)
            {
                var r = Vector512.Load(a + i) * va + Vector512.Load(b + i) * vb;
                r.Store(o + i);
            }
        }
        for (; i < n; i++) o[i] = alpha * a[i] + beta * b[i];
    }

    public void MatMul(DeviceTensor x, DeviceTensor weight, DeviceTensor output)
    {
        var xs = AsCpu(x);
        var ws = AsCpu(weight);
        var os = AsCpu(output);
        int n = (int)xs.Rows, k = xs.Cols, m = (int)ws.Rows;
        if (ws.Cols != k || os.Rows != n || os.Cols != m)
            throw new ArgumentException($"matmul of {xs} by {ws}ᵀ into {os}");
        Gemm.MatMulNT(xs.F32, k, ws.Data, ws.DType, k, os.F32, m, n, m, k, accumulate: false, Threads);
    }

    public void SigmoidGate(DeviceTensor gate, DeviceTensor x, DeviceTensor output)
    {
        var g = AsCpu(gate);
        var xs = AsCpu(x);
        var o = AsCpu(output);
        if (g.ElementCount != xs.ElementCount || o.ElementCount != xs.ElementCount)
            throw new ArgumentException($"sigmoid gate of {g} and {xs} into {o}");
        float* pg = g.F32, px = xs.F32, po = o.F32;
        const int chunk = 2048;
        ForChunks(xs.ElementCount, chunk, 8, (start, len) =>
        {
            Span<float> s = stackalloc float[chunk];
            s = s[..len];
            TensorPrimitives.Sigmoid(new ReadOnlySpan<float>(pg + start, len), s);
            TensorPrimitives.Multiply(s, new ReadOnlySpan<float>(px + start, len), new Span<float>(po + start, len));
        });
    }

    public void Synchronize()
    {
    }

    public void Dispose()
    {
    }

    internal static CpuTensor AsCpu(DeviceTensor t) =>
        t as CpuTensor ?? throw new ArgumentException($"tensor {t} does not belong to the CPU backend");

    /// <summary>Runs body(start, length) over [0, n) in chunks of <paramref name="chunk"/> elements, in parallel when worth it.</summary>
    private void ForChunks(long n, int chunk, int costPerElement, Action<long, int> body) =>
        For((int)((n + chunk - 1) / chunk), (long)chunk * costPerElement, c =>
        {
            long start = (long)c * chunk;
            body(start, (int)Math.Min(chunk, n - start));
        });

    /// <summary>Runs body(0..count-1), in parallel when the work (count × costPerItem) is worth it.</summary>
    private void For(int count, long costPerItem, Action<int> body)
    {
        if (Threads == 1 || count == 1 || (long)count * costPerItem < 32_768)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        CpuParallel.For(count, Threads, body);
    }
}
