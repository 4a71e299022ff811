using System.Buffers;
using System.Numerics.Tensors;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

// Backward of the mixture of experts and the statistics of its load-balancing loss.
public sealed unsafe partial class CpuBackend
{
    public void RouterStatistics(DeviceTensor x, DeviceTensor router, int topK, Span<double> slotCounts, Span<double> probabilitySums)
    {
        var xs = AsCpu(x);
        var rs = AsCpu(router);
        int E = (int)rs.Rows, T = (int)xs.Rows;
        if (rs.Cols != xs.Cols || slotCounts.Length != E || probabilitySums.Length != E || topK < 1 || topK > E)
            throw new ArgumentException($"router statistics: x {xs}, router {rs}, top-{topK}, {slotCounts.Length}/{probabilitySums.Length} expert slots");
        var (probs, chosen, _) = Route(xs, rs, E, topK);
        foreach (int e in chosen) slotCounts[e] += 1;
        for (int t = 0; t < T; t++)
            for (int e = 0; e < E; e++) probabilitySums[e] += probs[t * E + e];
    }

    // out[t] = Σ_j w_j y_j with w_j = p_j / N, N = Σ_top p. Per slot: dy_j = w_j·dOut[t], ∂L/∂w_j = dOut[t]·y_j.
    // Renormalisation: ∂L/∂p_j = (∂L/∂w_j − Σ_i w_i ∂L/∂w_i) / N for chosen j (0 for the others), plus the
    // load-balancing term; softmax: ∂L/∂z_e = p_e (∂L/∂p_e − Σ_f p_f ∂L/∂p_f).
    public void MixtureOfExpertsBackward(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK,
        DeviceTensor dOutput, ReadOnlySpan<float> routerProbabilityGradient, DeviceTensor dX, bool accumulate,
        DeviceTensor dRouter, IReadOnlyList<ExpertWeights> dExperts)
    {
        var xs = AsCpu(x);
        var rs = F32Weight(router, "MoE backward");
        var gs = AsCpu(dOutput);
        var dxs = AsCpu(dX);
        var drs = AsCpu(dRouter);
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count;
        if (rs.Rows != E || rs.Cols != hidden || gs.Rows != T || gs.Cols != hidden || dxs.Rows != T || dxs.Cols != hidden
            || drs.Rows != E || drs.Cols != hidden || dExperts.Count != E || topK < 1 || topK > E
            || (routerProbabilityGradient.Length != 0 && routerProbabilityGradient.Length != E))
            throw new ArgumentException($"MoE backward: x {xs}, router {rs}, {E} experts ({dExperts.Count} gradients), top-{topK}, dOutput {gs}, dX {dxs}, dRouter {drs}");
        int inter = (int)experts[0].W1.Rows;

        var (probs, chosen, weights) = Route(xs, rs, E, topK);
        var (counts, offsets, slotToken, slotIndex) = GroupByExpert(chosen, topK, E);
        if (!accumulate) dxs.AsSpan().Clear();
        var dWeights = new float[T * topK];

        int maxGroup = Math.Max(1, counts.Max());
        float[] rented = ArrayPool<float>.Shared.Rent(checked(3 * maxGroup * hidden + 4 * maxGroup * inter));
        try
        {
            fixed (float* buf = rented)
            {
                float* xg = buf, yg = xg + maxGroup * hidden, dyg = yg + maxGroup * hidden;
                float* h1 = dyg + maxGroup * hidden, h3 = h1 + maxGroup * inter, act = h3 + maxGroup * inter, dact = act + maxGroup * inter;
                for (int e = 0; e < E; e++)
                {
                    int n = counts[e];
                    if (n == 0) continue;
                    var w1 = F32Weight(experts[e].W1, "MoE backward");
                    var w2 = F32Weight(experts[e].W2, "MoE backward");
                    var w3 = F32Weight(experts[e].W3, "MoE backward");
                    var d1 = AsCpu(dExperts[e].W1);
                    var d2 = AsCpu(dExperts[e].W2);
                    var d3 = AsCpu(dExperts[e].W3);
                    if (w1.ElementCount != d1.ElementCount || w2.ElementCount != d2.ElementCount || w3.ElementCount != d3.ElementCount)
                        throw new ArgumentException($"MoE backward: expert {e} gradients do not match its weights");
                    for (int i = 0; i < n; i++)
                        new ReadOnlySpan<float>(xs.F32 + (long)slotToken[offsets[e] + i] * hidden, hidden).CopyTo(new Span<float>(xg + (long)i * hidden, hidden));
                    Gemm.MatMulNT(xg, hidden, w1.F32, DType.F32, hidden, h1, inter, n, inter, hidden, false, Threads);
                    Gemm.MatMulNT(xg, hidden, w3.F32, DType.F32, hidden, h3, inter, n, inter, hidden, false, Threads);
                    for (long i = 0; i < (long)n * inter; i++) act[i] = Silu(h1[i]) * h3[i];
                    Gemm.MatMulNT(act, inter, w2.F32, DType.F32, inter, yg, hidden, n, hidden, inter, false, Threads);
                    for (int i = 0; i < n; i++)
                    {
                        int slot = slotIndex[offsets[e] + i];
                        var g = new ReadOnlySpan<float>(gs.F32 + (long)slotToken[offsets[e] + i] * hidden, hidden);
                        dWeights[slot] = TensorPrimitives.Dot(g, new ReadOnlySpan<float>(yg + (long)i * hidden, hidden));
                        TensorPrimitives.Multiply(g, weights[slot], new Span<float>(dyg + (long)i * hidden, hidden));
                    }
                    AddTransposedProduct(dyg, hidden, act, inter, d2.F32, inter, n, hidden, inter, Threads);
                    Gemm.MatMulNN(dyg, hidden, w2.F32, inter, dact, inter, n, inter, hidden, false, Threads);
                    for (long i = 0; i < (long)n * inter; i++)
                    {
                        float a = h1[i], da = dact[i];
                        h1[i] = da * h3[i] * SiluDerivative(a);   // dh1, in place
                        h3[i] = da * Silu(a);                      // dh3, in place
                    }
                    AddTransposedProduct(h1, inter, xg, hidden, d1.F32, hidden, n, inter, hidden, Threads);
                    AddTransposedProduct(h3, inter, xg, hidden, d3.F32, hidden, n, inter, hidden, Threads);
                    Gemm.MatMulNN(h1, inter, w1.F32, hidden, dyg, hidden, n, hidden, inter, false, Threads);
                    Gemm.MatMulNN(h3, inter, w3.F32, hidden, dyg, hidden, n, hidden, inter, true, Threads);
                    for (int i = 0; i < n; i++)
                    {
                        var dst = new Span<float>(dxs.F32 + (long)slotToken[offsets[e] + i] * hidden, hidden);
                        TensorPrimitives.Add(dst, new ReadOnlySpan<float>(dyg + (long)i * hidden, hidden), dst);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }

        // Router logits.
        var dLogits = new float[T * E];
        var dp = new double[E];
        for (int t = 0; t < T; t++)
        {
            Array.Clear(dp);
            double norm = 0, weighted = 0;
            for (int j = 0; j < topK; j++)
            {
                norm += probs[t * E + chosen[t * topK + j]];
                weighted += (double)weights[t * topK + j] * dWeights[t * topK + j];
            }
            for (int j = 0; j < topK; j++)
                dp[chosen[t * topK + j]] = (dWeights[t * topK + j] - weighted) / norm;
            for (int e = 0; e < routerProbabilityGradient.Length; e++) dp[e] += routerProbabilityGradient[e];
            double mean = 0;
            for (int e = 0; e < E; e++) mean += probs[t * E + e] * dp[e];
            for (int e = 0; e < E; e++) dLogits[t * E + e] = (float)(probs[t * E + e] * (dp[e] - mean));
        }
        fixed (float* dl = dLogits)
        {
            Gemm.MatMulNN(dl, E, rs.F32, hidden, dxs.F32, hidden, T, hidden, E, accumulate: true, Threads);
            AddTransposedProduct(dl, E, xs.F32, hidden, drs.F32, hidden, T, E, hidden, Threads);
        }
    }
}
