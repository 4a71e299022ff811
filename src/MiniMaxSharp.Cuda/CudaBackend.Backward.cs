using MiniMaxSharp.Backends.Cuda.Interop;
using MiniMaxSharp.Tensors;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

// Backward passes of the element-wise ops, norms, linear layers, the mixture of experts and the fused LM head +
// cross-entropy, and the optimiser ops (IGradientBackend; the attention backwards are in
// CudaBackend.BackwardAttention.cs). Training keeps every tensor in float32, so these ops take float32 only;
// products run through cuBLAS in full float32, the rest in Kernels/backward.cu.
public sealed unsafe partial class CudaBackend
{
    /// <summary>Logits the fused LM head + cross-entropy holds at once by default (float32 elements: 128 MiB).</summary>
    internal const int CrossEntropyChunkElements = 1 << 25;

    /// <summary>Logits the fused LM head + cross-entropy holds at once (verify lowers it to check many chunks on small shapes).</summary>
    internal int CrossEntropyChunkBudget { get; set; } = CrossEntropyChunkElements;

    /// <summary>Threads of the backward kernels' row blocks (BW_THREADS in backward.cu).</summary>
    private const uint BackwardBlock = 256;

    public void Clear(DeviceTensor tensor)
    {
        var t = AsCuda(tensor);
        _device.MakeCurrent();
        if (t.ByteLength > 0) Check(cuMemsetD8Async(t.Pointer, 0, (nuint)t.ByteLength, _device.Stream), "cuMemsetD8Async");
    }

