using System.Buffers;
using System.Numerics.Tensors;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Route every token, group tokens by expert, run each expert's SwiGLU once over its group
    // (three matrix products), and add the weighted results back into the tokens' rows.
    public void MixtureOfExperts(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts,
        int topK, DeviceTensor output)
    {
        var xs = AsCpu(x);
        var os = AsCpu(output);
        var rs = AsCpu(router);
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count;
        if (rs.Rows != E || rs.Cols != hidden || os.Rows != T || os.Cols != hidden || topK < 1 || topK > E)
            throw new ArgumentException($"MoE: x {xs}, router {rs}, {E} experts, top-{topK}, output {os}");
        int inter = (int)experts[0].W1.Rows;

        var (_, chosen, weights) = Route(xs, rs, E, topK);
        var (counts, offsets, slotToken, slotIndex) = GroupByExpert(chosen, topK, E);

        os.AsSpan().Clear();
        int maxGroup = counts.Max();
        float[] xg = ArrayPool<float>.Shared.Rent(Math.Max(1, maxGroup * hidden));
        float[] h1 = ArrayPool<float>.Shared.Rent(Math.Max(1, maxGroup * inter));
        float[] h3 = ArrayPool<float>.Shared.Rent(Math.Max(1, maxGroup * inter));
        float[] yg = ArrayPool<float>.Shared.Rent(Math.Max(1, maxGroup * hidden));
        try
        {
            fixed (float* pxg = xg, ph1 = h1, ph3 = h3, pyg = yg)
            {
                for (int e = 0; e < E; e++)
                {
                    int n = counts[e];
                    if (n == 0) continue;
                    var ex = experts[e];
                    var w1 = AsCpu(ex.W1);
                    var w2 = AsCpu(ex.W2);
                    var w3 = AsCpu(ex.W3);
                    for (int i = 0; i < n; i++)
                        new ReadOnlySpan<float>(xs.F32 + (long)slotToken[offsets[e] + i] * hidden, hidden)
                            .CopyTo(new Span<float>(pxg + (long)i * hidden, hidden));
                    Gemm.MatMulNT(pxg, hidden, w1.Data, w1.DType, hidden, ph1, inter, n, inter, hidden, false, Threads);
                    Gemm.MatMulNT(pxg, hidden, w3.Data, w3.DType, hidden, ph3, inter, n, inter, hidden, false, Threads);
                    // silu(h1) ⊙ h3 = h1 ⊙ sigmoid(h1) ⊙ h3
                    SiluMul(new Span<float>(ph1, n * inter), new ReadOnlySpan<float>(ph3, n * inter));
                    Gemm.MatMulNT(ph1, inter, w2.Data, w2.DType, inter, pyg, hidden, n, hidden, inter, false, Threads);
                    for (int i = 0; i < n; i++)
                    {
                        var dst = new Span<float>(os.F32 + (long)slotToken[offsets[e] + i] * hidden, hidden);
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(pyg + (long)i * hidden, hidden), weights[slotIndex[offsets[e] + i]], dst, dst);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(xg);
            ArrayPool<float>.Shared.Return(h1);
            ArrayPool<float>.Shared.Return(h3);
            ArrayPool<float>.Shared.Return(yg);
        }
    }

    /// <summary>Router: p = softmax(x·routerᵀ) in float32 [T, E]; the top-k experts of each token and their renormalised weights [T, k].</summary>
    private (float[] Probs, int[] Chosen, float[] Weights) Route(CpuTensor xs, CpuTensor rs, int E, int topK)
    {
        int T = (int)xs.Rows, hidden = xs.Cols;
        var probs = new float[T * E];
        fixed (float* pp = probs)
            Gemm.MatMulNT(xs.F32, hidden, rs.Data, rs.DType, hidden, pp, E, T, E, hidden, accumulate: false, Threads);
        var chosen = new int[T * topK];
        var weights = new float[T * topK];
        for (int t = 0; t < T; t++)
        {
            var p = probs.AsSpan(t * E, E);
            TensorPrimitives.SoftMax(p, p);
            SelectTopK(p, chosen.AsSpan(t * topK, topK), weights.AsSpan(t * topK, topK));
        }
        return (probs, chosen, weights);
    }

    /// <summary>The (token, slot) pairs grouped by expert: expert e's slots are [offsets[e], offsets[e+1]); slot = t·k + j.</summary>
    private static (int[] Counts, int[] Offsets, int[] SlotToken, int[] SlotIndex) GroupByExpert(int[] chosen, int topK, int E)
    {
        var counts = new int[E];
        foreach (int e in chosen) counts[e]++;
        var offsets = new int[E + 1];
        for (int e = 0; e < E; e++) offsets[e + 1] = offsets[e] + counts[e];
        var slotToken = new int[chosen.Length];
        var slotIndex = new int[chosen.Length];
        var fill = (int[])offsets.Clone();
        for (int s = 0; s < chosen.Length; s++)
        {
            int at = fill[chosen[s]]++;
            slotToken[at] = s / topK;
            slotIndex[at] = s;
        }
        return (counts, offsets, slotToken, slotIndex);
    }

    /// <summary>gate = silu(gate) ⊙ up, in place.</summary>
    private static void SiluMul(Span<float> gate, ReadOnlySpan<float> up)
    {
        const int chunk = 1024;
        Span<float> s = stackalloc float[chunk];
        for (int i = 0; i < gate.Length; i += chunk)
        {
            int len = Math.Min(chunk, gate.Length - i);
            var g = gate.Slice(i, len);
            var sg = s[..len];
            TensorPrimitives.Sigmoid(g, sg);
            TensorPrimitives.Multiply(g, sg, g);
            TensorPrimitives.Multiply(g, up.Slice(i, len), g);
        }
    }

    /// <summary>The k largest probabilities (ties: lower index first), renormalised to sum to one.</summary>
    internal static void SelectTopK(ReadOnlySpan<float> probs, Span<int> indices, Span<float> weights)
    {
        int k = indices.Length;
        for (int j = 0; j < k; j++)
        {
            int best = -1;
            for (int e = 0; e < probs.Length; e++)
            {
                if (indices[..j].Contains(e)) continue;
                if (best < 0 || probs[e] > probs[best]) best = e;
            }
            indices[j] = best;
            weights[j] = probs[best];
        }
        float sum = TensorPrimitives.Sum(weights);
        TensorPrimitives.Multiply(weights, 1f / sum, weights);
    }
}
