using System.Text.Json;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

// The gradient ops (IGradientBackend) of a backend against the CPU backend, and the tiny-hybrid fixture's
// forward + backward end to end.
internal static partial class VerifyCommand
{
    /// <summary>Float32 gradient paths: the bound on ‖Δ‖/‖ref‖ of an op against the CPU.</summary>
    private const double GradientOpTolerance = 1e-4;

    internal sealed partial class Verifier
    {
        /// <summary>What the op checks run with: activations of the device's type and the bf16 bound, unless the
        /// training-forward checks (float32 activations, as training runs the forward) say otherwise.</summary>
        private (DType? ActivationType, double Bound, string OpPrefix) _checks = (null, Tolerance, "");

        private IGradientBackend DeviceGrad => device as IGradientBackend
            ?? throw new NotSupportedException($"backend '{device.Name}' has no gradient ops");

        private IGradientBackend CpuGrad => (IGradientBackend)cpu;

        private (DeviceTensor Device, DeviceTensor Cpu) F32(float[] values, params int[] shape) => Pair(values, DType.F32, shape);

        /// <summary>The bound of the gradient-op rows: float32's, or 1e-2 while the bf16 product checks run.</summary>
        private double _gradientBound = GradientOpTolerance;

        private void CompareF32(string op, string shape, DeviceTensor onDevice, DeviceTensor onCpu) =>
            Compare(op, shape, onDevice, onCpu, _gradientBound);

        public void RunGradientOps()
        {
            RunTrainingForwardOps();
            ClearCheck(37, 129);
            EmbeddingBackward(300, 64, 200);
            RmsNormBackward(67, 1024, accumulate: false);
            RmsNormBackward(1, 6144, accumulate: true);
            MatMulBackward(67, 512, 300, withDx: true, accumulate: false);
            MatMulBackward(5, 100, 77, withDx: true, accumulate: true);
            MatMulBackward(33, 64, 48, withDx: false, accumulate: false);
            SigmoidGateBackward(33, 777);
            RouterStatistics(301, 128, 8, 2);
            MoeBackward(50, 64, 4, 96, 2, aux: true, accumulate: true);
            MoeBackward(301, 128, 8, 64, 2, aux: false, accumulate: false);
            MoeBackward(3, 64, 4, 32, 1, aux: true, accumulate: false);
            LmHeadCrossEntropy(70, 64, 1000);
            LmHeadCrossEntropy(700, 32, 1000, chunkRows: 64);   // many chunks of logits, the last one short
            SumOfSquares(1_000_003);
            SumsOfSquares([1_000_003, 0, 7, 65_537]);
            AdamW(10_007, step: 1, weightDecay: 0.1);
            AdamW(999, step: 17, weightDecay: 0);
        }

        /// <summary>The forward ops with float32 activations (training's forward: float32 activations, master weights and
        /// caches take the general kernels, not the bf16 tensor-core ones), against the CPU within the float32 bound.</summary>
        private void RunTrainingForwardOps()
        {
            _checks = (DType.F32, GradientOpTolerance, "F32 ");
            try
            {
                Embedding(1000, 64, 37);
                RmsNorm(67, 1024);
                MatMul(67, 512, 300, DType.F32, DType.F32);
                MatMul(3, 64, 48, DType.F32, DType.F32);
                Rope(4, 128, 64, 1e7, [5, 130], [0, 0]);
                Lightning(4, 128, [300, 77], [0, 0]);
                Lightning(2, 64, [40], [0]);
                Softmax(16, 2, 128, [300, 200], [0, 0]);
                Softmax(4, 2, 64, [100], [0]);
                Moe(50, 256, 8, 384, 2, DType.F32);
                Moe(3, 64, 4, 96, 2, DType.F32);
            }
            finally
            {
                _checks = (null, Tolerance, "");
            }
        }

        private void ClearCheck(int rows, int cols)
        {
            var t = F32(Random((long)rows * cols), rows, cols);
            DeviceGrad.Clear(t.Device);
            CpuGrad.Clear(t.Cpu);
            CompareF32("Clear", $"[{rows},{cols}]", t.Device, t.Cpu);
            Dispose(t);
        }

