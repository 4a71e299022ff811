using System.Runtime.InteropServices;
using MiniMaxSharp.Backends.Cuda.Interop;
using MiniMaxSharp.Tensors;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>
/// The op set on one NVIDIA GPU. Activations and KV caches are bf16, arithmetic accumulates in float32;
/// lightning states, router probabilities and logits are float32. Weights keep their checkpoint dtype on
/// the device (bf16 or float32; float16 is widened to float32). Matrix products go through cuBLAS
/// (bf16 inputs with float32 accumulation, or full float32 for float32 weights); everything else runs our own
/// kernels (Kernels/*.cu), all on one stream in issue order. Training (<see cref="IGradientBackend"/>) runs the same
/// forward ops with float32 activations and master weights, and the backward ops in float32 (CudaBackend.Backward.cs).
/// </summary>
public sealed unsafe partial class CudaBackend : IComputeBackend, IGradientBackend, IStepGraphs
{
    private const uint ElementwiseBlock = 256;
    private readonly CudaDevice _device;
    private readonly Dictionary<string, (ulong Pointer, long Bytes)> _scratch = [];
    private bool _disposed;

    /// <summary>Opens GPU <paramref name="deviceOrdinal"/>; throws <see cref="CudaUnavailableException"/> when there is none.</summary>
    public CudaBackend(int deviceOrdinal = 0)
    {
        _device = new CudaDevice(deviceOrdinal);
    }

    public string Name => "cuda";
    public DType ActivationType => DType.BF16;

    /// <summary>Float32: with a bf16 residual stream the tiny fixture's logits drifted to 9.8e-3 of the
    /// CPU's (bound 1e-2); the hidden state and branch outputs are a few rows of [tokens, hidden], so the
    /// wider type costs little next to the projections.</summary>
    public DType ResidualType => DType.F32;

    /// <summary>e.g. "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, driver 13.0, NVRTC 13.0".</summary>
    public string DeviceDescription =>
        $"{_device.Name}, sm_{_device.ComputeCapability}, {_device.Multiprocessors} SMs, driver {_device.DriverVersion / 1000}.{_device.DriverVersion % 1000 / 10}, NVRTC {_device.NvrtcVersion.Major}.{_device.NvrtcVersion.Minor}"
        + (_device.DependentLaunch ? ", programmatic dependent launch (MINIMAXSHARP_CUDA_PDL=0 turns it off)" : "");

    /// <summary>Where the driver, NVRTC and cuBLAS were loaded from.</summary>
    public string LibrarySources => string.Join(", ", CudaLibraries.Sources.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value}"));

    internal CudaDevice Device => _device;

    // ---- memory ----

    public DeviceTensor Allocate(DType type, params int[] shape)
    {
        _device.MakeCurrent();
        var probe = new ShapeProbe(type, shape);
        ulong p = _device.Allocate(probe.ByteLength, $"a {type}[{string.Join(", ", shape)}] tensor");
        Check(cuMemsetD8Async(p, 0, (nuint)Math.Max(1, probe.ByteLength), _device.Stream), "cuMemsetD8Async");
        return new CudaTensor(_device, type, shape, p, owns: true, parent: null);
    }

    public DeviceTensor LoadWeight(HostTensor source)
    {
        _device.MakeCurrent();
        int[] shape = source.Shape.Length == 0 ? [1] : source.Shape.Select(d => checked((int)d)).ToArray();
        if (source.DType != DType.F16)
        {
            var t = (CudaTensor)Allocate(source.DType, shape);
            CopyToDevice(source.Data, t.Pointer, source.ByteLength);
            return t;
        }
        // float16 is widened to float32 (exact): the kernels and cuBLAS calls take bf16 or float32 weights.
        var wide = (CudaTensor)Allocate(DType.F32, shape);
        const int chunk = 1 << 22;
        var buffer = new float[(int)Math.Min(chunk, source.ElementCount)];
        for (long at = 0; at < source.ElementCount; at += chunk)
        {
            int n = (int)Math.Min(chunk, source.ElementCount - at);
            NumberConversions.Widen((byte*)source.Data + at * 2, DType.F16, buffer.AsSpan(0, n));
            fixed (float* p = buffer) CopyToDevice(p, wide.Pointer + (ulong)(at * 4), n * 4L);
        }
        return wide;
    }

