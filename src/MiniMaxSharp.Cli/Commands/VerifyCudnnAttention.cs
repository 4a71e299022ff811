using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Cli.Commands;

internal static partial class VerifyCommand
{
    internal sealed partial class Verifier
    {
        /// <summary>
        /// Softmax attention prefill through cuDNN's fused attention against the CPU: a fresh sequence (top-left
        /// causal mask), one that follows earlier context in its cache (the diagonal shifted by the cached keys),
        /// lengths that are not multiples of cuDNN's tiles, and a packed batch where long sequences go to cuDNN
        /// and short ones to the flash kernel in the same op. Fails when cuDNN is there but built no plan.
        /// </summary>
        public void RunCudnnAttentionChecks()
        {
            if (device is not CudaBackend cuda) return;
            if (!cuda.CudnnAttentionAvailable)
            {
                Console.WriteLine($"cuDNN attention: {cuda.CudnnAttentionStatus} (its checks are not run)");
                return;
            }
            int before = cuda.CudnnAttentionPlansBuilt;
            Softmax(16, 2, 128, [1500], [0]);
            Softmax(16, 2, 128, [1100], [700]);
            Softmax(8, 1, 128, [1030, 40, 2048], [0, 5, 300]);
            int built = cuda.CudnnAttentionPlansBuilt - before;
            Console.WriteLine($"cuDNN attention: {cuda.CudnnAttentionStatus}");
            // Four long runs above (1500, 1100 after 700, 1030, 2048 after 300): each needs a plan of its own.
            Record("cuDNN attention plans built (of 4)", "long prefills above", built == 4 ? 0 : 1, 0);
        }
    }
}