        private void EmbeddingBackward(int vocab, int hidden, int tokens)
        {
            var ids = Enumerable.Range(0, tokens).Select(_ => _rng.Next(vocab / 4)).ToArray();   // many repeats
            ids[0] = vocab - 1;
            var g = F32(Random((long)tokens * hidden), tokens, hidden);
            var table = F32(Random((long)vocab * hidden), vocab, hidden);
            DeviceGrad.EmbeddingBackward(ids, g.Device, table.Device);
            CpuGrad.EmbeddingBackward(ids, g.Cpu, table.Cpu);
            CompareF32("EmbeddingBackward", $"[{vocab},{hidden}] x {tokens} ids", table.Device, table.Cpu);
            Dispose(g, table);
        }

        private void RmsNormBackward(int rows, int cols, bool accumulate)
        {
            var x = F32(Random((long)rows * cols, 3f), rows, cols);
            var w = F32(Random(cols), cols);
            var g = F32(Random((long)rows * cols), rows, cols);
            var dx = F32(Random((long)rows * cols), rows, cols);
            var dw = F32(Random(cols), cols);
            DeviceGrad.RmsNormBackward(x.Device, w.Device, 1e-5f, g.Device, dx.Device, accumulate, dw.Device);
            CpuGrad.RmsNormBackward(x.Cpu, w.Cpu, 1e-5f, g.Cpu, dx.Cpu, accumulate, dw.Cpu);
            string shape = $"[{rows},{cols}]{(accumulate ? " +=" : "")}";
            CompareF32("RmsNormBackward dX", shape, dx.Device, dx.Cpu);
            CompareF32("RmsNormBackward dWeight", shape, dw.Device, dw.Cpu);
            Dispose(x, w, g, dx, dw);
        }

        private void MatMulBackward(int rows, int k, int outFeatures, bool withDx, bool accumulate)
        {
            var x = F32(Random((long)rows * k), rows, k);
            var w = F32(Random((long)outFeatures * k, 0.1f), outFeatures, k);
            var g = F32(Random((long)rows * outFeatures), rows, outFeatures);
            var dx = F32(Random((long)rows * k), rows, k);
            var dw = F32(Random((long)outFeatures * k), outFeatures, k);
            DeviceGrad.MatMulBackward(x.Device, w.Device, g.Device, withDx ? dx.Device : null, accumulate, dw.Device);
            CpuGrad.MatMulBackward(x.Cpu, w.Cpu, g.Cpu, withDx ? dx.Cpu : null, accumulate, dw.Cpu);
            string shape = $"[{rows},{k}] x [{outFeatures},{k}]ᵀ{(withDx ? accumulate ? ", dX +=" : ", dX =" : ", no dX")}";
            CompareF32("MatMulBackward dX", shape, dx.Device, dx.Cpu);
            CompareF32("MatMulBackward dWeight", shape, dw.Device, dw.Cpu);
            Dispose(x, w, g, dx, dw);
        }

        private void SigmoidGateBackward(int rows, int cols)
        {
            long n = (long)rows * cols;
            var gate = F32(Random(n, 4f), rows, cols);
            var x = F32(Random(n), rows, cols);
            var g = F32(Random(n), rows, cols);
            var dGate = F32(new float[n], rows, cols);
            var dx = F32(new float[n], rows, cols);
            DeviceGrad.SigmoidGateBackward(gate.Device, x.Device, g.Device, dGate.Device, dx.Device);
            CpuGrad.SigmoidGateBackward(gate.Cpu, x.Cpu, g.Cpu, dGate.Cpu, dx.Cpu);
            CompareF32("SigmoidGateBackward dGate", $"[{rows},{cols}]", dGate.Device, dGate.Cpu);
            CompareF32("SigmoidGateBackward dX", $"[{rows},{cols}]", dx.Device, dx.Cpu);
            Dispose(gate, x, g, dGate, dx);
        }