    public void Upload(ReadOnlySpan<float> source, DeviceTensor destination)
    {
        var d = AsCuda(destination);
        if (source.Length != d.ElementCount) throw new ArgumentException($"upload of {source.Length} values into {d}");
        _device.MakeCurrent();
        switch (d.DType)
        {
            case DType.F32:
                fixed (float* p = source) CopyToDevice(p, d.Pointer, d.ByteLength);
                break;
            case DType.BF16:
                var narrow = new ushort[source.Length];
                BFloat16Conversions.Narrow(source, narrow);
                fixed (ushort* p = narrow) CopyToDevice(p, d.Pointer, d.ByteLength);
                break;
            default:
                throw new NotSupportedException($"upload into {d}: the CUDA backend stores float32 or bf16");
        }
    }

    public void Download(DeviceTensor source, Span<float> destination)
    {
        var s = AsCuda(source);
        if (destination.Length != s.ElementCount) throw new ArgumentException($"download of {s} into {destination.Length} values");
        _device.MakeCurrent();
        switch (s.DType)
        {
            case DType.F32:
                fixed (float* p = destination) CopyToHost(s.Pointer, p, s.ByteLength);
                break;
            case DType.BF16:
                var narrow = new ushort[destination.Length];
                fixed (ushort* p = narrow) CopyToHost(s.Pointer, p, s.ByteLength);
                BFloat16Conversions.Widen(narrow, destination);
                break;
            default:
                throw new NotSupportedException($"download of {s}: the CUDA backend stores float32 or bf16");
        }
    }

    /// <summary>Raw bytes of a tensor (tests and verify read bf16 caches bit for bit).</summary>
    internal void DownloadBytes(CudaTensor source, Span<byte> destination)
    {
        if (destination.Length != source.ByteLength) throw new ArgumentException($"download of {source} into {destination.Length} bytes");
        _device.MakeCurrent();
        fixed (byte* p = destination) CopyToHost(source.Pointer, p, source.ByteLength);
    }

    public void CopyRows(DeviceTensor source, DeviceTensor destination, int rows)
    {
        var s = AsCuda(source);
        var d = AsCuda(destination);
        if (s.Cols != d.Cols || s.DType != d.DType || rows < 0 || rows > s.Rows || rows > d.Rows)
            throw new ArgumentException($"cannot copy {rows} rows from {s} to {d}");
        _device.MakeCurrent();
        long bytes = (long)rows * s.Cols * DTypeInfo.SizeOf(s.DType);
        _device.Graphs.RequireEager("a device-to-device copy");
        if (bytes > 0) Check(cuMemcpyDtoDAsync(d.Pointer, s.Pointer, (nuint)bytes, _device.Stream), "cuMemcpyDtoDAsync");
    }

    public void GatherRows(DeviceTensor source, ReadOnlySpan<int> rowIndices, DeviceTensor destination)
    {
        var s = AsCuda(source);
        var d = AsCuda(destination);
        if (d.Cols != s.Cols || d.DType != s.DType || d.Rows < rowIndices.Length)
            throw new ArgumentException($"cannot gather {rowIndices.Length} rows of {s} into {d}");
        for (int i = 0; i < rowIndices.Length; i++)
            if ((uint)rowIndices[i] >= s.Rows) throw new ArgumentOutOfRangeException(nameof(rowIndices), $"row {rowIndices[i]} outside {s}");
        if (rowIndices.Length == 0) return;
        _device.MakeCurrent();
        var meta = new MetaBuilder();
        int idx = meta.Add(rowIndices);
        ulong m = UploadMeta(meta);
        GatherRowsOnDevice(s, m + (ulong)idx, rowIndices.Length, d);
    }

    private void GatherRowsOnDevice(CudaTensor source, ulong indices, int rows, CudaTensor destination)
    {
        long rowBytes = (long)source.Cols * DTypeInfo.SizeOf(source.DType);
        int vec16 = rowBytes % 16 == 0 && (source.Pointer | destination.Pointer) % 16 == 0 ? 1 : 0;
        _device.Kernel("elementwise.cu", "gather_rows").Launch(RowBlocks(rows), 1, 1, ElementwiseBlock, 0,
            source.Pointer, destination.Pointer, indices, rows, rowBytes, vec16);
    }

