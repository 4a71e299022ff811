using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

// The decode-step kernels at the shapes of bench-1b and around their edges: vectorised norms (and the fused
// output norm + sigmoid gate), matvec rounds, the fused router, the few-token MoE, the one-token lightning
// kernel and the short-split decode attention with its combine.
internal static partial class VerifyCommand
{
    internal sealed partial class Verifier
    {
        public void RunDecodeKernelChecks()
        {
            RmsNorm(1, 2048);                      // one 8-column piece per thread
            RmsNorm(2, 1004);                      // columns not a multiple of 8: the generic kernel
            RmsNorm(3, 40000);                     // more pieces than 4 per thread of 256: the generic kernel
            RmsNorm(1, 6144);                      // 768 pieces: 3 per thread (a 768-thread block did not launch)
            RmsNormSigmoidGate(1, 2048);
            RmsNormSigmoidGate(5, 1000);           // 125 pieces: a partly idle warp
            RmsNormSigmoidGate(3, 1004);           // the two ops (generic kernels)
            RmsNormSigmoidGate(2, 30000, DType.F32);   // several pieces per thread, float32 activations
            ScaleAddRmsNorm(2, 1004);              // generic kernel
            ScaleAddRmsNorm(4, 8192);              // several pieces per thread
            MatMul(1, 2048, 2048, DType.BF16, DType.F32);    // one round of loads per lane
            MatMul(4, 6144, 96, DType.BF16, DType.BF16);     // three rounds, four rows
            MatMul(2, 2056, 33, DType.BF16, DType.BF16);     // a second, nearly empty round
            MatMulMany(1, 2048, [6144, 2048]);     // the lightning block's qkv and output gate: one launch
            MatMulMany(3, 512, [100, 33, 33]);     // q, k and v of a softmax block
            MatMulMany(1, 256, [8, 8, 8, 8, 8]);   // more than four products: one launch each
            MatMulMany(2, 100, [50, 20]);          // in not a multiple of 8: cuBLAS
            Moe(1, 2048, 8, 256, 2);               // bench-1b's hidden size and experts at one token
            Moe(5, 512, 16, 200, 3);               // odd top-k (an unpaired choice), inter not a multiple of 256
            Moe(8, 264, 4, 96, 2);                 // 16 pairs, hidden with a short round
            ScaleAddRmsNormMoe(1, 2048, 8, 256, 2);   // bench-1b's shape: the norm and the routing in one launch
            ScaleAddRmsNormMoe(3, 256, 16, 64, 3);    // 9 pairs, an unpaired choice
            ScaleAddRmsNormMoe(2, 1000, 40, 32, 2);   // a partly idle warp; more experts than one router group
            ScaleAddRmsNormMoe(2, 1004, 4, 64, 2);    // columns not a multiple of 8: the two ops
            ScaleAddRmsNormMoe(20, 128, 4, 32, 2);    // 40 pairs: the two ops (padded MoE groups)
            ScaleAddRmsNormMoe(1, 64, 72, 16, 2);     // more experts than the fused kernel routes: the two ops
            ScaleAddRmsNormMoe(1, 6144, 8, 64, 2);    // 768 pieces, more than one per thread of 256: the two ops
            Lightning(16, 128, [1], [5]);          // bench-1b's lightning decode step
            Lightning(4, 128, [1, 1, 1], [3, 0, 100]);
            // Both GQA decode kernels (the default lanes-over-channels one, and the lane-per-key one kept for A/B).
            var gqa = device as CudaBackend;
            var kept = gqa?.GqaDecodeKernel;
            foreach (var kernel in gqa is null ? [GqaDecodeKernel.Lanes] : new[] { GqaDecodeKernel.Lanes, GqaDecodeKernel.Keys })
            {
                if (gqa is not null) gqa.GqaDecodeKernel = kernel;
                // bench-1b's softmax decode step: 33 live splits of 128 keys (keys kernel), 129 of 32 (lanes kernel)
                Softmax(16, 2, 128, [1], [4096]);
                Softmax(16, 2, 128, [1, 1, 1], [126, 127, 128]);   // split boundaries
                Softmax(16, 2, 128, [1, 1], [31, 32]);               // one lanes split, then two; a round of 8 with 0 and 1 live keys
                // 8 tokens: 33 splits, so the token at 4300 takes splits of 131 keys (a second, short tile for warp 0).
                Softmax(8, 2, 128, [1, 1, 1, 1, 1, 1, 1, 1], [4300, 0, 1, 2, 3, 200, 129, 5]);
                Softmax(12, 4, 128, [1], [20000]);                   // group 3, 79-key splits: rounds per warp with a partial last one
            }
            if (gqa is not null) gqa.GqaDecodeKernel = kept!.Value;
            Softmax(8, 8, 64, [1, 1], [700, 3]);   // decode_attention_split with the live-split combine
        }