        private void RouterStatistics(int tokens, int hidden, int experts, int topK)
        {
            var x = F32(Random((long)tokens * hidden), tokens, hidden);
            var router = F32(Random((long)experts * hidden, 0.2f), experts, hidden);
            // Both start from the same non-zero sums: the op adds.
            double[] countsDevice = [.. Enumerable.Range(0, experts).Select(e => (double)e)], probsDevice = [.. countsDevice];
            double[] countsCpu = [.. countsDevice], probsCpu = [.. countsDevice];
            DeviceGrad.RouterStatistics(x.Device, router.Device, topK, countsDevice, probsDevice);
            CpuGrad.RouterStatistics(x.Cpu, router.Cpu, topK, countsCpu, probsCpu);
            string shape = $"T {tokens}, hidden {hidden}, E {experts}, top-{topK}";
            static float[] Floats(double[] v) => [.. v.Select(d => (float)d)];
            Record("RouterStatistics slot counts", shape, Floats(countsDevice), Floats(countsCpu), _gradientBound);
            Record("RouterStatistics probability sums", shape, Floats(probsDevice), Floats(probsCpu), _gradientBound);
            Dispose(x, router);
        }

        private void MoeBackward(int tokens, int hidden, int experts, int inter, int topK, bool aux, bool accumulate)
        {
            var x = F32(Random((long)tokens * hidden), tokens, hidden);
            var router = F32(Random((long)experts * hidden, 0.2f), experts, hidden);
            (DeviceTensor Device, DeviceTensor Cpu)[] Matrices(float scale) => [.. Enumerable.Range(0, experts).SelectMany(_ => new[]
            {
                F32(Random((long)inter * hidden, scale), inter, hidden),
                F32(Random((long)hidden * inter, scale), hidden, inter),
                F32(Random((long)inter * hidden, scale), inter, hidden),
            })];
            var w = Matrices(0.1f);
            var dw = Matrices(0.01f);   // gradients accumulate onto what is there
            ExpertWeights[] Experts((DeviceTensor Device, DeviceTensor Cpu)[] m, bool onDevice) =>
                [.. Enumerable.Range(0, experts).Select(e => onDevice
                    ? new ExpertWeights(m[3 * e].Device, m[3 * e + 1].Device, m[3 * e + 2].Device)
                    : new ExpertWeights(m[3 * e].Cpu, m[3 * e + 1].Cpu, m[3 * e + 2].Cpu))];
            var g = F32(Random((long)tokens * hidden), tokens, hidden);
            var dx = F32(Random((long)tokens * hidden), tokens, hidden);
            var dRouter = F32(Random((long)experts * hidden, 0.01f), experts, hidden);
            float[] auxGradient = aux ? [.. Enumerable.Range(0, experts).Select(e => 0.05f * (e + 1))] : [];
            DeviceGrad.MixtureOfExpertsBackward(x.Device, router.Device, Experts(w, true), topK, g.Device, auxGradient, dx.Device, accumulate, dRouter.Device, Experts(dw, true));
            CpuGrad.MixtureOfExpertsBackward(x.Cpu, router.Cpu, Experts(w, false), topK, g.Cpu, auxGradient, dx.Cpu, accumulate, dRouter.Cpu, Experts(dw, false));
            string shape = $"T {tokens}, hidden {hidden}, E {experts}, I {inter}, top-{topK}{(aux ? ", aux" : "")}{(accumulate ? ", dX +=" : "")}";
            CompareF32("MoE backward dX", shape, dx.Device, dx.Cpu);
            CompareF32("MoE backward dRouter", shape, dRouter.Device, dRouter.Cpu);
            Record("MoE backward dExperts", shape, dw.SelectMany(p => Read(device, p.Device)).ToArray(), dw.SelectMany(p => Read(cpu, p.Cpu)).ToArray(), _gradientBound);
            Dispose([x, router, g, dx, dRouter, .. w, .. dw]);
        }

