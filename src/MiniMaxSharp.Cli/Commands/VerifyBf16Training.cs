using MiniMaxSharp.Backends;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

// Training's bf16 product mode (IMixedPrecisionTraining, --precision bf16): the ops it changes against the float32 CPU
// reference, and the fixture's loss and gradients against Hugging Face's, all within the bf16 bound (1e-2).
internal static partial class VerifyCommand
{
    internal sealed partial class Verifier
    {
        /// <summary>
        /// The rows prefixed "BF16 products": the forward products, lightning (the chunked tensor-core kernel through
        /// bf16 copies) and MoE with float32 activations, each product's backward, the fused LM head, then (with the
        /// fixture) the model's loss and gradients and one optimiser step. Backends without a bf16 product mode skip them.
        /// </summary>
        public void RunBf16ProductChecks(string? fixtureDir)
        {
            if (device is not IMixedPrecisionTraining mixed)
            {
                Console.Error.WriteLine($"  bf16 product checks: skipped, backend '{device.Name}' has no bf16 product mode");
                return;
            }
            var saved = (_checks, _gradientBound, mixed.ProductPrecision);
            _checks = (DType.F32, Tolerance, "BF16 products ");
            _gradientBound = Tolerance;
            mixed.ProductPrecision = TrainingPrecision.BF16;
            try
            {
                MatMul(67, 512, 300, DType.F32, DType.F32);
                MatMul(3, 64, 48, DType.F32, DType.F32);
                Lightning(4, 128, [300, 77], [0, 0]);
                Lightning(2, 64, [40], [0]);   // head_dim 64: the float32 recurrence, unchanged
                Moe(50, 256, 8, 384, 2, DType.F32);
                MatMulBackward(67, 512, 300, withDx: true, accumulate: false);
                MatMulBackward(5, 100, 77, withDx: true, accumulate: true);
                MoeBackward(50, 64, 4, 96, 2, aux: true, accumulate: true);
                MoeBackward(301, 128, 8, 64, 2, aux: false, accumulate: false);
                LmHeadCrossEntropy(70, 64, 1000);
                LmHeadCrossEntropy(700, 32, 1000, chunkRows: 64);
                // Inside a weight-copy scope (as ForwardBackward runs): a weight changed after its scope closed is
                // converted again in the next one.
                WeightCopiesFollowTheWeights(mixed, 40, 96, 72);
                if (fixtureDir is not null) RunGradientFixture(fixtureDir, compareStepWeights: false);
            }
            finally
            {
                (_checks, _gradientBound, mixed.ProductPrecision) = saved;
            }
        }

        /// <summary>Two scopes around a product with one weight; the weight is re-uploaded between them. Each scope's result
        /// must match the CPU's product with the weight of that moment.</summary>
        private void WeightCopiesFollowTheWeights(IMixedPrecisionTraining mixed, int rows, int k, int outFeatures)
        {
            var x = F32(Random((long)rows * k), rows, k);
            var w = F32(Random((long)outFeatures * k, 0.1f), outFeatures, k);
            var o = F32(new float[rows * outFeatures], rows, outFeatures);
            string shape = $"[{rows},{k}] x [{outFeatures},{k}]ᵀ";
            for (int round = 0; round < 2; round++)
            {
                using (mixed.WeightCopyScope())
                {
                    device.MatMul(x.Device, w.Device, o.Device);
                    device.MatMul(x.Device, w.Device, o.Device);   // the cached copy
                }
                cpu.MatMul(x.Cpu, w.Cpu, o.Cpu);
                Compare($"weight copy scope, round {round + 1}", shape, o.Device, o.Cpu);
                var changed = Random((long)outFeatures * k, 0.1f);
                device.Upload(changed, w.Device);
                cpu.Upload(changed, w.Cpu);
            }
            Dispose(x, w, o);
        }
    }
}
