using System.Buffers;
using System.Numerics.Tensors;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

// Backward passes of the element-wise ops, norms, linear layers and the fused LM head + cross-entropy.
public sealed unsafe partial class CpuBackend : IGradientBackend
{
    /// <summary>Rows of logits the fused LM head + cross-entropy holds at once.</summary>
    internal const int CrossEntropyChunkRows = 64;

    public void Clear(DeviceTensor tensor) => AsCpu(tensor).AsSpan().Clear();

    public void EmbeddingBackward(ReadOnlySpan<int> ids, DeviceTensor dOutput, DeviceTensor dTable)
    {
        var g = AsCpu(dOutput);
        var t = AsCpu(dTable);
        int hidden = t.Cols;
        if (g.Cols != hidden || g.Rows != ids.Length) throw new ArgumentException($"embedding backward of {ids.Length} ids: dOutput {g}, dTable {t}");
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= t.Rows) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} at position {i} is outside the vocabulary (0..{t.Rows - 1})");
            var dst = new Span<float>(t.F32 + (long)ids[i] * hidden, hidden);
            TensorPrimitives.Add(dst, new ReadOnlySpan<float>(g.F32 + (long)i * hidden, hidden), dst);
        }
    }

    // y = w ⊙ x·r with r = 1/sqrt(mean(x²)+eps):
    //   dx = r·(w⊙dy) − x·(r³/n)·Σ(w⊙dy⊙x),  dw += Σ_t dy⊙x·r.
    public void RmsNormBackward(DeviceTensor x, DeviceTensor weight, float eps, DeviceTensor dOutput,
        DeviceTensor dX, bool accumulate, DeviceTensor dWeight)
    {
        var xs = AsCpu(x);
        var gs = AsCpu(dOutput);
        var dxs = AsCpu(dX);
        var ws = F32Weight(weight, "RMSNorm backward");
        var dws = AsCpu(dWeight);
        int n = xs.Cols;
        long rows = xs.Rows;
        if (ws.ElementCount != n || dws.ElementCount != n || gs.Cols != n || gs.Rows != rows || dxs.Cols != n || dxs.Rows != rows)
            throw new ArgumentException($"RMSNorm backward: x {xs}, weight {ws}, dOutput {gs}, dX {dxs}, dWeight {dws}");
        float* xp = xs.F32, gp = gs.F32, dxp = dxs.F32, wp = ws.F32;
        var inv = new double[rows];
        For((int)rows, n * 6, r =>
        {
            float* xr = xp + (long)r * n, gr = gp + (long)r * n, dr = dxp + (long)r * n;
            double ss = 0, dot = 0;
            for (int i = 0; i < n; i++)
            {
                ss += (double)xr[i] * xr[i];
                dot += (double)wp[i] * gr[i] * xr[i];
            }
            double rr = 1.0 / Math.Sqrt(ss / n + eps);
            inv[r] = rr;
            double c = rr * rr * rr / n * dot;
            for (int i = 0; i < n; i++)
            {
                float v = (float)(rr * wp[i] * gr[i] - xr[i] * c);
                dr[i] = accumulate ? dr[i] + v : v;
            }
        });
        var dw = new double[n];
        for (long r = 0; r < rows; r++)
        {
            float* xr = xp + r * n, gr = gp + r * n;
            double rr = inv[r];
            for (int i = 0; i < n; i++) dw[i] += (double)gr[i] * xr[i] * rr;
        }
        float* dwp = dws.F32;
        for (int i = 0; i < n; i++) dwp[i] += (float)dw[i];
    }

    public void MatMulBackward(DeviceTensor x, DeviceTensor weight, DeviceTensor dOutput,
        DeviceTensor? dX, bool accumulate, DeviceTensor dWeight)
    {
        var xs = AsCpu(x);
        var ws = F32Weight(weight, "matmul backward");
        var gs = AsCpu(dOutput);
        var dws = AsCpu(dWeight);
        int T = (int)xs.Rows, k = xs.Cols, m = (int)ws.Rows;
        if (ws.Cols != k || gs.Rows != T || gs.Cols != m || dws.Rows != m || dws.Cols != k)
            throw new ArgumentException($"matmul backward: x {xs}, weight {ws}, dOutput {gs}, dWeight {dws}");
        if (dX is not null)
        {
            var dxs = AsCpu(dX);
            if (dxs.Rows != T || dxs.Cols != k) throw new ArgumentException($"matmul backward: dX {dxs} for x {xs}");
            Gemm.MatMulNN(gs.F32, m, ws.F32, k, dxs.F32, k, T, k, m, accumulate, Threads);
        }
        AddTransposedProduct(gs.F32, m, xs.F32, k, dws.F32, k, T, m, k, Threads);
    }

    public void SigmoidGateBackward(DeviceTensor gate, DeviceTensor x, DeviceTensor dOutput, DeviceTensor dGate, DeviceTensor dX)
    {
        var g = AsCpu(gate);
        var xs = AsCpu(x);
        var go = AsCpu(dOutput);
        var dg = AsCpu(dGate);
        var dx = AsCpu(dX);
        long n = xs.ElementCount;
        if (g.ElementCount != n || go.ElementCount != n || dg.ElementCount != n || dx.ElementCount != n)
            throw new ArgumentException($"sigmoid gate backward: gate {g}, x {xs}, dOutput {go}, dGate {dg}, dX {dx}");
        float* pg = g.F32, px = xs.F32, po = go.F32, pdg = dg.F32, pdx = dx.F32;
        For((int)((n + 4095) / 4096), 4096 * 8, c =>
        {
            long end = Math.Min(n, (c + 1) * 4096L);
            for (long i = c * 4096L; i < end; i++)
            {
                float s = 1f / (1f + MathF.Exp(-pg[i]));
                float d = po[i];
                pdg[i] = d * px[i] * s * (1f - s);
                pdx[i] = d * s;
            }
        });
    }

    public double LmHeadCrossEntropy(DeviceTensor hidden, DeviceTensor lmHead, ReadOnlySpan<int> targets, float gradientScale,
        DeviceTensor dHidden, DeviceTensor dLmHead)
    {
        var hs = AsCpu(hidden);
        var ws = F32Weight(lmHead, "LM head backward");
        var dhs = AsCpu(dHidden);
        var dws = AsCpu(dLmHead);
        int T = (int)hs.Rows, k = hs.Cols, V = (int)ws.Rows;
        if (ws.Cols != k || targets.Length != T || dhs.Rows != T || dhs.Cols != k || dws.Rows != V || dws.Cols != k)
            throw new ArgumentException($"LM head cross-entropy: hidden {hs}, lm_head {ws}, {targets.Length} targets, dHidden {dhs}, dLmHead {dws}");
        for (int t = 0; t < T; t++)
            if (targets[t] != IGradientBackend.IgnoredTarget && (uint)targets[t] >= (uint)V)
                throw new ArgumentOutOfRangeException(nameof(targets), $"target {targets[t]} at row {t} is outside the vocabulary (0..{V - 1}) and is not {IGradientBackend.IgnoredTarget}");
        int chunk = Math.Min(CrossEntropyChunkRows, Math.Max(1, T));
        float[] rented = ArrayPool<float>.Shared.Rent(chunk * V);
        int[] tg = targets.ToArray();
        double total = 0;
        try
        {
            fixed (float* logits = rented)
            {
                for (int start = 0; start < T; start += chunk)
                {
                    int c = Math.Min(chunk, T - start);
                    float* h = hs.F32 + (long)start * k;
                    Gemm.MatMulNT(h, k, ws.F32, DType.F32, k, logits, V, c, V, k, accumulate: false, Threads);
                    var rowLoss = new double[c];
                    float* lp = logits;
                    For(c, V * 8, i =>
                    {
                        var row = new Span<float>(lp + (long)i * V, V);
                        int target = tg[start + i];
                        if (target == IGradientBackend.IgnoredTarget)
                        {
                            row.Clear();
                            return;
                        }
                        float max = TensorPrimitives.Max(row);
                        double sum = 0;
                        for (int j = 0; j < V; j++) sum += Math.Exp(row[j] - max);
                        double lse = max + Math.Log(sum);
                        rowLoss[i] = lse - row[target];
                        for (int j = 0; j < V; j++) row[j] = (float)(Math.Exp(row[j] - lse) * gradientScale);
                        row[target] -= gradientScale;
                    });
                    foreach (double l in rowLoss) total += l;
                    Gemm.MatMulNN(logits, V, ws.F32, k, dhs.F32 + (long)start * k, k, c, k, V, accumulate: false, Threads);
                    AddTransposedProduct(logits, V, h, k, dws.F32, k, c, V, k, Threads);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
        return total;
    }

    /// <summary>C[m, k] += A[n, m]ᵀ · B[n, k] (weight gradients: dW += dYᵀ X).</summary>
    internal static void AddTransposedProduct(float* a, int lda, float* b, int ldb, float* c, int ldc, int n, int m, int k, int threads)
    {
        if (n == 0 || m == 0 || k == 0) return;
        float[] rented = ArrayPool<float>.Shared.Rent(m * n);
        try
        {
            fixed (float* at = rented)
            {
                Transpose(a, lda, n, m, at);
                Gemm.MatMulNN(at, n, b, ldb, c, ldc, m, k, n, accumulate: true, threads);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>dst[m, n] = src[n, m]ᵀ (dst dense).</summary>
    internal static void Transpose(float* src, int lds, int n, int m, float* dst)
    {
        for (int i = 0; i < n; i++)
        {
            float* row = src + (long)i * lds;
            for (int j = 0; j < m; j++) dst[(long)j * n + i] = row[j];
        }
    }

    /// <summary>Backward passes multiply by weights through float32 products: master weights must be float32.</summary>
    private static CpuTensor F32Weight(DeviceTensor weight, string op)
    {
        var w = AsCpu(weight);
        if (w.DType != DType.F32) throw new ArgumentException($"{op} needs float32 (master) weights, got {w}");
        return w;
    }
}