        private void LmHeadCrossEntropy(int rows, int hidden, int vocab, int? chunkRows = null)
        {
            var cuda = device as CudaBackend;
            if (chunkRows is int n && cuda is not null) cuda.CrossEntropyChunkBudget = n * vocab;
            var h = F32(Random((long)rows * hidden), rows, hidden);
            var head = F32(Random((long)vocab * hidden, 0.1f), vocab, hidden);
            var dh = F32(new float[(long)rows * hidden], rows, hidden);
            var dHead = F32(Random((long)vocab * hidden, 0.01f), vocab, hidden);
            int[] targets = [.. Enumerable.Range(0, rows).Select(t => t % 7 == 3 ? IGradientBackend.IgnoredTarget : _rng.Next(vocab))];
            targets[^1] = vocab - 1;
            const float scale = 1f / 50;
            double lossDevice;
            try
            {
                lossDevice = DeviceGrad.LmHeadCrossEntropy(h.Device, head.Device, targets, scale, dh.Device, dHead.Device);
            }
            finally
            {
                if (cuda is not null) cuda.CrossEntropyChunkBudget = CudaBackend.CrossEntropyChunkElements;
            }
            double lossCpu = CpuGrad.LmHeadCrossEntropy(h.Cpu, head.Cpu, targets, scale, dh.Cpu, dHead.Cpu);
            string shape = $"[{rows},{hidden}] x [{vocab},{hidden}]ᵀ, every 7th row ignored{(chunkRows is int c ? $", chunks of {c} rows" : "")}";
            Record("LmHeadCrossEntropy loss", shape, Math.Abs(lossDevice - lossCpu) / Math.Abs(lossCpu), _gradientBound);
            CompareF32("LmHeadCrossEntropy dHidden", shape, dh.Device, dh.Cpu);
            CompareF32("LmHeadCrossEntropy dLmHead", shape, dHead.Device, dHead.Cpu);
            Dispose(h, head, dh, dHead);
        }

        private void SumOfSquares(int n)
        {
            var t = F32(Random(n, 2f), n);
            double onDevice = DeviceGrad.SumOfSquares(t.Device), onCpu = CpuGrad.SumOfSquares(t.Cpu);
            Record("SumOfSquares", $"[{n}]", Math.Abs(onDevice - onCpu) / onCpu, _gradientBound);
            Dispose(t);
        }

        /// <summary>The one-transfer sums (what clipping uses) against SumOfSquares of each tensor on the device (the same
        /// values exactly: same partials, same host order) and against the CPU.</summary>
        private void SumsOfSquares(int[] sizes)
        {
            var tensors = sizes.Select(n => F32(Random(n, 2f), n)).ToArray();
            var batched = new double[sizes.Length];
            DeviceGrad.SumsOfSquares([.. tensors.Select(t => t.Device)], batched);
            var single = tensors.Select(t => DeviceGrad.SumOfSquares(t.Device)).ToArray();
            var onCpu = tensors.Select(t => CpuGrad.SumOfSquares(t.Cpu)).ToArray();
            string shape = $"{sizes.Length} tensors [{string.Join(", ", sizes)}]";
            Record("SumsOfSquares vs SumOfSquares (identical)", shape, batched.SequenceEqual(single) ? 0 : double.PositiveInfinity, 0);
            double num = 0, den = 0;
            for (int i = 0; i < sizes.Length; i++)
            {
                num += (batched[i] - onCpu[i]) * (batched[i] - onCpu[i]);
                den += onCpu[i] * onCpu[i];
            }
            Record("SumsOfSquares vs CPU", shape, Math.Sqrt(num / den), _gradientBound);
            Dispose(tensors);
        }

        private void AdamW(int n, int step, double weightDecay)
        {
            var p = F32(Random(n), n);
            var g = F32(Random(n, 0.1f), n);
            var m = F32(Random(n, 0.01f), n);
            var v = F32([.. Random(n, 0.01f).Select(MathF.Abs)], n);
            var hyper = new AdamWStep(1e-3, 0.9, 0.95, 1e-8, weightDecay, step);
            DeviceGrad.AdamWUpdate(p.Device, g.Device, m.Device, v.Device, hyper);
            CpuGrad.AdamWUpdate(p.Cpu, g.Cpu, m.Cpu, v.Cpu, hyper);
            string shape = $"[{n}], step {step}, decay {weightDecay}";
            CompareF32("AdamWUpdate parameter", shape, p.Device, p.Cpu);
            CompareF32("AdamWUpdate moments", shape, m.Device, m.Cpu);
            CompareF32("AdamWUpdate second moments", shape, v.Device, v.Cpu);
            Dispose(p, g, m, v);
        }

