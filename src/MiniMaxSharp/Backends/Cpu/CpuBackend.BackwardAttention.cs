using System.Buffers;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

// Backward passes of lightning attention and causal softmax attention.
public sealed unsafe partial class CpuBackend
{
    // Work items are (sequence, head). A first pass recomputes the state entering every block; a second runs
    // the blocks last to first, carrying dS (the gradient of the state leaving the block) backwards:
    //   P   = (dO Vᵀ) ⊙ diag,            A = (Q Kᵀ) ⊙ diag
    //   dQ  = (dO S_inᵀ) ⊙ q_decay + P K
    //   dK  = Pᵀ Q + (V dSᵀ) ⊙ k_decay
    //   dV  = Aᵀ dO + (K ⊙ k_decay) dS
    //   dS ← exp(-s m) dS + (Q ⊙ q_decay)ᵀ dO
    // and finally the SiLU: d raw = d act · silu'(raw).
    public void LightningAttentionBackward(DeviceTensor qkv, BatchLayout layout, ReadOnlySpan<float> slopes,
        int headDim, int blockSize, DeviceTensor dOutput, DeviceTensor dQkv)
    {
        var qkvT = AsCpu(qkv);
        var gT = AsCpu(dOutput);
        var dT = AsCpu(dQkv);
        int heads = slopes.Length, d = headDim, T = layout.TotalTokens;
        if (qkvT.Cols != 3 * heads * d || qkvT.Rows != T || gT.Cols != heads * d || gT.Rows != T || dT.Cols != qkvT.Cols || dT.Rows != T)
            throw new ArgumentException($"lightning attention backward: qkv {qkvT}, dOutput {gT}, dQkv {dT}, {heads} heads of {d}, {T} tokens");
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        float[] slopeArr = slopes.ToArray();
        float* qkvP = qkvT.F32, gP = gT.F32, dP = dT.F32;
        long cost = (long)T / Math.Max(1, layout.Count) * d * d * 12;
        For(layout.Count * heads, cost, item =>
        {
            int seq = item / heads, h = item % heads;
            var span = layout.Sequences[seq];
            long offset = (long)span.TokenOffset;
            LightningBackwardHead(qkvP + offset * 3 * heads * d + h * 3 * d, dP + offset * 3 * heads * d + h * 3 * d, 3 * heads * d,
                gP + offset * heads * d + h * d, heads * d, span.TokenCount, d, slopeArr[h], blockSize);
        });
    }