    // ---- element-wise and row ops ----

    public void Embedding(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output)
    {
        var t = AsCuda(table);
        var o = AsCuda(output);
        int hidden = t.Cols;
        if (o.Cols != hidden || o.Rows != ids.Length) throw new ArgumentException($"embedding of {ids.Length} ids from {t} into {o}");
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= t.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} at position {i} is outside the vocabulary (0..{t.Rows - 1})");
        if (ids.Length == 0) return;
        _device.MakeCurrent();
        var meta = new MetaBuilder();
        int at = meta.Add(ids);
        ulong m = UploadMeta(meta);
        _device.Kernel("elementwise.cu", "embedding").Launch(Blocks((long)ids.Length * hidden), 1, 1, ElementwiseBlock, 0,
            t, t.KernelType, m + (ulong)at, o, o.KernelType, ids.Length, hidden);
    }

    public void RmsNorm(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor output)
    {
        var xs = AsCuda(x);
        var w = AsCuda(weight);
        var os = AsCuda(output);
        if (w.ElementCount != xs.Cols || os.Cols != xs.Cols || os.Rows != xs.Rows)
            throw new ArgumentException($"rms norm of {xs} with weight {w} into {os}");
        if (xs.Rows == 0) return;
        _device.MakeCurrent();
        uint threads = NormThreads(xs.Cols, xs.Pointer, w.Pointer, os.Pointer);
        if (threads > 0)
            _device.Kernel("elementwise.cu", "rms_norm_vec8").Launch((uint)xs.Rows, 1, 1, threads, 0,
                xs, xs.KernelType, w, w.KernelType, 0UL, 0, os, os.KernelType, xs.Cols, eps);
        else
            _device.Kernel("elementwise.cu", "rms_norm").Launch((uint)xs.Rows, 1, 1, 256, 0,
                xs, xs.KernelType, w, w.KernelType, os, os.KernelType, xs.Cols, eps);
    }

    public void RmsNormSigmoidGate(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor gate, DeviceTensor output)
    {
        var xs = AsCuda(x);
        var w = AsCuda(weight);
        var g = AsCuda(gate);
        var os = AsCuda(output);
        if (w.ElementCount != xs.Cols || os.Cols != xs.Cols || os.Rows != xs.Rows || g.Cols != xs.Cols || g.Rows != xs.Rows)
            throw new ArgumentException($"rms norm of {xs} with weight {w}, gated by {g}, into {os}");
        uint threads = NormThreads(xs.Cols, xs.Pointer, w.Pointer, g.Pointer, os.Pointer);
        if (threads == 0)
        {
            RmsNorm(xs, w, eps, os);
            SigmoidGate(g, os, os);
            return;
        }
        if (xs.Rows == 0) return;
        _device.MakeCurrent();
        _device.Kernel("elementwise.cu", "rms_norm_vec8").Launch((uint)xs.Rows, 1, 1, threads, 0,
            xs, xs.KernelType, w, w.KernelType, g, g.KernelType, os, os.KernelType, xs.Cols, eps);
    }

    /// <summary>Pieces of 8 columns a thread of the <c>*_vec8</c> norm kernels holds at most (NORM_PIECES in elementwise.cu).</summary>
    private const int NormPiecesPerThread = 4;

    /// <summary>Threads of a vectorised norm block: with 4 pieces of 8 in registers a thread needs ~100 registers, so
    /// 768 threads (6144 columns, one piece each) asked for more than a block's 64k and failed to launch on the H100.</summary>
    private const int MaxNormThreads = 256;

    /// <summary>Threads per row for the <c>*_vec8</c> norm kernels (one 8-column piece per thread where the block allows),
    /// or 0 when a row does not suit them: columns not a multiple of 8, too many for the block, or a tensor not
    /// 16-byte aligned.</summary>
    internal static uint NormThreads(int cols, params ReadOnlySpan<ulong> pointers)
    {
        if (cols <= 0 || cols % 8 != 0 || cols / 8 > NormPiecesPerThread * MaxNormThreads) return 0;
        foreach (ulong p in pointers)
            if (p % 16 != 0) return 0;
        return (uint)Math.Min(MaxNormThreads, (cols / 8 + 31) / 32 * 32);
    }

    public void ScaleAdd(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor output)
    {
        var sa = AsCuda(a);
        var sb = AsCuda(b);
        var so = AsCuda(output);
        if (sa.ElementCount != sb.ElementCount || sa.ElementCount != so.ElementCount)
            throw new ArgumentException($"scale-add of {sa} and {sb} into {so}");
        _device.MakeCurrent();
        _device.Kernel("elementwise.cu", "scale_add").Launch(Blocks(sa.ElementCount), 1, 1, ElementwiseBlock, 0,
            sa, sa.KernelType, alpha, sb, sb.KernelType, beta, so, so.KernelType, sa.ElementCount);
    }

    public void ScaleAddRmsNorm(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor residual,
        DeviceTensor weight, float eps, DeviceTensor output)
    {
        var sa = AsCuda(a);
        var sb = AsCuda(b);
        var r = AsCuda(residual);
        var w = AsCuda(weight);
        var os = AsCuda(output);
        if (sa.ElementCount != r.ElementCount || sb.ElementCount != r.ElementCount || w.ElementCount != r.Cols
            || os.Rows != r.Rows || os.Cols != r.Cols)
            throw new ArgumentException($"scale-add of {sa} and {sb} into {r}, then rms norm with weight {w} into {os}");
        if (r.Rows == 0) return;
        _device.MakeCurrent();
        uint threads = NormThreads(r.Cols, sa.Pointer, sb.Pointer, r.Pointer, w.Pointer, os.Pointer);
        _device.Kernel("elementwise.cu", threads > 0 ? "scale_add_rms_norm_vec8" : "scale_add_rms_norm").Launch((uint)r.Rows, 1, 1, threads > 0 ? threads : 256, 0,
            sa, sa.KernelType, alpha, sb, sb.KernelType, beta, r, r.KernelType, w, w.KernelType, os, os.KernelType, r.Cols, eps);
    }

    public void SigmoidGate(DeviceTensor gate, DeviceTensor x, DeviceTensor output)
    {
        var g = AsCuda(gate);
        var xs = AsCuda(x);
        var o = AsCuda(output);
        if (g.ElementCount != xs.ElementCount || o.ElementCount != xs.ElementCount)
            throw new ArgumentException($"sigmoid gate of {g} and {xs} into {o}");
        _device.MakeCurrent();
        _device.Kernel("elementwise.cu", "sigmoid_gate").Launch(Blocks(xs.ElementCount), 1, 1, ElementwiseBlock, 0,
            g, g.KernelType, xs, xs.KernelType, o, o.KernelType, xs.ElementCount);
    }

    public void MatMul(DeviceTensor x, DeviceTensor weight, DeviceTensor output)
    {
        var xs = AsCuda(x);
        var ws = AsCuda(weight);
        var os = AsCuda(output);
        if (ws.Cols != xs.Cols || os.Rows != xs.Rows || os.Cols != ws.Rows)
            throw new ArgumentException($"matmul of {xs} by {ws}ᵀ into {os}");
        _device.MakeCurrent();
        Gemm(xs.Pointer, xs.DType, (int)xs.Rows, xs.Cols, ws.Pointer, ws.DType, (int)ws.Rows, os.Pointer, os.DType);
    }

    public void MatMulMany(DeviceTensor x, IReadOnlyList<DeviceTensor> weights, IReadOnlyList<DeviceTensor> outputs)
    {
        if (weights.Count != outputs.Count) throw new ArgumentException($"{weights.Count} weights but {outputs.Count} outputs");
        var xs = AsCuda(x);
        var ws = weights.Select(AsCuda).ToArray();
        var os = outputs.Select(AsCuda).ToArray();
        for (int i = 0; i < ws.Length; i++)
            if (ws[i].Cols != xs.Cols || os[i].Rows != xs.Rows || os[i].Cols != ws[i].Rows)
                throw new ArgumentException($"matmul of {xs} by {ws[i]}ᵀ into {os[i]}");
        bool together = ws.Length is >= 2 and <= MatVecManyProducts && xs.Rows > 0
            && Enumerable.Range(0, ws.Length).All(i => os[i].DType == os[0].DType
                && UsesMatVec(xs.Pointer, xs.DType, (int)xs.Rows, xs.Cols, ws[i].Pointer, ws[i].DType, os[i].DType));
        if (!together)
        {
            for (int i = 0; i < ws.Length; i++) MatMul(xs, ws[i], os[i]);
            return;
        }
        _device.MakeCurrent();
        // Unused product slots: no weights, no outputs.
        var slots = new KernelArg[3 * MatVecManyProducts];
        int total = 0;
        for (int i = 0; i < MatVecManyProducts; i++)
        {
            bool used = i < ws.Length;
            slots[3 * i] = used ? ws[i].Pointer : 0UL;
            slots[3 * i + 1] = used ? os[i].Pointer : 0UL;
            slots[3 * i + 2] = used ? (int)ws[i].Rows : 0;
            total += used ? (int)ws[i].Rows : 0;
        }
        const int warps = 8;
        int staged = StagedMatVecBytes((int)xs.Rows, xs.Cols);
        _device.Kernel("elementwise.cu", "matvec_bf16_many").Launch((uint)((total + warps - 1) / warps), 1, 1, 32 * warps, staged,
            [xs.Pointer, (int)xs.Rows, xs.Cols, KernelType(os[0].DType), .. slots, staged > 0 ? 1 : 0]);
    }

    /// <summary>Dynamic shared memory a kernel may take without opting in: the few-row products stage their
    /// input rows there when they fit (one copy per block instead of one read per warp).</summary>
    private const int MaxStagedBytes = 48 * 1024;

    /// <summary>Bytes of x a matvec block stages in shared memory (rows × in bf16), or 0 when it does not fit.</summary>
    private static int StagedMatVecBytes(int rows, int inFeatures) =>
        (long)rows * inFeatures * 2 is var b && b <= MaxStagedBytes ? (int)b : 0;

    /// <summary>Products <c>matvec_bf16_many</c> takes in one launch.</summary>
    private const int MatVecManyProducts = 4;

    /// <summary>Products of at most this many rows with bf16 weights run <c>matvec_bf16</c> (as <c>MATVEC_MAX_ROWS</c> in elementwise.cu).</summary>
    private const int MatVecMaxRows = 4;

    /// <summary>Whether a product runs <c>matvec_bf16</c>: a few bf16 rows (decode) by bf16 weights, 16-byte aligned, into bf16 or float32.</summary>
    private static bool UsesMatVec(ulong x, DType xType, int rows, int inFeatures, ulong w, DType wType, DType yType) =>
        rows <= MatVecMaxRows && wType == DType.BF16 && xType == DType.BF16 && (yType is DType.BF16 or DType.F32)
        && inFeatures % 8 == 0 && x % 16 == 0 && w % 16 == 0;

    /// <summary>
    /// y[rows, outFeatures] = x[rows, inFeatures] · w[outFeatures, inFeatures]ᵀ, row-major, via cuBLAS
    /// (column-major: yᵀ = w · xᵀ), float32 accumulation; a few bf16 rows (decode) take <c>matvec_bf16</c> instead. bf16 weights take bf16 activations (others are
    /// narrowed first) and write bf16 or float32; float32 weights run a full float32 product (activations
    /// widened first, the result narrowed if y is bf16), so float32 checkpoints keep their precision.
    /// In training's bf16 product mode (<see cref="ProductPrecision"/>) a float32 weight is multiplied through its bf16
    /// copy instead, unless <paramref name="exact"/> (the router).
    /// </summary>
    private void Gemm(ulong x, DType xType, int rows, int inFeatures, ulong w, DType wType, int outFeatures, ulong y, DType yType, bool exact = false)
    {
        if (rows == 0 || outFeatures == 0) return;
        if (wType is not (DType.BF16 or DType.F32)) throw new NotSupportedException($"the CUDA matmul takes bf16 or float32 weights, not {wType}");
        if (wType == DType.F32 && ReducedProducts && !exact && inFeatures > 0)
        {
            ulong wb = Bf16Weight(w, (long)outFeatures * inFeatures);
            ulong xb = Bf16Operand("bf16 product operand a", x, xType, (long)rows * inFeatures);
            GemmBf16(Cublas.OpT, Cublas.OpN, outFeatures, rows, inFeatures, wb, inFeatures, xb, inFeatures, 0f, y, CublasType(yType), outFeatures,
                $"{rows}x{inFeatures} by {outFeatures}x{inFeatures}ᵀ");
            return;
        }
        if (UsesMatVec(x, xType, rows, inFeatures, w, wType, yType))
        {
            const int warps = 8;
            int staged = StagedMatVecBytes(rows, inFeatures);
            _device.Kernel("elementwise.cu", "matvec_bf16").Launch((uint)((outFeatures + warps - 1) / warps), 1, 1, 32 * warps, staged,
                x, rows, inFeatures, w, outFeatures, y, KernelType(yType), staged > 0 ? 1 : 0);
            return;
        }
        if (xType != wType)
        {
            ulong converted = Scratch("matmul input", (long)rows * inFeatures * DTypeInfo.SizeOf(wType));
            Convert(x, xType, converted, wType, (long)rows * inFeatures);
            x = converted;
        }
        ulong result = y;
        DType resultType = yType;
        if (wType == DType.F32 && yType != DType.F32)
        {
            result = Scratch("matmul output", (long)rows * outFeatures * 4);
            resultType = DType.F32;
        }
        int abType = wType == DType.F32 ? Cublas.DataF32 : Cublas.DataBF16;
        int cType = resultType switch
        {
            DType.BF16 => Cublas.DataBF16,
            DType.F32 => Cublas.DataF32,
            _ => throw new NotSupportedException($"the CUDA matmul writes bf16 or float32, not {yType}"),
        };
        // In a graph step the library call is written down like a kernel launch (same dimensions, pointers and
        // types launch the same kernels) and skipped in a replay.
        if (_device.Graphs.Launch("cublasGemmEx", CublasGemmLaunchId, (uint)outFeatures, (uint)rows, (uint)inFeatures, 0, 0,
            [w, x, result, (ulong)abType, (ulong)cType]))
        {
            float alpha = 1f, beta = 0f;
            Cublas.Check(Cublas.cublasGemmEx(_device.CublasHandle, Cublas.OpT, Cublas.OpN, outFeatures, rows, inFeatures,
                &alpha, w, abType, inFeatures, x, abType, inFeatures, &beta, result, cType, outFeatures,
                Cublas.ComputeF32, Cublas.GemmDefault), $"cublasGemmEx({rows}x{inFeatures} by {outFeatures}x{inFeatures}ᵀ, {wType})");
        }
        if (result != y) Convert(result, resultType, y, yType, (long)rows * outFeatures);
    }

    /// <summary>Stands for a cuBLAS product in the graph launch log (no kernel handle has this value).</summary>
    private const ulong CublasGemmLaunchId = 0xFFFF_FFFF_FFFF_FF02UL;

    /// <summary>
    /// <paramref name="batch"/> products of one shape in one cuBLAS call (<c>cublasGemmBatchedEx</c>):
    /// y_i[rows, outFeatures] = x_i[rows, inFeatures] · w_i[outFeatures, inFeatures]ᵀ, row-major, bf16 operands, float32
    /// accumulation, bf16 or float32 results; <paramref name="xs"/>, <paramref name="ws"/> and <paramref name="ys"/> are
    /// device arrays of the operands' addresses (16-byte aligned).
    /// </summary>
    private void GemmBatchedBf16(ulong xs, int rows, int inFeatures, ulong ws, int outFeatures, ulong ys, DType yType, int batch)
    {
        if (rows == 0 || outFeatures == 0 || batch == 0) return;
        int cType = yType switch
        {
            DType.BF16 => Cublas.DataBF16,
            DType.F32 => Cublas.DataF32,
            _ => throw new NotSupportedException($"the CUDA matmul writes bf16 or float32, not {yType}"),
        };
        if (_device.Graphs.Launch("cublasGemmBatchedEx", CublasGemmBatchedLaunchId, (uint)outFeatures, (uint)rows, (uint)inFeatures, (uint)batch, 0,
            [ws, xs, ys, (ulong)Cublas.DataBF16, (ulong)cType]))
        {
            float alpha = 1f, beta = 0f;
            Cublas.Check(Cublas.cublasGemmBatchedEx(_device.CublasHandle, Cublas.OpT, Cublas.OpN, outFeatures, rows, inFeatures,
                &alpha, ws, Cublas.DataBF16, inFeatures, xs, Cublas.DataBF16, inFeatures, &beta, ys, cType, outFeatures, batch,
                Cublas.ComputeF32, Cublas.GemmDefault), $"cublasGemmBatchedEx({batch} x {rows}x{inFeatures} by {outFeatures}x{inFeatures}ᵀ)");
        }
    }

    /// <summary>Stands for a batched cuBLAS product in the graph launch log.</summary>
    private const ulong CublasGemmBatchedLaunchId = 0xFFFF_FFFF_FFFF_FF03UL;

    private void Convert(ulong source, DType sourceType, ulong destination, DType destinationType, long n) =>
        _device.Kernel("elementwise.cu", "convert").Launch(Blocks(n), 1, 1, ElementwiseBlock, 0,
            source, KernelType(sourceType), destination, KernelType(destinationType), n);

    internal static int KernelType(DType t) => t switch
    {
        DType.F32 => 0,
        DType.BF16 => 1,
        _ => throw new NotSupportedException($"the CUDA kernels take float32 or bf16, not {t}"),
    };

    public void Rope(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta) =>
        RotateHalves(x, layout, headDim, rotaryDim, theta, inverse: false);

    /// <summary>Rope (or, inverse, its backward: the rotation by the opposite angles) in place.</summary>
    private void RotateHalves(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta, bool inverse)
    {
        var xs = AsCuda(x);
        if (xs.Rows != layout.TotalTokens || headDim <= 0 || xs.Cols % headDim != 0 || rotaryDim > headDim || rotaryDim % 2 != 0)
            throw new ArgumentException($"rope over {xs} with head_dim {headDim}, rotary_dim {rotaryDim}");
        int half = rotaryDim / 2;
        if (half == 0 || layout.TotalTokens == 0) return;
        // inv_freq exactly as the CPU reference computes it (float32).
        var invFreq = new float[half];
        for (int j = 0; j < half; j++) invFreq[j] = 1f / MathF.Pow((float)theta, 2f * j / rotaryDim);
        var positions = new int[layout.TotalTokens];
        foreach (var s in layout.Sequences)
            for (int t = 0; t < s.TokenCount; t++) positions[s.TokenOffset + t] = s.StartPosition + t;
        _device.MakeCurrent();
        var meta = new MetaBuilder();
        int pos = meta.Add(positions), inv = meta.Add(invFreq);
        ulong m = UploadMeta(meta);
        int heads = xs.Cols / headDim;
        _device.Kernel("elementwise.cu", "rope").Launch(Blocks((long)layout.TotalTokens * heads * half), 1, 1, ElementwiseBlock, 0,
            xs, xs.KernelType, m + (ulong)pos, m + (ulong)inv, layout.TotalTokens, heads, headDim, half, inverse ? -1f : 1f);
    }

    /// <summary>Fills a tensor with deterministic pseudo-random values in [-scale, scale) on the device (benchmark inputs).</summary>
    internal void FillRandom(DeviceTensor tensor, uint seed, float scale)
    {
        var t = AsCuda(tensor);
        _device.MakeCurrent();
        _device.Kernel("elementwise.cu", "fill_random").Launch(Blocks(t.ElementCount), 1, 1, ElementwiseBlock, 0,
            t, t.KernelType, t.ElementCount, (int)seed, scale);
    }

    /// <summary>Milliseconds of GPU time <paramref name="work"/> takes, measured with events on the op stream.</summary>
    internal float TimeMilliseconds(Action work)
    {
        _device.Graphs.RequireEager("timing with events");
        _device.MakeCurrent();
        Check(cuEventCreate(out nint start, EventDefault), "cuEventCreate");
        Check(cuEventCreate(out nint end, EventDefault), "cuEventCreate");
        try
        {
            Check(cuEventRecord(start, _device.Stream), "cuEventRecord");
            work();
            Check(cuEventRecord(end, _device.Stream), "cuEventRecord");
            Check(cuEventSynchronize(end), "cuEventSynchronize");
            Check(cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
            return ms;
        }
        finally
        {
            cuEventDestroy(start);
            cuEventDestroy(end);
        }
    }

    public void Synchronize()
    {
        _device.MakeCurrent();
        _device.Synchronize();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _device.MakeCurrent();
        _device.Graphs.Reset();
        _device.Synchronize();
        ReleaseGraphs();
        ReleaseGreedy();
        foreach (var (p, _) in _scratch.Values) _device.Free(p);
        _scratch.Clear();
        foreach (var (_, table) in _expertTables.Values) _device.Free(table);
        _expertTables.Clear();
        ReleaseWeightCopies();
        _cudnn?.Dispose();
        _device.Dispose();
    }

    // ---- helpers ----

    internal static CudaTensor AsCuda(DeviceTensor t) =>
        t as CudaTensor ?? throw new ArgumentException($"tensor {t} does not belong to the CUDA backend");

    /// <summary>Blocks for kernels that take a row per block at a time (grid-stride over rows).</summary>
    private uint RowBlocks(long rows) => (uint)Math.Clamp(rows, 1, (long)_device.Multiprocessors * 16);

    private uint Blocks(long n) =>
        (uint)Math.Clamp((n + ElementwiseBlock - 1) / ElementwiseBlock, 1, (long)_device.Multiprocessors * 32);

    private void CopyToDevice(void* source, ulong destination, long bytes)
    {
        // Pageable source: the call returns once the data is staged, so the caller may reuse its buffer.
        _device.Graphs.RequireEager("a host-to-device copy");
        if (bytes > 0) Check(cuMemcpyHtoDAsync(destination, source, (nuint)bytes, _device.Stream), "cuMemcpyHtoDAsync");
    }

    private void CopyToHost(ulong source, void* destination, long bytes)
    {
        _device.Graphs.RequireEager("a device-to-host copy");
        if (bytes > 0) Check(cuMemcpyDtoHAsync(destination, source, (nuint)bytes, _device.Stream), "cuMemcpyDtoHAsync");
        _device.Synchronize();
    }

    /// <summary>A device buffer of at least <paramref name="bytes"/> bytes, reused by later ops (grown, never shrunk).</summary>
    private ulong Scratch(string name, long bytes)
    {
        if (_scratch.TryGetValue(name, out var s) && s.Bytes >= bytes) return s.Pointer;
        if (s.Pointer != 0)
        {
            _device.Synchronize();   // queued kernels may still read the old buffer
            _device.Free(s.Pointer);
            _scratch.Remove(name);
        }
        long size = Math.Max(bytes, s.Bytes * 2);
        ulong p = _device.Allocate(size, $"scratch buffer '{name}'");
        _scratch[name] = (p, size);
        return p;
    }

    /// <summary>Copies the op's host-side arguments (ids, layouts, pointers) into the op-argument buffer; stream order keeps later ops from overwriting it early.
    /// Returns the device address of the first byte.</summary>
    private ulong UploadMeta(MetaBuilder meta)
    {
        var bytes = meta.Bytes;
        // In a graph step the arguments go to a fixed offset of the graph argument buffer (uploaded in one
        // copy before the graph runs); the offsets come out the same in every replay of the step.
        if (_device.Graphs.Mode != StepGraphMode.Eager) return GraphArguments + (ulong)_device.Graphs.Stage(bytes);
        ulong p = Scratch("op arguments", Math.Max(bytes.Length, 4096));
        fixed (byte* b = bytes) CopyToDevice(b, p, bytes.Length);
        return p;
    }

    /// <summary>Packs arrays of op arguments into one byte buffer, each 16-byte aligned; Add returns its byte offset.</summary>
    private sealed class MetaBuilder
    {
        private readonly List<byte> _bytes = [];

        public int Add<T>(ReadOnlySpan<T> values) where T : unmanaged
        {
            while (_bytes.Count % 16 != 0) _bytes.Add(0);
            int at = _bytes.Count;
            _bytes.AddRange(MemoryMarshal.AsBytes(values));
            return at;
        }

        public int Add<T>(T[] values) where T : unmanaged => Add((ReadOnlySpan<T>)values);

        public byte[] Bytes => [.. _bytes];
    }

    /// <summary>Validates a shape and sizes it without allocating (DeviceTensor's constructor rules).</summary>
    private readonly struct ShapeProbe
    {
        public ShapeProbe(DType type, int[] shape)
        {
            if (shape.Length == 0) throw new ArgumentException("a tensor needs at least one dimension");
            long n = 1;
            foreach (int d in shape)
            {
                if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
                n *= d;
            }
            ByteLength = n * DTypeInfo.SizeOf(type);
        }

        public long ByteLength { get; }
    }
}
