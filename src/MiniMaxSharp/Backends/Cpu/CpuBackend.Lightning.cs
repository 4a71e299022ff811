using System.Buffers;
using System.Numerics.Tensors;

namespace MiniMaxSharp.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Lightning attention (spec: "Lightning attention layer"). Work items are (sequence, head) pairs;
    // each runs the blocked algorithm over its tokens, block by block, from the sequence's state:
    //   O_block = (Q ⊙ q_decay) S + ((Q Kᵀ) ⊙ diag) V
    //   S       = exp(-s m) S + (K ⊙ k_decay)ᵀ V
    // Single tokens (decode) take the recurrence S = λS + kᵀv, o = qS directly.
    public void LightningAttention(DeviceTensor qkv, BatchLayout layout, IReadOnlyList<DeviceTensor> states,
        ReadOnlySpan<float> slopes, int headDim, int blockSize, DeviceTensor output)
    {
        var qkvT = AsCpu(qkv);
        var outT = AsCpu(output);
        int heads = slopes.Length, d = headDim;
        if (qkvT.Cols != 3 * heads * d || qkvT.Rows != layout.TotalTokens || outT.Cols != heads * d || outT.Rows != layout.TotalTokens)
            throw new ArgumentException($"lightning attention: qkv {qkvT}, output {outT}, {heads} heads of {d}, {layout.TotalTokens} tokens");
        if (states.Count != layout.Count) throw new ArgumentException($"{states.Count} states for {layout.Count} sequences");
        var statePtrs = new nint[states.Count];
        for (int i = 0; i < states.Count; i++)
        {
            var s = AsCpu(states[i]);
            if (s.ElementCount != (long)heads * d * d) throw new ArgumentException($"lightning state {s} is not [{heads}, {d}, {d}]");
            statePtrs[i] = (nint)s.F32;
        }
        float[] slopeArr = slopes.ToArray();
        float* qkvP = qkvT.F32, outP = outT.F32;
        int items = layout.Count * heads;
        long cost = (long)layout.TotalTokens / Math.Max(1, layout.Count) * d * d * 4;
        For(items, cost, item =>
        {
            int seq = item / heads, h = item % heads;
            var span = layout.Sequences[seq];
            float* state = (float*)statePtrs[seq] + (long)h * d * d;
            float* q0 = qkvP + (long)span.TokenOffset * 3 * heads * d + h * 3 * d;
            float* o0 = outP + (long)span.TokenOffset * heads * d + h * d;
            if (span.TokenCount == 1)
                LightningStep(q0, state, o0, d, slopeArr[h]);
            else
                LightningBlocked(q0, 3 * heads * d, span.TokenCount, state, o0, heads * d, d, slopeArr[h], blockSize);
        });
    }

    private static float Silu(float x) => x / (1f + MathF.Exp(-x));

    /// <summary>One token: S = λS + kᵀv; o = qS. qkv points at this head's [q|k|v].</summary>
    private static void LightningStep(float* qkv, float* state, float* o, int d, float slope)
    {
        float lambda = (float)Math.Exp(-slope);
        Span<float> q = stackalloc float[d], k = stackalloc float[d], v = stackalloc float[d];
        for (int i = 0; i < d; i++)
        {
            q[i] = Silu(qkv[i]);
            k[i] = Silu(qkv[d + i]);
            v[i] = Silu(qkv[2 * d + i]);
        }
        var outRow = new Span<float>(o, d);
        outRow.Clear();
        for (int i = 0; i < d; i++)
        {
            var row = new Span<float>(state + (long)i * d, d);
            // row = λ·row + k_i·v
            TensorPrimitives.Multiply(row, lambda, row);
            TensorPrimitives.MultiplyAdd(v, k[i], row, row);
            // o += q_i · row
            TensorPrimitives.MultiplyAdd(row, q[i], outRow, outRow);
        }
    }

    private static void LightningBlocked(float* qkv, int ldqkv, int tokens, float* state, float* o, int ldo, int d, float slope, int blockSize)
    {
        int bmax = Math.Min(blockSize, tokens);
        // Local buffers: Q, K, V, Q⊙q_decay [B, d]; A [B, B]; (K⊙k_decay)ᵀ [d, B].
        int need = 4 * bmax * d + bmax * bmax + d * bmax + bmax;
        float[] rented = ArrayPool<float>.Shared.Rent(need);
        try
        {
            fixed (float* buf = rented)
            {
                float* Q = buf, K = Q + bmax * d, V = K + bmax * d, Qd = V + bmax * d, A = Qd + bmax * d, Kt = A + bmax * bmax, decay = Kt + d * bmax;
                for (int i = 0; i < bmax; i++) decay[i] = (float)Math.Exp(-slope * i);
                for (int start = 0; start < tokens; start += bmax)
                {
                    int m = Math.Min(bmax, tokens - start);
                    for (int i = 0; i < m; i++)
                    {
                        float* src = qkv + (long)(start + i) * ldqkv;
                        float qDecay = (float)Math.Exp(-slope * (i + 1.0));
                        float kDecay = (float)Math.Exp(-slope * (m - 1.0 - i));
                        for (int c = 0; c < d; c++)
                        {
                            float qv = Silu(src[c]), kv = Silu(src[d + c]);
                            Q[i * d + c] = qv;
                            K[i * d + c] = kv;
                            V[i * d + c] = Silu(src[2 * d + c]);
                            Qd[i * d + c] = qv * qDecay;
                            Kt[c * m + i] = kv * kDecay;
                        }
                    }
                    // A = (Q Kᵀ) ⊙ diag, causal inside the block.
                    Gemm.MatMulNT(Q, d, K, Tensors.DType.F32, d, A, m, m, m, d, accumulate: false, threads: 1);
                    for (int i = 0; i < m; i++)
                    for (int j = 0; j < m; j++)
                        A[i * m + j] = j <= i ? A[i * m + j] * decay[i - j] : 0f;
                    float* ob = o + (long)start * ldo;
                    Gemm.MatMulNN(Qd, d, state, d, ob, ldo, m, d, d, accumulate: false, threads: 1);
                    Gemm.MatMulNN(A, m, V, d, ob, ldo, m, d, m, accumulate: true, threads: 1);
                    // S = exp(-s m) S + (K ⊙ k_decay)ᵀ V
                    TensorPrimitives.Multiply(new ReadOnlySpan<float>(state, d * d), (float)Math.Exp(-slope * (double)m), new Span<float>(state, d * d));
                    Gemm.MatMulNN(Kt, m, V, d, state, d, d, d, m, accumulate: true, threads: 1);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }
}
