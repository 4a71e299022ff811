using System.Buffers;
using System.Numerics.Tensors;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Rope(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta)
        => RotateHalves(x, layout, headDim, rotaryDim, theta, inverse: false);

    public void RopeBackward(DeviceTensor dX, BatchLayout layout, int headDim, int rotaryDim, double theta)
        => RotateHalves(dX, layout, headDim, rotaryDim, theta, inverse: true);

    /// <summary>The rotation is orthogonal, so its backward is the rotation by the opposite angles.</summary>
    private void RotateHalves(DeviceTensor x, BatchLayout layout, int headDim, int rotaryDim, double theta, bool inverse)
    {
        var xs = AsCpu(x);
        if (xs.Rows != layout.TotalTokens || xs.Cols % headDim != 0 || rotaryDim > headDim || rotaryDim % 2 != 0)
            throw new ArgumentException($"rope over {xs} with head_dim {headDim}, rotary_dim {rotaryDim}");
        int heads = xs.Cols / headDim, half = rotaryDim / 2;
        // The references compute inv_freq and angle = position · inv_freq in float32.
        var invFreq = new float[half];
        for (int j = 0; j < half; j++) invFreq[j] = 1f / MathF.Pow((float)theta, 2f * j / rotaryDim);
        float* xp = xs.F32;
        int width = xs.Cols;
        foreach (var span in layout.Sequences)
        {
            For(span.TokenCount, heads * rotaryDim * 8, t =>
            {
                float pos = span.StartPosition + t;
                Span<float> cos = stackalloc float[half], sin = stackalloc float[half];
                for (int j = 0; j < half; j++)
                {
                    float angle = pos * invFreq[j];
                    cos[j] = (float)Math.Cos(angle);
                    sin[j] = inverse ? -(float)Math.Sin(angle) : (float)Math.Sin(angle);
                }
                float* row = xp + (long)(span.TokenOffset + t) * width;
                for (int h = 0; h < heads; h++)
                {
                    float* v = row + h * headDim;
                    for (int j = 0; j < half; j++)
                    {
                        float a = v[j], b = v[j + half];
                        v[j] = a * cos[j] - b * sin[j];
                        v[j + half] = b * cos[j] + a * sin[j];
                    }
                }
            });
        }
    }

    // Work items are (sequence, query head, tile of queries); each computes scores against the cached
    // keys up to its last query's position, masks causally, softmaxes and multiplies by the values.
    public void SoftmaxAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        IReadOnlyList<KvCache> caches, AttentionShape shape, DeviceTensor output)
    {
        var qs = AsCpu(q);
        var ks = AsCpu(k);
        var vs = AsCpu(v);
        var os = AsCpu(output);
        int d = shape.HeadDim, H = shape.Heads, KV = shape.KvHeads;
        if (qs.Cols != shape.Width || ks.Cols != shape.KvWidth || vs.Cols != shape.KvWidth || os.Cols != shape.Width
            || qs.Rows != layout.TotalTokens || ks.Rows != layout.TotalTokens || vs.Rows != layout.TotalTokens || os.Rows != layout.TotalTokens)
            throw new ArgumentException($"softmax attention: q {qs}, k {ks}, v {vs}, output {os}, shape {shape}");
        if (caches.Count != layout.Count) throw new ArgumentException($"{caches.Count} caches for {layout.Count} sequences");
        int kvw = shape.KvWidth;
        // Append this step's keys and values at their positions.
        for (int s = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            var c = caches[s];
            if (span.EndPosition > c.Capacity)
                throw new InvalidOperationException($"KV cache of sequence {s} holds {c.Capacity} positions; {span.EndPosition} needed");
            var kc = AsCpu(c.Keys);
            var vc = AsCpu(c.Values);
            long bytes = (long)span.TokenCount * kvw * sizeof(float);
            Buffer.MemoryCopy(ks.F32 + (long)span.TokenOffset * kvw, kc.F32 + (long)span.StartPosition * kvw, bytes, bytes);
            Buffer.MemoryCopy(vs.F32 + (long)span.TokenOffset * kvw, vc.F32 + (long)span.StartPosition * kvw, bytes, bytes);
        }

        // Query tiles bound the score buffer (tile × context floats).
        var work = new List<(int Seq, int Head, int Start, int Count)>();
        foreach (var (span, s) in layout.Sequences.Select((x, i) => (x, i)))
        {
            int tile = (int)Math.Clamp(4_194_304L / Math.Max(1, span.EndPosition), 1, 64);
            for (int h = 0; h < H; h++)
                for (int t = 0; t < span.TokenCount; t += tile)
                    work.Add((s, h, t, Math.Min(tile, span.TokenCount - t)));
        }
        float scale = 1f / MathF.Sqrt(d);
        float* qp = qs.F32, op = os.F32;
        int group = H / KV;
        long costPer = (long)layout.TotalTokens * 64 * d / Math.Max(1, work.Count) + 4096;
        For(work.Count, costPer, w =>
        {
            var (s, h, t0, count) = work[w];
            var span = layout.Sequences[s];
            var cache = caches[s];
            float* kc = ((CpuTensor)cache.Keys).F32 + (h / group) * d;
            float* vc = ((CpuTensor)cache.Values).F32 + (h / group) * d;
            int ctx = span.StartPosition + t0 + count;   // keys visible to the last query of the tile
            float[] rented = ArrayPool<float>.Shared.Rent(count * ctx);
            try
            {
                fixed (float* scores = rented)
                {
                    float* qTile = qp + (long)(span.TokenOffset + t0) * shape.Width + h * d;
                    Gemm.MatMulNT(qTile, shape.Width, kc, DType.F32, kvw, scores, ctx, count, ctx, d, accumulate: false, threads: 1);
                    for (int i = 0; i < count; i++)
                    {
                        int visible = span.StartPosition + t0 + i + 1;
                        var row = new Span<float>(scores + (long)i * ctx, ctx);
                        var live = row[..visible];
                        TensorPrimitives.Multiply(live, scale, live);
                        float max = TensorPrimitives.Max(live);
                        TensorPrimitives.Subtract(live, max, live);
                        TensorPrimitives.Exp(live, live);
                        float sum = TensorPrimitives.Sum(live);
                        TensorPrimitives.Multiply(live, 1f / sum, live);
                        row[visible..].Clear();
                    }
                    float* oTile = op + (long)(span.TokenOffset + t0) * shape.Width + h * d;
                    Gemm.MatMulNN(scores, ctx, vc, kvw, oTile, shape.Width, count, d, ctx, accumulate: false, threads: 1);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }
}