    private static void LightningBackwardHead(float* raw, float* dRaw, int ldqkv, float* dOut, int ldo, int tokens, int d, float slope, int blockSize)
    {
        int B = Math.Min(blockSize, tokens);
        int blocks = (tokens + B - 1) / B;
        int md = B * d, mm = B * B, dd = d * d, tr = B * Math.Max(B, d);   // tr: room for an m×m or an m×d transpose
        int need = checked(9 * md + 2 * mm + tr + dd * (blocks + 1) + 3 * B);
        float[] rented = ArrayPool<float>.Shared.Rent(need);
        try
        {
            fixed (float* buf = rented)
            {
                float* Q = buf, K = Q + md, V = K + md, Qd = V + md, Kd = Qd + md, dO = Kd + md, dQ = dO + md, dK = dQ + md, dV = dK + md;
                float* P = dV + md, A = P + mm, Tr = A + mm;                 // Tr: transposes (m×m or d×m, tr floats)
                float* states = Tr + tr, dS = states + (long)dd * blocks;
                float* decay = dS + dd, qDecay = decay + B, kDecay = qDecay + B;
                for (int i = 0; i < B; i++) decay[i] = (float)Math.Exp(-slope * i);

                // Pass 1: the state entering each block (the forward recurrence from zero).
                new Span<float>(states, dd).Clear();
                for (int b = 0; b + 1 < blocks; b++)
                {
                    int start = b * B, m = Math.Min(B, tokens - start);
                    LoadLightningBlock(raw, ldqkv, start, m, d, slope, Q, K, V, Qd, Kd, qDecay, kDecay);
                    float* sIn = states + (long)b * dd, sOut = sIn + dd;
                    float blockDecay = (float)Math.Exp(-slope * (double)m);
                    for (int i = 0; i < dd; i++) sOut[i] = sIn[i] * blockDecay;
                    Transpose(Kd, d, m, d, Tr);
                    Gemm.MatMulNN(Tr, m, V, d, sOut, d, d, d, m, accumulate: true, threads: 1);
                }

                // Pass 2: blocks last to first.
                new Span<float>(dS, dd).Clear();
                for (int b = blocks - 1; b >= 0; b--)
                {
                    int start = b * B, m = Math.Min(B, tokens - start);
                    LoadLightningBlock(raw, ldqkv, start, m, d, slope, Q, K, V, Qd, Kd, qDecay, kDecay);
                    for (int i = 0; i < m; i++)
                        new ReadOnlySpan<float>(dOut + (long)(start + i) * ldo, d).CopyTo(new Span<float>(dO + i * d, d));
                    float* sIn = states + (long)b * dd;
                    // P = (dO Vᵀ) ⊙ diag and A = (Q Kᵀ) ⊙ diag, causal.
                    Gemm.MatMulNT(dO, d, V, DType.F32, d, P, m, m, m, d, accumulate: false, threads: 1);
                    Gemm.MatMulNT(Q, d, K, DType.F32, d, A, m, m, m, d, accumulate: false, threads: 1);
                    for (int i = 0; i < m; i++)
                    for (int j = 0; j < m; j++)
                    {
                        float w = j <= i ? decay[i - j] : 0f;
                        P[i * m + j] *= w;
                        A[i * m + j] *= w;
                    }
                    // dQ = (dO S_inᵀ) ⊙ q_decay + P K
                    Gemm.MatMulNT(dO, d, sIn, DType.F32, d, dQ, d, m, d, d, accumulate: false, threads: 1);
                    for (int i = 0; i < m; i++)
                        for (int c = 0; c < d; c++) dQ[i * d + c] *= qDecay[i];
                    Gemm.MatMulNN(P, m, K, d, dQ, d, m, d, m, accumulate: true, threads: 1);
                    // dK = (V dSᵀ) ⊙ k_decay + Pᵀ Q
                    Gemm.MatMulNT(V, d, dS, DType.F32, d, dK, d, m, d, d, accumulate: false, threads: 1);
                    for (int i = 0; i < m; i++)
                        for (int c = 0; c < d; c++) dK[i * d + c] *= kDecay[i];
                    Transpose(P, m, m, m, Tr);
                    Gemm.MatMulNN(Tr, m, Q, d, dK, d, m, d, m, accumulate: true, threads: 1);
                    // dV = (K ⊙ k_decay) dS + Aᵀ dO
                    Gemm.MatMulNN(Kd, d, dS, d, dV, d, m, d, d, accumulate: false, threads: 1);
                    Transpose(A, m, m, m, Tr);
                    Gemm.MatMulNN(Tr, m, dO, d, dV, d, m, d, m, accumulate: true, threads: 1);
                    // dS ← exp(-s m) dS + (Q ⊙ q_decay)ᵀ dO
                    float blockDecay = (float)Math.Exp(-slope * (double)m);
                    for (int i = 0; i < dd; i++) dS[i] *= blockDecay;
                    Transpose(Qd, d, m, d, Tr);
                    Gemm.MatMulNN(Tr, m, dO, d, dS, d, d, d, m, accumulate: true, threads: 1);

                    for (int i = 0; i < m; i++)
                    {
                        float* src = raw + (long)(start + i) * ldqkv;
                        float* dst = dRaw + (long)(start + i) * ldqkv;
                        for (int c = 0; c < d; c++)
                        {
                            dst[c] = dQ[i * d + c] * SiluDerivative(src[c]);
                            dst[d + c] = dK[i * d + c] * SiluDerivative(src[d + c]);
                            dst[2 * d + c] = dV[i * d + c] * SiluDerivative(src[2 * d + c]);
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>Q, K, V = SiLU of one block's raw projections; Qd = Q ⊙ q_decay, Kd = K ⊙ k_decay (as the forward).</summary>
    private static void LoadLightningBlock(float* raw, int ldqkv, int start, int m, int d, float slope,
        float* Q, float* K, float* V, float* Qd, float* Kd, float* qDecay, float* kDecay)
    {
        for (int i = 0; i < m; i++)
        {
            qDecay[i] = (float)Math.Exp(-slope * (i + 1.0));
            kDecay[i] = (float)Math.Exp(-slope * (m - 1.0 - i));
            float* src = raw + (long)(start + i) * ldqkv;
            for (int c = 0; c < d; c++)
            {
                float q = Silu(src[c]), k = Silu(src[d + c]);
                Q[i * d + c] = q;
                K[i * d + c] = k;
                V[i * d + c] = Silu(src[2 * d + c]);
                Qd[i * d + c] = q * qDecay[i];
                Kd[i * d + c] = k * kDecay[i];
            }
        }
    }

    /// <summary>d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).</summary>
    internal static float SiluDerivative(float x)
    {
        float s = 1f / (1f + MathF.Exp(-x));
        return s * (1f + x * (1f - s));
    }

    // Work items are (sequence, key/value head): each owns its rows of dK and dV, and the dQ columns of the
    // query heads of its group. Queries go in tiles; per tile and head:
    //   P = softmax(scale · Q Kᵀ) (causal),  dP = dO Vᵀ,  dZ = scale · P ⊙ (dP − rowsum(P ⊙ dP))
    //   dQ = dZ K,  dK += dZᵀ Q,  dV += Pᵀ dO
    public void SoftmaxAttentionBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        AttentionShape shape, DeviceTensor dOutput, DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV)
    {
        var qs = AsCpu(q);
        var ks = AsCpu(k);
        var vs = AsCpu(v);
        var gs = AsCpu(dOutput);
        var dqs = AsCpu(dQ);
        var dks = AsCpu(dK);
        var dvs = AsCpu(dV);
        int d = shape.HeadDim, H = shape.Heads, KV = shape.KvHeads, W = shape.Width, kvw = shape.KvWidth, T = layout.TotalTokens;
        foreach (var (t, width) in new[] { (qs, W), (ks, kvw), (vs, kvw), (gs, W), (dqs, W), (dks, kvw), (dvs, kvw) })
            if (t.Cols != width || t.Rows != T)
                throw new ArgumentException($"softmax attention backward: q {qs}, k {ks}, v {vs}, dOutput {gs}, dQ {dqs}, dK {dks}, dV {dvs}, shape {shape}, {T} tokens");
        if (H % KV != 0) throw new ArgumentException($"softmax attention backward: {H} query heads do not split into {KV} groups");
        foreach (var s in layout.Sequences)
            if (s.StartPosition != 0) throw new ArgumentException($"softmax attention backward needs whole sequences; one starts at position {s.StartPosition}");
        int group = H / KV;
        float scale = 1f / MathF.Sqrt(d);
        float* qp = qs.F32, kp = ks.F32, vp = vs.F32, gp = gs.F32, dqp = dqs.F32, dkp = dks.F32, dvp = dvs.F32;
        long cost = (long)T * T / Math.Max(1, layout.Count) * d * group * 4;
        For(layout.Count * KV, cost, item =>
        {
            int seq = item / KV, g = item % KV;
            var span = layout.Sequences[seq];
            int n = span.TokenCount;
            long r0 = span.TokenOffset;
            float* kg = kp + r0 * kvw + g * d, vg = vp + r0 * kvw + g * d;
            float* dkg = dkp + r0 * kvw + g * d, dvg = dvp + r0 * kvw + g * d;
            for (int i = 0; i < n; i++)
            {
                new Span<float>(dkg + (long)i * kvw, d).Clear();
                new Span<float>(dvg + (long)i * kvw, d).Clear();
            }
            int tile = (int)Math.Clamp(1_048_576L / Math.Max(1, n), 1, 64);
            float[] rented = ArrayPool<float>.Shared.Rent(2 * tile * n);
            try
            {
                fixed (float* buf = rented)
                {
                    float* P = buf, dP = buf + (long)tile * n;
                    for (int hh = 0; hh < group; hh++)
                    {
                        int h = g * group + hh;
                        for (int t0 = 0; t0 < n; t0 += tile)
                        {
                            int c = Math.Min(tile, n - t0), ctx = t0 + c;
                            float* qTile = qp + (r0 + t0) * W + h * d, gTile = gp + (r0 + t0) * W + h * d;
                            Gemm.MatMulNT(qTile, W, kg, DType.F32, kvw, P, ctx, c, ctx, d, accumulate: false, threads: 1);
                            Gemm.MatMulNT(gTile, W, vg, DType.F32, kvw, dP, ctx, c, ctx, d, accumulate: false, threads: 1);
                            for (int i = 0; i < c; i++)
                            {
                                int visible = t0 + i + 1;
                                float* pr = P + (long)i * ctx, dpr = dP + (long)i * ctx;
                                float max = float.NegativeInfinity;
                                for (int j = 0; j < visible; j++) max = MathF.Max(max, pr[j] * scale);
                                double sum = 0;
                                for (int j = 0; j < visible; j++) sum += pr[j] = MathF.Exp(pr[j] * scale - max);
                                float inv = (float)(1.0 / sum);
                                double dot = 0;
                                for (int j = 0; j < visible; j++)
                                {
                                    pr[j] *= inv;
                                    dot += (double)pr[j] * dpr[j];
                                }
                                for (int j = 0; j < visible; j++) dpr[j] = scale * pr[j] * (dpr[j] - (float)dot);
                                for (int j = visible; j < ctx; j++) pr[j] = dpr[j] = 0f;
                            }
                            Gemm.MatMulNN(dP, ctx, kg, kvw, dqp + (r0 + t0) * W + h * d, W, c, d, ctx, accumulate: false, threads: 1);
                            AddTransposedProduct(dP, ctx, qTile, W, dkg, kvw, c, ctx, d, threads: 1);
                            AddTransposedProduct(P, ctx, gTile, W, dvg, kvw, c, ctx, d, threads: 1);
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }
}