    public void EmbeddingBackward(ReadOnlySpan<int> ids, DeviceTensor dOutput, DeviceTensor dTable)
    {
        var g = F32(dOutput, "embedding backward");
        var t = F32(dTable, "embedding backward");
        int hidden = t.Cols;
        if (g.Cols != hidden || g.Rows != ids.Length) throw new ArgumentException($"embedding backward of {ids.Length} ids: dOutput {g}, dTable {t}");
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= t.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} at position {i} is outside the vocabulary (0..{t.Rows - 1})");
        if (ids.Length == 0 || hidden == 0) return;
        _device.MakeCurrent();
        var meta = new MetaBuilder();
        int at = meta.Add(ids);
        ulong m = UploadMeta(meta);
        _device.Kernel("backward.cu", "embedding_backward").Launch(Blocks((long)ids.Length * hidden), 1, 1, ElementwiseBlock, 0,
            g, m + (ulong)at, t, ids.Length, hidden);
    }

    public void RmsNormBackward(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor dOutput,
        DeviceTensor dX, bool accumulate, DeviceTensor dWeight)
    {
        var xs = F32(x, "RMSNorm backward");
        var ws = F32(weight, "RMSNorm backward");
        var gs = F32(dOutput, "RMSNorm backward");
        var dxs = F32(dX, "RMSNorm backward");
        var dws = F32(dWeight, "RMSNorm backward");
        int n = xs.Cols;
        long rows = xs.Rows;
        if (ws.ElementCount != n || dws.ElementCount != n || gs.Cols != n || gs.Rows != rows || dxs.Cols != n || dxs.Rows != rows)
            throw new ArgumentException($"RMSNorm backward: x {xs}, weight {ws}, dOutput {gs}, dX {dxs}, dWeight {dws}");
        if (rows == 0 || n == 0) return;
        _device.MakeCurrent();
        ulong invRms = Scratch("rms norm backward inverse rms", rows * 4);
        _device.Kernel("backward.cu", "rms_norm_backward").Launch((uint)rows, 1, 1, BackwardBlock, 0,
            xs, ws, gs, dxs, invRms, n, eps, accumulate ? 1 : 0);
        // Row chunks keep the grid's y extent under its limit (65535) and the atomics per column few.
        int rowsPerBlock = (int)Math.Max(64, (rows + 65534) / 65535);
        _device.Kernel("backward.cu", "rms_norm_weight_grad").Launch((uint)((n + BackwardBlock - 1) / BackwardBlock), (uint)((rows + rowsPerBlock - 1) / rowsPerBlock), 1, BackwardBlock, 0,
            xs, gs, invRms, dws, (int)rows, n, rowsPerBlock);
    }

    public void MatMulBackward(DeviceTensor x, DeviceTensor weight, DeviceTensor dOutput,
        DeviceTensor? dX, bool accumulate, DeviceTensor dWeight)
    {
        var xs = F32(x, "matmul backward");
        var ws = F32(weight, "matmul backward");
        var gs = F32(dOutput, "matmul backward");
        var dws = F32(dWeight, "matmul backward");
        int T = (int)xs.Rows, k = xs.Cols, m = (int)ws.Rows;
        if (ws.Cols != k || gs.Rows != T || gs.Cols != m || dws.Rows != m || dws.Cols != k)
            throw new ArgumentException($"matmul backward: x {xs}, weight {ws}, dOutput {gs}, dWeight {dws}");
        _device.MakeCurrent();
        if (dX is not null)
        {
            var dxs = F32(dX, "matmul backward");
            if (dxs.Rows != T || dxs.Cols != k) throw new ArgumentException($"matmul backward: dX {dxs} for x {xs}");
            MultiplyF32(gs.Pointer, ws.Pointer, dxs.Pointer, T, m, k, accumulate);
        }
        AddTransposedProductF32(gs.Pointer, xs.Pointer, dws.Pointer, T, m, k);
    }

    public void SigmoidGateBackward(DeviceTensor gate, DeviceTensor x, DeviceTensor dOutput, DeviceTensor dGate, DeviceTensor dX)
    {
        var g = F32(gate, "sigmoid gate backward");
        var xs = F32(x, "sigmoid gate backward");
        var go = F32(dOutput, "sigmoid gate backward");
        var dg = F32(dGate, "sigmoid gate backward");
        var dx = F32(dX, "sigmoid gate backward");
        long n = xs.ElementCount;
        if (g.ElementCount != n || go.ElementCount != n || dg.ElementCount != n || dx.ElementCount != n)
            throw new ArgumentException($"sigmoid gate backward: gate {g}, x {xs}, dOutput {go}, dGate {dg}, dX {dx}");
        if (n == 0) return;
        _device.MakeCurrent();
        _device.Kernel("backward.cu", "sigmoid_gate_backward").Launch(Blocks(n), 1, 1, ElementwiseBlock, 0, g, xs, go, dg, dx, n);
    }

    public void RouterStatistics(DeviceTensor x, DeviceTensor router, int topK, Span<double> slotCounts, Span<double> probabilitySums)
    {
        var xs = F32(x, "router statistics");
        var rs = F32(router, "router statistics");
        int E = (int)rs.Rows, T = (int)xs.Rows;
        if (rs.Cols != xs.Cols || slotCounts.Length != E || probabilitySums.Length != E || topK < 1 || topK > E)
            throw new ArgumentException($"router statistics: x {xs}, router {rs}, top-{topK}, {slotCounts.Length}/{probabilitySums.Length} expert slots");
        if (T == 0) return;
        _device.MakeCurrent();
        var (chosen, _, probs) = RouteForBackward(xs, rs, E, topK);
        ulong stats = Scratch("router statistics", 2L * E * 8);
        _device.Kernel("backward.cu", "router_statistics").Launch((uint)E, 1, 1, BackwardBlock, 0, probs, chosen, T, E, topK, stats);
        var host = new double[2 * E];
        fixed (double* h = host) CopyToHost(stats, h, host.Length * 8L);
        for (int e = 0; e < E; e++)
        {
            slotCounts[e] += host[e];
            probabilitySums[e] += host[E + e];
        }
    }

    /// <summary>The forward's routing (<see cref="Route"/>) plus the router probabilities [T, E] the backward needs.</summary>
    private (ulong Chosen, ulong Weights, ulong Probabilities) RouteForBackward(CudaTensor xs, CudaTensor rs, int E, int topK)
    {
        int T = (int)xs.Rows;
        var (logits, chosen, weights) = Route(xs, rs, E, topK);
        ulong probs = Scratch("moe router probabilities", (long)T * E * 4);
        _device.Kernel("backward.cu", "router_probabilities").Launch((uint)((T + 127) / 128), 1, 1, 128, 0, logits, T, E, probs);
        return (chosen, weights, probs);
    }

    // The forward again (routing, grouping by expert, the experts' SwiGLU), keeping what the backward needs, then
    // per expert: dW2 += dyᵀ·act, dact = dy·w2, SwiGLU backward, dW1 += dh1ᵀ·x, dW3 += dh3ᵀ·x, dx = dh1·w1 + dh3·w3;
    // the pairs' input gradients are summed into their tokens, and the router's through the renormalised top-k
    // weights and the softmax.
    public void MixtureOfExpertsBackward(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts, int topK,
        DeviceTensor dOutput, ReadOnlySpan<float> routerProbabilityGradient, DeviceTensor dX, bool accumulate,
        DeviceTensor dRouter, IReadOnlyList<ExpertWeights> dExperts)
    {
        var xs = F32(x, "MoE backward");
        var rs = F32(router, "MoE backward");
        var gs = F32(dOutput, "MoE backward");
        var dxs = F32(dX, "MoE backward");
        var drs = F32(dRouter, "MoE backward");
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count;
        if (E == 0 || rs.Rows != E || rs.Cols != hidden || gs.Rows != T || gs.Cols != hidden || dxs.Rows != T || dxs.Cols != hidden
            || drs.Rows != E || drs.Cols != hidden || dExperts.Count != E || topK < 1 || topK > E
            || (routerProbabilityGradient.Length != 0 && routerProbabilityGradient.Length != E))
            throw new ArgumentException($"MoE backward: x {xs}, router {rs}, {E} experts ({dExperts.Count} gradients), top-{topK}, dOutput {gs}, dX {dxs}, dRouter {drs}");
        int inter = (int)experts[0].W1.Rows;
        var w1s = new CudaTensor[E];
        var w2s = new CudaTensor[E];
        var w3s = new CudaTensor[E];
        var d1s = new CudaTensor[E];
        var d2s = new CudaTensor[E];
        var d3s = new CudaTensor[E];
        for (int e = 0; e < E; e++)
        {
            w1s[e] = F32(experts[e].W1, "MoE backward");
            w2s[e] = F32(experts[e].W2, "MoE backward");
            w3s[e] = F32(experts[e].W3, "MoE backward");
            d1s[e] = F32(dExperts[e].W1, "MoE backward");
            d2s[e] = F32(dExperts[e].W2, "MoE backward");
            d3s[e] = F32(dExperts[e].W3, "MoE backward");
            if (w1s[e].Rows != inter || w1s[e].Cols != hidden || w3s[e].Rows != inter || w3s[e].Cols != hidden || w2s[e].Rows != hidden || w2s[e].Cols != inter)
                throw new ArgumentException($"MoE backward: expert {e} weights w1 {w1s[e]}, w3 {w3s[e]}, w2 {w2s[e]} do not fit hidden {hidden}, intermediate {inter}");
            if (d1s[e].ElementCount != w1s[e].ElementCount || d2s[e].ElementCount != w2s[e].ElementCount || d3s[e].ElementCount != w3s[e].ElementCount)
                throw new ArgumentException($"MoE backward: expert {e} gradients do not match its weights");
        }
        if (T == 0) return;
        _device.MakeCurrent();
        int pairs = T * topK;
        var (chosen, weights, probs) = RouteForBackward(xs, rs, E, topK);
        ulong offsets = Scratch("moe offsets", (E + 1) * 4L);
        ulong slotToken = Scratch("moe slot tokens", pairs * 4L);
        ulong pairSlot = Scratch("moe pair slots", pairs * 4L);
        ulong xg = Scratch("moe gathered inputs", (long)pairs * hidden * 4);
        ulong h1 = Scratch("moe gate activations", (long)pairs * inter * 4);
        ulong h3 = Scratch("moe up activations", (long)pairs * inter * 4);
        ulong act = Scratch("moe swiglu outputs", (long)pairs * inter * 4);
        ulong dact = Scratch("moe swiglu output gradients", (long)pairs * inter * 4);
        ulong yg = Scratch("moe expert outputs", (long)pairs * hidden * 4);
        ulong dyg = Scratch("moe expert output gradients", (long)pairs * hidden * 4);   // later the gathered inputs' gradients
        ulong dWeights = Scratch("moe weight gradients", pairs * 4L);
        ulong dLogits = Scratch("moe router logit gradients", (long)T * E * 4);
        GroupByExpert(chosen, pairs, topK, E, offsets, slotToken, pairSlot);
        var groupStart = new int[E + 1];
        fixed (int* g = groupStart) CopyToHost(offsets, g, (E + 1) * 4L);
        GatherRowsOnDevice(xs, slotToken, pairs, new CudaTensor(_device, DType.F32, [pairs, hidden], xg, owns: false, parent: null));

        ulong Rows(ulong buffer, int e, int width) => buffer + (ulong)((long)groupStart[e] * width * 4);
        int Count(int e) => groupStart[e + 1] - groupStart[e];

        for (int e = 0; e < E; e++)
        {
            if (Count(e) == 0) continue;
            Gemm(Rows(xg, e, hidden), DType.F32, Count(e), hidden, w1s[e].Pointer, DType.F32, inter, Rows(h1, e, inter), DType.F32);
            Gemm(Rows(xg, e, hidden), DType.F32, Count(e), hidden, w3s[e].Pointer, DType.F32, inter, Rows(h3, e, inter), DType.F32);
        }
        long interElements = (long)pairs * inter;
        _device.Kernel("backward.cu", "silu_mul_into").Launch(Blocks(interElements), 1, 1, ElementwiseBlock, 0, h1, h3, act, interElements);
        for (int e = 0; e < E; e++)
        {
            if (Count(e) == 0) continue;
            Gemm(Rows(act, e, inter), DType.F32, Count(e), inter, w2s[e].Pointer, DType.F32, hidden, Rows(yg, e, hidden), DType.F32);
        }
        _device.Kernel("backward.cu", "moe_pair_backward").Launch((uint)pairs, 1, 1, BackwardBlock, 0,
            gs, yg, pairSlot, weights, topK, hidden, dWeights, dyg);
        for (int e = 0; e < E; e++)
        {
            int n = Count(e);
            if (n == 0) continue;
            AddTransposedProductF32(Rows(dyg, e, hidden), Rows(act, e, inter), d2s[e].Pointer, n, hidden, inter);
            MultiplyF32(Rows(dyg, e, hidden), w2s[e].Pointer, Rows(dact, e, inter), n, hidden, inter, accumulate: false);
        }
        _device.Kernel("backward.cu", "swiglu_backward").Launch(Blocks(interElements), 1, 1, ElementwiseBlock, 0, h1, h3, dact, interElements);
        ulong dxg = dyg;   // every expert's dy has been consumed above
        for (int e = 0; e < E; e++)
        {
            int n = Count(e);
            if (n == 0) continue;
            AddTransposedProductF32(Rows(h1, e, inter), Rows(xg, e, hidden), d1s[e].Pointer, n, inter, hidden);
            AddTransposedProductF32(Rows(h3, e, inter), Rows(xg, e, hidden), d3s[e].Pointer, n, inter, hidden);
            MultiplyF32(Rows(h1, e, inter), w1s[e].Pointer, Rows(dxg, e, hidden), n, inter, hidden, accumulate: false);
            MultiplyF32(Rows(h3, e, inter), w3s[e].Pointer, Rows(dxg, e, hidden), n, inter, hidden, accumulate: true);
        }
        _device.Kernel("backward.cu", "moe_scatter_add").Launch(Blocks((long)T * hidden), 1, 1, ElementwiseBlock, 0,
            dxg, pairSlot, topK, dxs, T, hidden, accumulate ? 1 : 0);

        ulong aux = 0;
        if (routerProbabilityGradient.Length != 0)
        {
            var meta = new MetaBuilder();
            int at = meta.Add(routerProbabilityGradient);
            aux = UploadMeta(meta) + (ulong)at;
        }
        _device.Kernel("backward.cu", "moe_router_backward").Launch((uint)((T + 127) / 128), 1, 1, 128, 0,
            probs, chosen, weights, dWeights, aux, T, E, topK, dLogits);
        MultiplyF32(dLogits, rs.Pointer, dxs.Pointer, T, E, hidden, accumulate: true, exact: true);
        AddTransposedProductF32(dLogits, xs.Pointer, drs.Pointer, T, E, hidden, exact: true);
    }

    public double LmHeadCrossEntropy(DeviceTensor hidden, DeviceTensor lmHead, ReadOnlySpan<int> targets, float gradientScale,
        DeviceTensor dHidden, DeviceTensor dLmHead)
    {
        var hs = F32(hidden, "LM head cross-entropy");
        var ws = F32(lmHead, "LM head cross-entropy");
        var dhs = F32(dHidden, "LM head cross-entropy");
        var dws = F32(dLmHead, "LM head cross-entropy");
        int T = (int)hs.Rows, k = hs.Cols, V = (int)ws.Rows;
        if (ws.Cols != k || targets.Length != T || dhs.Rows != T || dhs.Cols != k || dws.Rows != V || dws.Cols != k)
            throw new ArgumentException($"LM head cross-entropy: hidden {hs}, lm_head {ws}, {targets.Length} targets, dHidden {dhs}, dLmHead {dws}");
        for (int t = 0; t < T; t++)
            if (targets[t] != IGradientBackend.IgnoredTarget && (uint)targets[t] >= (uint)V)
                throw new ArgumentOutOfRangeException(nameof(targets), $"target {targets[t]} at row {t} is outside the vocabulary (0..{V - 1}) and is not {IGradientBackend.IgnoredTarget}");
        if (T == 0) return 0;
        _device.MakeCurrent();
        int chunk = CrossEntropyChunkRows(T, V, CrossEntropyChunkBudget);
        ulong logits = Scratch("cross-entropy logits", (long)chunk * V * 4);
        ulong rowLoss = Scratch("cross-entropy row losses", T * 8L);
        var meta = new MetaBuilder();
        int targetsAt = meta.Add(targets);
        ulong targetRows = UploadMeta(meta) + (ulong)targetsAt;
        for (int start = 0; start < T; start += chunk)
        {
            int c = Math.Min(chunk, T - start);
            ulong h = hs.Pointer + (ulong)((long)start * k * 4);
            Gemm(h, DType.F32, c, k, ws.Pointer, DType.F32, V, logits, DType.F32);
            _device.Kernel("backward.cu", "cross_entropy_rows").Launch((uint)c, 1, 1, BackwardBlock, 0,
                logits, targetRows + (ulong)(start * 4L), V, gradientScale, rowLoss + (ulong)(start * 8L));
            MultiplyF32(logits, ws.Pointer, dhs.Pointer + (ulong)((long)start * k * 4), c, V, k, accumulate: false);
            AddTransposedProductF32(logits, h, dws.Pointer, c, V, k);
        }
        var losses = new double[T];
        fixed (double* l = losses) CopyToHost(rowLoss, l, T * 8L);
        double total = 0;
        foreach (double l in losses) total += l;
        return total;
    }

    /// <summary>Rows of logits per chunk of the fused LM head: at most <paramref name="budget"/> floats, at least one row.</summary>
    internal static int CrossEntropyChunkRows(int rows, int vocab, int budget = CrossEntropyChunkElements) =>
        Math.Clamp(budget / Math.Max(1, vocab), 1, Math.Max(1, rows));

    public double SumOfSquares(DeviceTensor tensor)
    {
        var t = F32(tensor, "sum of squares");
        if (t.ElementCount == 0) return 0;
        _device.MakeCurrent();
        uint blocks = Blocks(t.ElementCount);
        ulong partial = Scratch("sum of squares partials", blocks * 8L);
        _device.Kernel("backward.cu", "sum_of_squares").Launch(blocks, 1, 1, BackwardBlock, 0, t, t.ElementCount, partial);
        var host = new double[blocks];
        fixed (double* h = host) CopyToHost(partial, h, blocks * 8L);
        double sum = 0;
        foreach (double v in host) sum += v;
        return sum;
    }

    // Every tensor's CTA partials go to one scratch buffer and come back in one transfer; each tensor's are summed on
    // the host in the order SumOfSquares sums them, so the values are the same.
    public void SumsOfSquares(IReadOnlyList<DeviceTensor> tensors, Span<double> sums)
    {
        if (sums.Length != tensors.Count) throw new ArgumentException($"{sums.Length} sums for {tensors.Count} tensors");
        var ts = new CudaTensor[tensors.Count];
        var first = new long[tensors.Count + 1];
        for (int i = 0; i < ts.Length; i++)
        {
            ts[i] = F32(tensors[i], "sum of squares");
            first[i + 1] = first[i] + (ts[i].ElementCount == 0 ? 0 : Blocks(ts[i].ElementCount));
        }
        long partials = first[^1];
        sums.Clear();
        if (partials == 0) return;
        _device.MakeCurrent();
        ulong partial = Scratch("sum of squares partials", partials * 8L);
        for (int i = 0; i < ts.Length; i++)
            if (ts[i].ElementCount > 0)
                _device.Kernel("backward.cu", "sum_of_squares").Launch((uint)(first[i + 1] - first[i]), 1, 1, BackwardBlock, 0,
                    ts[i], ts[i].ElementCount, partial + (ulong)(first[i] * 8));
        var host = new double[partials];
        fixed (double* h = host) CopyToHost(partial, h, partials * 8L);
        for (int i = 0; i < ts.Length; i++)
        {
            double sum = 0;
            for (long j = first[i]; j < first[i + 1]; j++) sum += host[j];
            sums[i] = sum;
        }
    }

    public void AdamWUpdate(DeviceTensor parameter, DeviceTensor gradient, DeviceTensor firstMoment, DeviceTensor secondMoment, AdamWStep step)
    {
        var p = F32(parameter, "AdamW");
        var g = F32(gradient, "AdamW");
        var m = F32(firstMoment, "AdamW");
        var v = F32(secondMoment, "AdamW");
        long n = p.ElementCount;
        if (g.ElementCount != n || m.ElementCount != n || v.ElementCount != n)
            throw new ArgumentException($"AdamW: parameter {p}, gradient {g}, moments {m} and {v} differ in size");
        if (step.Step < 1) throw new ArgumentOutOfRangeException(nameof(step), step.Step, "AdamW steps count from 1");
        if (n == 0) return;
        _device.MakeCurrent();
        double stepSize = step.LearningRate / (1 - Math.Pow(step.Beta1, step.Step));
        double correction2 = Math.Sqrt(1 - Math.Pow(step.Beta2, step.Step));
        double decay = 1 - step.LearningRate * step.WeightDecay;
        _device.Kernel("backward.cu", "adamw_update").Launch(Blocks(n), 1, 1, ElementwiseBlock, 0,
            p, g, m, v, n, Bits(step.Beta1), Bits(step.Beta2), Bits(stepSize), Bits(correction2), Bits(step.Epsilon), Bits(decay));
    }

    /// <summary>A double kernel argument: its bit pattern fills the 8-byte slot.</summary>
    private static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

    /// <summary>C[rows, cols] (= or +=) A[rows, inner] · B[inner, cols], float32 row-major (dX = dY · W; B is always a
    /// weight). In training's bf16 product mode A and B go through bf16 copies, unless <paramref name="exact"/> (the router).</summary>
    private void MultiplyF32(ulong a, ulong b, ulong c, int rows, int inner, int cols, bool accumulate, bool exact = false)
    {
        if (rows == 0 || cols == 0) return;
        if (inner == 0)
        {
            if (!accumulate) Check(cuMemsetD8Async(c, 0, (nuint)((long)rows * cols * 4), _device.Stream), "cuMemsetD8Async");
            return;
        }
        // Column-major view: Cᵀ[cols, rows] = Bᵀ[cols, inner] · Aᵀ[inner, rows], both stored as they are.
        float alpha = 1f, beta = accumulate ? 1f : 0f;
        if (ReducedProducts && !exact)
        {
            ulong bb = Bf16Weight(b, (long)inner * cols);
            ulong ab = Bf16Operand("bf16 product operand a", a, DType.F32, (long)rows * inner);
            GemmBf16(Cublas.OpN, Cublas.OpN, cols, rows, inner, bb, cols, ab, inner, beta, c, Cublas.DataF32, cols, $"{rows}x{inner} by {inner}x{cols}");
            return;
        }
        Cublas.Check(Cublas.cublasGemmEx(_device.CublasHandle, Cublas.OpN, Cublas.OpN, cols, rows, inner,
            &alpha, b, Cublas.DataF32, cols, a, Cublas.DataF32, inner, &beta, c, Cublas.DataF32, cols,
            Cublas.ComputeF32, Cublas.GemmDefault), $"cublasGemmEx({rows}x{inner} by {inner}x{cols}, float32)");
    }

    /// <summary>C[m, k] += A[n, m]ᵀ · B[n, k], float32 row-major (weight gradients: dW += dYᵀ · X). In training's bf16
    /// product mode A and B go through bf16 copies (C stays float32), unless <paramref name="exact"/> (the router).</summary>
    private void AddTransposedProductF32(ulong a, ulong b, ulong c, int n, int m, int k, bool exact = false)
    {
        if (n == 0 || m == 0 || k == 0) return;
        // Column-major view: Cᵀ[k, m] += Bᵀ[k, n] · A[n, m], A being the transpose of the stored [m, n].
        float alpha = 1f, beta = 1f;
        if (ReducedProducts && !exact)
        {
            ulong ab = Bf16Operand("bf16 product operand a", a, DType.F32, (long)n * m);
            ulong bb = Bf16Operand("bf16 product operand b", b, DType.F32, (long)n * k);
            GemmBf16(Cublas.OpN, Cublas.OpT, k, m, n, bb, k, ab, m, beta, c, Cublas.DataF32, k, $"{n}x{m}ᵀ by {n}x{k}");
            return;
        }
        Cublas.Check(Cublas.cublasGemmEx(_device.CublasHandle, Cublas.OpN, Cublas.OpT, k, m, n,
            &alpha, b, Cublas.DataF32, k, a, Cublas.DataF32, m, &beta, c, Cublas.DataF32, k,
            Cublas.ComputeF32, Cublas.GemmDefault), $"cublasGemmEx({n}x{m}ᵀ by {n}x{k}, float32)");
    }

    /// <summary>The training ops keep every tensor in float32 (activations, master weights, gradients).</summary>
    private static CudaTensor F32(DeviceTensor tensor, string op)
    {
        var t = AsCuda(tensor);
        if (t.DType != DType.F32) throw new ArgumentException($"{op} on CUDA takes float32 tensors, got {t}");
        return t;
    }
}