        // ---- the fixture model: forward + backward end to end ----

        /// <summary>
        /// TrainingModel.ForwardBackward on tiny-hybrid's training batch (seq100.json ids, seq100_train.json labels) on
        /// the device and on the CPU: the loss and every gradient against the CPU's and against the fixture's
        /// (seq100_grads.safetensors, from Hugging Face). One row each for the worst gradient. Skipped (with a note)
        /// while the device lacks an attention backward.
        /// </summary>
        public void RunGradientFixture(string dir) => RunGradientFixture(dir, compareStepWeights: true);

        private void RunGradientFixture(string dir, bool compareStepWeights)
        {
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"fixture folder not found: {dir}");
            var batch = FixtureTrainingBatch(dir, out double expectedLoss);
            string shape = $"tiny-hybrid {batch.Length}x{batch[0].InputIds.Length}";
            using var onDevice = TrainingModel.Load(dir, device);
            LossReport deviceLoss;
            try
            {
                deviceLoss = onDevice.ForwardBackward(batch);
            }
            catch (NotImplementedException e)
            {
                Console.Error.WriteLine($"  model gradients: skipped, the backend lacks an op ({e.Message})");
                return;
            }
            using var onCpu = TrainingModel.Load(dir, cpu);
            var cpuLoss = onCpu.ForwardBackward(batch);
            Record("model loss vs CPU", shape, Math.Abs(deviceLoss.Total - cpuLoss.Total) / cpuLoss.Total, Tolerance);
            Record("model loss vs fixture", shape, Math.Abs(deviceLoss.Total - expectedLoss) / expectedLoss, Tolerance);

            var (worstCpu, worstCpuName) = WorstGradientAgainst(onDevice, onCpu);
            Record($"model gradients vs CPU (worst: {worstCpuName})", $"{shape}, {TrainableWeights.Named(onCpu.Gradients).Count()} tensors", worstCpu, Tolerance);
            var (worst, worstName, count) = WorstGradientAgainstFixture(dir, onDevice);
            Record($"model gradients vs fixture (worst: {worstName})", $"{shape}, {count} tensors", worst, Tolerance);

            TrainingStepCheck(onDevice, onCpu, batch, shape, compareStepWeights);
        }

        /// <summary>The gradient tensor of <paramref name="onDevice"/> farthest from <paramref name="onCpu"/>'s (relative error, name).</summary>
        private (double Error, string Name) WorstGradientAgainst(TrainingModel onDevice, TrainingModel onCpu)
        {
            var cpuGradients = TrainableWeights.Named(onCpu.Gradients).ToDictionary(p => p.Name, p => p.Tensor);
            var (worst, worstName) = (-1.0, "");   // the first tensor always becomes the worst so far
            foreach (var (name, t) in TrainableWeights.Named(onDevice.Gradients))
            {
                double err = RelativeError(Read(device, t), Read(cpu, cpuGradients[name]));
                if (IsWorse(err, worst)) (worst, worstName) = (err, name);
            }
            return (worst, worstName);
        }

        /// <summary>The gradients of <paramref name="onDevice"/> written as <c>minimax gradients</c> writes them (the checkpoint's
        /// own names) against the fixture's seq100_grads.safetensors: the worst tensor's relative error and name, and the count.</summary>
        private static (double Error, string Name, int Count) WorstGradientAgainstFixture(string dir, TrainingModel onDevice)
        {
            string[] checkpointNames;
            using (var files = CheckpointFiles.Open(dir)) checkpointNames = [.. files.Names];
            string temp = Path.Combine(Path.GetTempPath(), $"minimax-verify-{Environment.ProcessId}-grads.safetensors");
            try
            {
                GradientFiles.Write(temp, onDevice, checkpointNames);
                using var expected = SafeTensorsFile.Open(Path.Combine(dir, "seq100_grads.safetensors"));
                using var actual = SafeTensorsFile.Open(temp);
                var (worst, worstName) = (-1.0, "");
                foreach (var name in expected.Tensors.Keys)
                {
                    double err = actual.Tensors.ContainsKey(name) ? RelativeError(actual.ReadAsFloat32(name), expected.ReadAsFloat32(name)) : double.NaN;
                    if (IsWorse(err, worst)) (worst, worstName) = (err, name);
                }
                return (worst, worstName, expected.Tensors.Count);
            }
            finally
            {
                File.Delete(temp);
            }
        }