        private void MatMulMany(int rows, int k, int[] outFeatures)
        {
            var x = Activation(Random((long)rows * k), rows, k);
            var ws = outFeatures.Select(n => Weight(Random((long)n * k, 0.1f), n, k)).ToArray();
            var os = outFeatures.Select(n => Activation(new float[rows * n], rows, n)).ToArray();
            device.MatMulMany(x.Device, ws.Select(w => w.Device).ToArray(), os.Select(o => o.Device).ToArray());
            cpu.MatMulMany(x.Cpu, ws.Select(w => w.Cpu).ToArray(), os.Select(o => o.Cpu).ToArray());
            Record("MatMulMany", $"[{rows},{k}] x [{string.Join(", ", outFeatures)}]ᵀ",
                os.SelectMany(o => Read(device, o.Device)).ToArray(), os.SelectMany(o => Read(cpu, o.Cpu)).ToArray());
            Dispose([x, .. ws, .. os]);
        }

        /// <summary>The post-attention residual add, norm and MoE as the model calls them (the normed output over the
        /// first input, the MoE output over the second).</summary>
        private void ScaleAddRmsNormMoe(int tokens, int hidden, int experts, int inter, int topK)
        {
            var a = Activation(Random((long)tokens * hidden), tokens, hidden);
            var b = Pair(Random((long)tokens * hidden, 2f), device.ResidualType, tokens, hidden);
            var residual = Pair(new float[tokens * hidden], device.ResidualType, tokens, hidden);
            var norm = Weight(Random(hidden), hidden);
            var router = Weight(Random((long)experts * hidden, 0.2f), experts, hidden);
            var weights = Enumerable.Range(0, experts).Select(_ => (
                W1: Weight(Random((long)inter * hidden, 0.1f), inter, hidden),
                W2: Weight(Random((long)hidden * inter, 0.1f), hidden, inter),
                W3: Weight(Random((long)inter * hidden, 0.1f), inter, hidden))).ToArray();
            device.ScaleAddRmsNormMoe(a.Device, 3.5f, b.Device, 1f, residual.Device, norm.Device, 1e-5f, a.Device,
                router.Device, weights.Select(e => new ExpertWeights(e.W1.Device, e.W2.Device, e.W3.Device)).ToArray(), topK, b.Device);
            cpu.ScaleAddRmsNormMoe(a.Cpu, 3.5f, b.Cpu, 1f, residual.Cpu, norm.Cpu, 1e-5f, a.Cpu,
                router.Cpu, weights.Select(e => new ExpertWeights(e.W1.Cpu, e.W2.Cpu, e.W3.Cpu)).ToArray(), topK, b.Cpu);
            string shape = $"T {tokens}, hidden {hidden}, E {experts}, I {inter}, top-{topK}, "
                + $"top-k margin {RoutingMargin(Read(cpu, a.Cpu), Read(cpu, router.Cpu), tokens, hidden, experts, topK):E1}";
            Compare("ScaleAddRmsNormMoe residual", shape, residual.Device, residual.Cpu);
            Compare("ScaleAddRmsNormMoe normed", shape, a.Device, a.Cpu);
            // The op's contract: out = MoE(normed as stored), routed from the stored (bf16) rows. The reference is the CPU's
            // MoE of the device's normed rows, so the row measures the routing and experts alone: against the MoE of the
            // CPU's float32 rows, the normed row's bf16 rounding moves the routing weights too, by up to ~1e-2 of the
            // output at bench-1b's hidden size (one token: nothing averages it out).
            using var storedNormed = cpu.Allocate(DType.F32, tokens, hidden);
            cpu.Upload(Read(device, a.Device), storedNormed);
            using var expected = cpu.Allocate(DType.F32, tokens, hidden);
            cpu.MixtureOfExperts(storedNormed, router.Cpu, weights.Select(e => new ExpertWeights(e.W1.Cpu, e.W2.Cpu, e.W3.Cpu)).ToArray(), topK, expected);
            double fromFloatRows = RelativeError(Read(device, b.Device), Read(cpu, b.Cpu));
            Compare("ScaleAddRmsNormMoe out (MoE of the stored normed rows)", $"{shape}; against the float32 rows' MoE {fromFloatRows:E2}", b.Device, expected);
            Dispose([a, b, residual, norm, router, .. weights.SelectMany(e => new[] { e.W1, e.W2, e.W3 })]);
        }

        private void RmsNormSigmoidGate(int rows, int cols, DType? activations = null)
        {
            DType type = activations ?? device.ActivationType;
            var x = Pair(Random((long)rows * cols, 3f), type, rows, cols);
            var g = Pair(Random((long)rows * cols, 4f), type, rows, cols);
            var w = Weight(Random(cols), cols);
            device.RmsNormSigmoidGate(x.Device, w.Device, 1e-5f, g.Device, x.Device);   // in place, as the model
            cpu.RmsNormSigmoidGate(x.Cpu, w.Cpu, 1e-5f, g.Cpu, x.Cpu);
            Compare("RmsNormSigmoidGate", $"[{rows},{cols}] {type}", x.Device, x.Cpu);
            Dispose(x, g, w);
        }
    }
}
