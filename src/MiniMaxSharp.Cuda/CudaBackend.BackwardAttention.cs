using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cuda;

// Backward passes of the attention ops (IGradientBackend); kernels in Kernels/backward_attention.cu.
public sealed unsafe partial class CudaBackend
{
    /// <summary>Largest head_dim of the attention backward kernels (SB_MAX_D; lightning_backward runs d/32 ≤ 8 warps).</summary>
    private const int BackwardMaxHeadDim = 256;

    /// <summary>Tokens staged per chunk by <c>lightning_backward</c> (LB_CHUNK).</summary>
    private const int LightningBackwardChunk = 16;

    /// <summary>Warps per CTA of the softmax backward kernels (SB_WARPS).</summary>
    private const int SoftmaxBackwardWarps = 4;

    // Three recurrences (dq forwards in time, dk and dv backwards), each a CTA per (32 channels, head,
    // sequence); blockSize only orders the CPU's float sums, the GPU walks token by token.
    public void LightningAttentionBackward(DeviceTensor qkv, BatchLayout layout, ReadOnlySpan<float> slopes,
        int headDim, int blockSize, DeviceTensor dOutput, DeviceTensor dQkv)
    {
        var qkvT = AsCuda(qkv);
        var gT = AsCuda(dOutput);
        var dT = AsCuda(dQkv);
        int heads = slopes.Length, d = headDim, T = layout.TotalTokens;
        if (d <= 0 || qkvT.Cols != 3 * heads * d || qkvT.Rows != T || gT.Cols != heads * d || gT.Rows != T || dT.Cols != qkvT.Cols || dT.Rows != T)
            throw new ArgumentException($"lightning attention backward: qkv {qkvT}, dOutput {gT}, dQkv {dT}, {heads} heads of {d}, {T} tokens");
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        if (d > BackwardMaxHeadDim) throw new NotSupportedException($"lightning attention backward supports head_dim up to {BackwardMaxHeadDim}, not {d}");
        if (T == 0 || heads == 0) return;
        _device.MakeCurrent();
        var meta = new MetaBuilder();
        int offsets = meta.Add(layout.Sequences.Select(s => s.TokenOffset).ToArray());
        int counts = meta.Add(layout.Sequences.Select(s => s.TokenCount).ToArray());
        int slopeAt = meta.Add(slopes);
        ulong m = UploadMeta(meta);
        int warps = (d + 31) / 32, rows = 32 * warps;
        int shared = (2 * LightningBackwardChunk * rows + 2 * LightningBackwardChunk * 32 + warps * LightningBackwardChunk * 32) * sizeof(float);
        _device.Kernel("backward_attention.cu", "lightning_backward").Launch((uint)warps, (uint)(3 * heads), (uint)layout.Count, (uint)(32 * warps), shared,
            qkvT, qkvT.KernelType, gT, gT.KernelType, dT, dT.KernelType, m + (ulong)offsets, m + (ulong)counts, m + (ulong)slopeAt, heads, d);
    }

    public void RopeBackward(DeviceTensor dX, BatchLayout layout, int headDim, int rotaryDim, double theta) =>
        RotateHalves(dX, layout, headDim, rotaryDim, theta, inverse: true);

    // Kernel 1 per (query, head): the row's softmax statistics and dQ; kernel 2 per (key, KV head): dK and dV.
    public void SoftmaxAttentionBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        AttentionShape shape, DeviceTensor dOutput, DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV)
    {
        var qs = AsCuda(q);
        var ks = AsCuda(k);
        var vs = AsCuda(v);
        var gs = AsCuda(dOutput);
        var dqs = AsCuda(dQ);
        var dks = AsCuda(dK);
        var dvs = AsCuda(dV);
        int d = shape.HeadDim, H = shape.Heads, KV = shape.KvHeads, T = layout.TotalTokens;
        foreach (var (t, width) in new[] { (qs, shape.Width), (ks, shape.KvWidth), (vs, shape.KvWidth), (gs, shape.Width), (dqs, shape.Width), (dks, shape.KvWidth), (dvs, shape.KvWidth) })
            if (t.Cols != width || t.Rows != T)
                throw new ArgumentException($"softmax attention backward: q {qs}, k {ks}, v {vs}, dOutput {gs}, dQ {dqs}, dK {dks}, dV {dvs}, shape {shape}, {T} tokens");
        if (d <= 0 || KV <= 0 || H % KV != 0) throw new ArgumentException($"softmax attention backward: {H} query heads do not split into groups over {KV} KV heads of {d}");
        if (d > BackwardMaxHeadDim) throw new NotSupportedException($"softmax attention backward supports head_dim up to {BackwardMaxHeadDim}, not {d}");
        foreach (var s in layout.Sequences)
            if (s.StartPosition != 0) throw new ArgumentException($"softmax attention backward needs whole sequences; one starts at position {s.StartPosition}");
        if (T == 0) return;
        _device.MakeCurrent();
        var seqStart = new int[T];
        var seqEnd = new int[T];
        foreach (var s in layout.Sequences)
            for (int t = 0; t < s.TokenCount; t++)
            {
                seqStart[s.TokenOffset + t] = s.TokenOffset;
                seqEnd[s.TokenOffset + t] = s.TokenOffset + s.TokenCount;
            }
        var meta = new MetaBuilder();
        int startAt = meta.Add(seqStart), endAt = meta.Add(seqEnd);
        ulong m = UploadMeta(meta);
        ulong stats = Scratch("softmax backward row statistics", (long)T * H * 2 * sizeof(float));
        float scale = 1f / MathF.Sqrt(d);
        const uint threads = 32 * SoftmaxBackwardWarps;
        uint rowBlocks = (uint)((T + SoftmaxBackwardWarps - 1) / SoftmaxBackwardWarps);
        _device.Kernel("backward_attention.cu", "softmax_backward_query").Launch(rowBlocks, (uint)H, 1, threads, 0,
            qs, qs.KernelType, ks, ks.KernelType, vs, vs.KernelType, gs, gs.KernelType, m + (ulong)startAt, T, H, KV, d, scale, dqs, dqs.KernelType, stats);
        _device.Kernel("backward_attention.cu", "softmax_backward_key").Launch(rowBlocks, (uint)KV, 1, threads, 0,
            qs, qs.KernelType, ks, ks.KernelType, vs, vs.KernelType, gs, gs.KernelType, m + (ulong)endAt, T, H, KV, d, scale, stats,
            dks, dks.KernelType, dvs, dvs.KernelType);
    }
}