        /// <summary>
        /// One optimiser step (zeroing, gradients, clipping by global norm, AdamW) on both, then the loss of the same batch
        /// under the updated weights: what <c>minimax train</c> does per step. The step's update is compared through its
        /// effect (weights, loss after) rather than element by element: Adam's first update is about lr·sign(g), which
        /// flips for gradients near zero under any rounding difference.
        /// </summary>
        /// With <paramref name="compareWeights"/> off (bf16 products) the weights row is left out: the gradients differ from
        /// float32's by ~1e-3, enough to flip lr·sign(g) wherever |g| is that small, which says nothing about the step.
        private void TrainingStepCheck(TrainingModel onDevice, TrainingModel onCpu, TrainingExample[] batch, string shape, bool compareWeights)
        {
            using var adamDevice = new AdamW(onDevice, new AdamWOptions());
            using var adamCpu = new AdamW(onCpu, new AdamWOptions());
            const double learningRate = 1e-2;
            var stepDevice = TrainingStep.Run(onDevice, adamDevice, [batch], learningRate, maxGradientNorm: 1.0);
            var stepCpu = TrainingStep.Run(onCpu, adamCpu, [batch], learningRate, maxGradientNorm: 1.0);
            Record("train step gradient norm vs CPU", shape, Math.Abs(stepDevice.GradientNorm - stepCpu.GradientNorm) / stepCpu.GradientNorm, Tolerance);
            if (compareWeights)
            {
                var cpuWeights = TrainableWeights.Named(onCpu.Weights).ToDictionary(p => p.Name, p => p.Tensor);
                var (worst, worstName) = (-1.0, "");
                foreach (var (name, t) in TrainableWeights.Named(onDevice.Weights))
                {
                    double err = RelativeError(Read(device, t), Read(cpu, cpuWeights[name]));
                    if (IsWorse(err, worst)) (worst, worstName) = (err, name);
                }
                Record($"train step weights vs CPU (worst: {worstName})", $"{shape}, AdamW lr {learningRate}", worst, Tolerance);
            }
            double lossDevice = onDevice.ForwardBackward(batch).Total, lossCpu = onCpu.ForwardBackward(batch).Total;
            Record("train step loss after vs CPU", $"{shape}, {stepCpu.CrossEntropy:F4} -> {lossCpu:F4} on the CPU", Math.Abs(lossDevice - lossCpu) / lossCpu, Tolerance);
        }

        /// <summary>Whether an error replaces the worst so far; NaN (a missing or broken tensor) is the worst of all and stays.</summary>
        private static bool IsWorse(double error, double worst) => !double.IsNaN(worst) && (double.IsNaN(error) || error > worst);

        /// <summary>The fixture's training batch: seq100.json's input ids with seq100_train.json's labels, and its loss.</summary>
        internal static TrainingExample[] FixtureTrainingBatch(string dir, out double expectedLoss)
        {
            using var seq = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "seq100.json")));
            using var train = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "seq100_train.json")));
            static int[][] Rows(JsonElement e) => [.. e.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray())];
            var ids = Rows(seq.RootElement.GetProperty("input_ids"));
            var labels = Rows(train.RootElement.GetProperty("labels"));
            if (ids.Length != labels.Length) throw new InvalidDataException($"{dir}: seq100.json has {ids.Length} rows, seq100_train.json {labels.Length}");
            expectedLoss = train.RootElement.GetProperty("loss").GetDouble();
            return [.. ids.Select((row, r) => new TrainingExample(row, labels[r]))];
        }
    }
}
