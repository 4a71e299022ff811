using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

// Lightning attention prefill (head_dim 128) against a float64 token-by-token recurrence, on every path of the
// CUDA kernels: many (sequence, head) pairs (one chunk each), few pairs (sequences split into chunks: chunk-state
// pass, scan, output pass), carried states, lengths that are not multiples of the 64-token block. On a CUDA
// backend each shape runs with every prefill kernel the GPU has (on sm_90 lightning_wgmma and lightning_pair;
// lightning_pipe; lightning_chunk).
internal static partial class VerifyCommand
{
    internal sealed partial class Verifier
    {
        /// <summary>Bound of the prefill rows on ‖Δ‖/‖ref‖ against the float64 recurrence (bf16 inputs and outputs).</summary>
        internal const double LightningPrefillBound = 5e-3;

        public void RunLightningPrefillChecks()
        {
            LightningPrefill(48, [200, 77, 130, 64], [0, 5, 0, 300]);   // 192 (sequence, head) pairs: one chunk each
            LightningPrefill(4, [3000, 1500, 70], [0, 17, 3]);          // 12 pairs: chunks of several blocks, carried states
            LightningPrefill(16, [1000, 40], [9, 0]);                   // a long and a short sequence: chunks of 256
            LightningPrefill(16, [2048], [0]);                          // bench-1b's 2K prefill (one layer, batch 1)
            LightningPrefill(2, [100], [0]);                            // shorter than a chunk: one item per head
            // Layer 0's fast decays: pass 0 reads only the last blocks of each chunk for most heads (the decay cutoff), all of
            // it for the slowest; a carried state.
            LightningPrefill(16, [12000], [5], LightningDecay.Slopes(16, 0, 80));
        }

        internal void LightningPrefill(int heads, int[] counts, int[] starts, float[]? slopes = null)
        {
            const int d = 128;
            var layout = BatchLayout.Create(counts, starts);
            int T = layout.TotalTokens;
            float[] qkvValues = Random((long)T * 3 * heads * d, 1.5f);
            // Sequences that already hold tokens carry a state; fresh ones start at zero.
            float[][] initial = counts.Select((_, i) => starts[i] > 0 ? Random((long)heads * d * d, 0.5f) : new float[heads * d * d]).ToArray();
            slopes ??= LightningDecay.Slopes(heads, 3, 8);
            var (expectedOut, expectedStates) = LightningRecurrence64(qkvValues, layout, initial, slopes, heads, d);
            string shape = $"H {heads}, d {d}, seqs {Seqs(counts, starts)}";
            var cuda = device as CudaBackend;
            LightningPrefillKernel?[] kernels = cuda is null ? [null] : cuda.LightningPrefillKernels.Select(k => (LightningPrefillKernel?)k).ToArray();
            foreach (var kernel in kernels)
            {
                var before = cuda?.LightningKernel;
                using var qkv = device.Allocate(device.ActivationType, T, 3 * heads * d);
                using var o = device.Allocate(device.ActivationType, T, heads * d);
                device.Upload(qkvValues, qkv);
                var states = initial.Select(values =>
                {
                    var s = device.Allocate(DType.F32, heads, d * d);
                    device.Upload(values, s);
                    return s;
                }).ToArray();
                try
                {
                    if (cuda is not null && kernel is { } k) cuda.LightningKernel = k;
                    device.LightningAttention(qkv, layout, states, slopes, d, 256, o);
                    string which = kernel is { } named ? $" ({CudaBackend.LightningKernelFunction(named)})" : "";
                    Record($"Lightning prefill out{which} vs float64", shape, Read(device, o), expectedOut, LightningPrefillBound);
                    Record($"Lightning prefill state{which} vs float64", shape, states.SelectMany(s => Read(device, s)).ToArray(), expectedStates, LightningPrefillBound);
                }
                finally
                {
                    if (cuda is not null && before is { } b) cuda.LightningKernel = b;
                    foreach (var s in states) s.Dispose();
                }
            }
        }

        /// <summary>
        /// The spec's recurrence in float64, token by token: S = λS + kᵀv, o = qS with q, k, v = SiLU of the inputs and
        /// λ = exp(-slope). Returns the outputs [tokens, heads·d] and the final states, sequence after sequence.
        /// </summary>
        internal static (float[] Out, float[] States) LightningRecurrence64(float[] qkv, BatchLayout layout, float[][] initial,
            float[] slopes, int heads, int d)
        {
            var output = new float[(long)layout.TotalTokens * heads * d];
            var states = new float[(long)layout.Count * heads * d * d];
            int inWidth = 3 * heads * d, outWidth = heads * d;
            static double Silu(double x) => x / (1 + Math.Exp(-x));
            Parallel.For(0, layout.Count * heads, item =>
            {
                int seq = item / heads, h = item % heads;
                var span = layout.Sequences[seq];
                var S = new double[d * d];
                for (int i = 0; i < d * d; i++) S[i] = initial[seq][(long)h * d * d + i];
                double lambda = Math.Exp(-(double)slopes[h]);
                var q = new double[d];
                var k = new double[d];
                var v = new double[d];
                var o = new double[d];
                for (int t = 0; t < span.TokenCount; t++)
                {
                    long row = (long)(span.TokenOffset + t) * inWidth + h * 3 * d;
                    for (int i = 0; i < d; i++)
                    {
                        q[i] = Silu(qkv[row + i]);
                        k[i] = Silu(qkv[row + d + i]);
                        v[i] = Silu(qkv[row + 2 * d + i]);
                    }
                    Array.Clear(o);
                    for (int i = 0; i < d; i++)
                    {
                        int at = i * d;
                        double ki = k[i], qi = q[i];
                        for (int j = 0; j < d; j++)
                        {
                            double s = lambda * S[at + j] + ki * v[j];
                            S[at + j] = s;
                            o[j] += qi * s;
                        }
                    }
                    long outRow = (long)(span.TokenOffset + t) * outWidth + h * d;
                    for (int j = 0; j < d; j++) output[outRow + j] = (float)o[j];
                }
                long stateAt = ((long)seq * heads + h) * d * d;
                for (int i = 0; i < d * d; i++) states[stateAt + i] = (float)S[i];
            });
            return (output, states);
        }
    }
}
