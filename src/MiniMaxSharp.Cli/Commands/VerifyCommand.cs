using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax verify --backend cuda</c>: every op of a backend against the CPU reference backend on
/// random inputs and awkward shapes, then the tiny-hybrid fixture end to end. Prints one table row per
/// check (op, shape, relative error ‖Δ‖/‖ref‖, pass) and exits non-zero when any check fails.
/// </summary>
internal static partial class VerifyCommand
{
    /// <summary>bf16 activations: the brief's bound on ‖Δ‖/‖ref‖.</summary>
    private const double Tolerance = 1e-2;

    public static Command Create()
    {
        var backend = new Option<string>("--backend") { Description = "Backend to check against the CPU reference", DefaultValueFactory = _ => "cuda" };
        var fixtures = new Option<DirectoryInfo?>("--fixtures") { Description = "Folder holding tiny-hybrid/ (model, seq100.json, seq100_logits.npy) for the end-to-end check" };
        var seed = new Option<int>("--seed") { Description = "Seed of the random inputs", DefaultValueFactory = _ => 1234 };
        var cmd = new Command("verify", "Check every op of a backend against the CPU backend, then the fixture model end to end") { backend, fixtures, seed };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            using var device = BackendFactory.Create(r.GetValue(backend)!, 0);
            using var cpu = new CpuBackend();
            var v = new Verifier(device, cpu, r.GetValue(seed));
            if (device is CudaBackend cuda) Console.WriteLine($"device: {cuda.DeviceDescription}\nlibraries: {cuda.LibrarySources}");
            var clock = Stopwatch.StartNew();
            v.RunOps();
            v.RunDecodeKernelChecks();
            v.RunCudnnAttentionChecks();
            v.RunLightningPrefillChecks();
            v.RunAttentionGradientOps();
            v.RunGradientOps();
            string? fixtureModel = r.GetValue(fixtures) is { } dir ? Path.Combine(dir.FullName, "tiny-hybrid") : null;
            if (fixtureModel is not null) v.RunFixture(fixtureModel);
            v.RunGraphChecks(fixtureModel);
            v.RunGreedyDecodeChecks();
            if (fixtureModel is not null) v.RunGradientFixture(fixtureModel);
            v.RunBf16ProductChecks(fixtureModel);
            v.PrintTable(Console.Out);
            Console.WriteLine($"{v.Failures} of {v.Rows.Count} checks failed ({clock.Elapsed.TotalSeconds:F1} s)");
            return v.Failures == 0 ? 0 : 2;
        }));
        return cmd;
    }

    internal sealed record Row(string Op, string Shape, double Error, double Bound)
    {
        public bool Pass => Error <= Bound;   // NaN fails
    }

    internal sealed partial class Verifier(IComputeBackend device, IComputeBackend cpu, int seed)
    {
        private readonly Random _rng = new(seed);
        public List<Row> Rows { get; } = [];
        public int Failures => Rows.Count(r => !r.Pass);

        public void PrintTable(TextWriter w)
        {
            int opW = Math.Max(2, Rows.Max(r => r.Op.Length)), shapeW = Math.Max(5, Rows.Max(r => r.Shape.Length));
            w.WriteLine($"| {"op".PadRight(opW)} | {"shape".PadRight(shapeW)} | rel. error | pass |");
            w.WriteLine($"| {new string('-', opW)} | {new string('-', shapeW)} | ---------- | ---- |");
            foreach (var r in Rows)
                w.WriteLine($"| {r.Op.PadRight(opW)} | {r.Shape.PadRight(shapeW)} | {r.Error,10:E2} | {(r.Pass ? "yes" : "NO"),-4} |");
        }

        private void Record(string op, string shape, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double? bound = null) =>
            Record(op, shape, RelativeError(actual, expected), bound ?? _checks.Bound);

        private void Record(string op, string shape, double error, double bound)
        {
            var row = new Row(_checks.OpPrefix + op, shape, error, bound);
            Rows.Add(row);
            Console.Error.WriteLine($"  {op} {shape}: {row.Error:E2}{(row.Pass ? "" : "  FAIL")}");
        }

        internal static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
        {
            if (actual.Length != expected.Length) return double.NaN;
            double num = 0, den = 0;
            for (int i = 0; i < actual.Length; i++)
            {
                double d = (double)actual[i] - expected[i];
                num += d * d;
                den += (double)expected[i] * expected[i];
            }
            return den == 0 ? (num == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(num / den);
        }

        // ---- inputs (rounded to bf16, so both backends see identical values) ----

        private float[] Random(long n, float scale = 1f)
        {
            var r = new float[n];
            for (long i = 0; i < n; i++)
            {
                // Sum of uniforms: roughly normal, bounded.
                float u = (float)(_rng.NextDouble() + _rng.NextDouble() + _rng.NextDouble() - 1.5) * 2f * scale;
                r[i] = BFloat16Conversions.BFloat16ToSingle(BFloat16Conversions.SingleToBFloat16(u));
            }
            return r;
        }

        private (DeviceTensor Device, DeviceTensor Cpu) Pair(float[] values, DType deviceType, params int[] shape)
        {
            var d = device.Allocate(deviceType, shape);
            var c = cpu.Allocate(DType.F32, shape);
            device.Upload(values, d);
            cpu.Upload(values, c);
            return (d, c);
        }

        private (DeviceTensor Device, DeviceTensor Cpu) Activation(float[] values, params int[] shape) => Pair(values, _checks.ActivationType ?? device.ActivationType, shape);

        private (DeviceTensor Device, DeviceTensor Cpu) Weight(float[] values, params long[] shape) => Weight(_checks.ActivationType ?? DType.BF16, values, shape);

        private (DeviceTensor Device, DeviceTensor Cpu) Weight(DType stored, float[] values, params long[] shape)
        {
            var host = HostTensor.FromFloats(values, shape, stored);
            return (device.LoadWeight(host), cpu.LoadWeight(host));
        }

        private static float[] Read(IComputeBackend b, DeviceTensor t)
        {
            var r = new float[t.ElementCount];
            b.Download(t, r);
            return r;
        }

        private void Compare(string op, string shape, DeviceTensor onDevice, DeviceTensor onCpu, double? bound = null) =>
            Record(op, shape, Read(device, onDevice), Read(cpu, onCpu), bound);

        private static void Dispose(params (DeviceTensor A, DeviceTensor B)[] pairs)
        {
            foreach (var (a, b) in pairs)
            {
                a.Dispose();
                b.Dispose();
            }
        }

        // ---- op checks ----

        public void RunOps()
        {
            Embedding(1000, 512, 37);
            RmsNorm(67, 1024);
            RmsNorm(1, 6144);
            ScaleAdd(67, 1000);
            SigmoidGate(33, 777);
            MatMul(67, 512, 300, DType.BF16, DType.BF16);
            MatMul(5, 512, 1000, DType.BF16, DType.F32);
            MatMul(67, 512, 300, DType.F32, DType.BF16);
            MatMul(5, 512, 1000, DType.F32, DType.F32);
            MatMul(9, 64, 48, DType.F16, DType.BF16);
            MatMul(1, 2048, 6144, DType.BF16, DType.BF16);   // decode rows: matvec_bf16
            MatMul(4, 512, 1000, DType.BF16, DType.F32);
            MatMul(3, 200, 77, DType.BF16, DType.BF16);
            MatMul(2, 100, 50, DType.BF16, DType.BF16);       // in not a multiple of 8: cuBLAS
            CopyAndGather(40, 96);
            Rope(4, 128, 64, 1e7, [5, 130, 1], [0, 17, 1000]);
            Rope(2, 16, 16, 1e4, [100], [0]);
            Lightning(4, 64, [300, 1, 77], [0, 5, 40]);
            Lightning(2, 128, [600], [0]);
            Lightning(4, 128, [300, 1000, 77], [0, 40, 5]);
            Lightning(48, 128, [40, 40, 40], [0, 0, 7]);
            Lightning(4, 128, [500, 1, 3], [0, 7, 9]);
            Lightning(2, 128, [1, 1], [0, 9]);
            Lightning(4, 16, [1, 1, 1], [3, 9, 250]);
            Softmax(8, 2, 128, [150, 1, 40], [0, 63, 10]);
            Softmax(4, 4, 64, [1, 1], [0, 200]);
            Softmax(16, 4, 128, [300, 200], [0, 130]);
            Softmax(8, 8, 128, [1, 1], [300, 64]);
            Softmax(8, 2, 128, [1, 1, 1], [5000, 17, 2047]);
            Softmax(4, 2, 16, [100, 100], [0, 0]);
            Moe(50, 256, 8, 384, 2);     // up to 64 tokens (beyond 16 pairs): padded groups of T rows per expert
            Moe(1, 64, 4, 96, 2);
            Moe(301, 128, 32, 64, 2);
            Moe(40, 64, 4, 96, 2, DType.F32);
            Moe(9, 64, 4, 96, 2);        // 18 pairs: the fewest that take the padded groups
            Moe(64, 2048, 8, 256, 2);    // bench-1b's batch-64 decode step: the most tokens that do
            Moe(65, 64, 4, 96, 2);       // one more token: the exact grouping
            Moe(1500, 64, 32, 32, 2);    // 3000 pairs: the grouping passes over two chunks
            Moe(5001, 64, 8, 32, 2);     // 10002 pairs: five chunks, the last one partial
        }

        private void Embedding(int vocab, int hidden, int tokens)
        {
            var table = Weight(Random((long)vocab * hidden), vocab, hidden);
            var ids = Enumerable.Range(0, tokens).Select(_ => _rng.Next(vocab)).ToArray();
            ids[0] = vocab - 1;
            var o = Activation(new float[tokens * hidden], tokens, hidden);
            device.Embedding(table.Device, ids, o.Device);
            cpu.Embedding(table.Cpu, ids, o.Cpu);
            Compare("Embedding", $"[{vocab},{hidden}] x {tokens} ids", o.Device, o.Cpu);
            Dispose(table, o);
        }

        private void RmsNorm(int rows, int cols)
        {
            var x = Activation(Random((long)rows * cols, 3f), rows, cols);
            var w = Weight(Random(cols), cols);
            var o = Activation(new float[rows * cols], rows, cols);
            device.RmsNorm(x.Device, w.Device, 1e-5f, o.Device);
            cpu.RmsNorm(x.Cpu, w.Cpu, 1e-5f, o.Cpu);
            Compare("RmsNorm", $"[{rows},{cols}]", o.Device, o.Cpu);
            device.RmsNorm(x.Device, w.Device, 1e-6f, x.Device);   // in place
            cpu.RmsNorm(x.Cpu, w.Cpu, 1e-6f, x.Cpu);
            Compare("RmsNorm in place", $"[{rows},{cols}]", x.Device, x.Cpu);
            Dispose(x, w, o);
        }

        private void ScaleAdd(int rows, int cols)
        {
            var a = Activation(Random((long)rows * cols), rows, cols);
            var b = Activation(Random((long)rows * cols), rows, cols);
            device.ScaleAdd(a.Device, 3.5f, b.Device, 1f, a.Device);
            cpu.ScaleAdd(a.Cpu, 3.5f, b.Cpu, 1f, a.Cpu);
            Compare("ScaleAdd", $"[{rows},{cols}]", a.Device, a.Cpu);
            Dispose(a, b);
        }

        private void SigmoidGate(int rows, int cols)
        {
            var g = Activation(Random((long)rows * cols, 4f), rows, cols);
            var x = Activation(Random((long)rows * cols), rows, cols);
            device.SigmoidGate(g.Device, x.Device, x.Device);
            cpu.SigmoidGate(g.Cpu, x.Cpu, x.Cpu);
            Compare("SigmoidGate", $"[{rows},{cols}]", x.Device, x.Cpu);
            Dispose(g, x);
        }

        private void MatMul(int rows, int k, int outFeatures, DType weightType, DType outType)
        {
            var x = Activation(Random((long)rows * k), rows, k);
            var w = Weight(weightType, Random((long)outFeatures * k, 0.1f), outFeatures, k);
            var o = Pair(new float[rows * outFeatures], outType == DType.F32 ? DType.F32 : device.ActivationType, rows, outFeatures);
            device.MatMul(x.Device, w.Device, o.Device);
            cpu.MatMul(x.Cpu, w.Cpu, o.Cpu);
            Compare("MatMul", $"[{rows},{k}] x {weightType}[{outFeatures},{k}]ᵀ -> {outType}", o.Device, o.Cpu);
            Dispose(x, w, o);
        }

        private void CopyAndGather(int rows, int cols)
        {
            var s = Activation(Random((long)rows * cols), rows, cols);
            var d = Activation(Random((long)rows * cols), rows, cols);
            device.CopyRows(s.Device, d.Device, rows / 2 + 1);
            cpu.CopyRows(s.Cpu, d.Cpu, rows / 2 + 1);
            Compare("CopyRows", $"{rows / 2 + 1} of [{rows},{cols}]", d.Device, d.Cpu);
            int[] idx = [rows - 1, 0, 7, 7, 3];
            var g = Activation(new float[idx.Length * cols], idx.Length, cols);
            device.GatherRows(s.Device, idx, g.Device);
            cpu.GatherRows(s.Cpu, idx, g.Cpu);
            Compare("GatherRows", $"{idx.Length} of [{rows},{cols}]", g.Device, g.Cpu);
            Dispose(s, d, g);
        }

        private static string Seqs(int[] counts, int[] starts) =>
            string.Join(" ", counts.Select((c, i) => $"{c}@{starts[i]}"));

        private void Rope(int heads, int headDim, int rotary, double theta, int[] counts, int[] starts)
        {
            var layout = BatchLayout.Create(counts, starts);
            int T = layout.TotalTokens, w = heads * headDim;
            var x = Activation(Random((long)T * w), T, w);
            device.Rope(x.Device, layout, headDim, rotary, theta);
            cpu.Rope(x.Cpu, layout, headDim, rotary, theta);
            Compare("Rope", $"{heads}x{headDim} rot {rotary}, seqs {Seqs(counts, starts)}", x.Device, x.Cpu);
            Dispose(x);
        }

        private void Lightning(int heads, int d, int[] counts, int[] starts)
        {
            var layout = BatchLayout.Create(counts, starts);
            int T = layout.TotalTokens;
            var qkv = Activation(Random((long)T * 3 * heads * d, 1.5f), T, 3 * heads * d);
            var o = Activation(new float[T * heads * d], T, heads * d);
            // Sequences that already hold tokens carry a state; fresh ones start at zero.
            var states = counts.Select((_, i) => Pair(starts[i] > 0 ? Random((long)heads * d * d, 0.5f) : new float[heads * d * d], DType.F32, heads, d * d)).ToArray();
            float[] slopes = LightningDecay.Slopes(heads, 3, 8);
            device.LightningAttention(qkv.Device, layout, states.Select(s => s.Device).ToArray(), slopes, d, 256, o.Device);
            cpu.LightningAttention(qkv.Cpu, layout, states.Select(s => s.Cpu).ToArray(), slopes, d, 256, o.Cpu);
            string shape = $"H {heads}, d {d}, seqs {Seqs(counts, starts)}";
            Compare("Lightning out", shape, o.Device, o.Cpu);
            Record("Lightning state", shape,
                states.SelectMany(s => Read(device, s.Device)).ToArray(), states.SelectMany(s => Read(cpu, s.Cpu)).ToArray());
            Dispose([qkv, o, .. states]);
        }

        private void Softmax(int heads, int kvHeads, int d, int[] counts, int[] starts)
        {
            var layout = BatchLayout.Create(counts, starts);
            var shape = new AttentionShape(heads, kvHeads, d);
            int T = layout.TotalTokens;
            var q = Activation(Random((long)T * shape.Width), T, shape.Width);
            var k = Activation(Random((long)T * shape.KvWidth), T, shape.KvWidth);
            var v = Activation(Random((long)T * shape.KvWidth), T, shape.KvWidth);
            var o = Activation(new float[T * shape.Width], T, shape.Width);
            // Caches hold earlier positions already (random keys and values below each start).
            var caches = layout.Sequences.Select(s =>
            {
                int capacity = s.EndPosition + 3;
                var kc = Random((long)capacity * shape.KvWidth);
                var vc = Random((long)capacity * shape.KvWidth);
                return (Keys: Activation(kc, capacity, shape.KvWidth), Values: Activation(vc, capacity, shape.KvWidth));
            }).ToArray();
            device.SoftmaxAttention(q.Device, k.Device, v.Device, layout, caches.Select(c => new KvCache(c.Keys.Device, c.Values.Device)).ToArray(), shape, o.Device);
            cpu.SoftmaxAttention(q.Cpu, k.Cpu, v.Cpu, layout, caches.Select(c => new KvCache(c.Keys.Cpu, c.Values.Cpu)).ToArray(), shape, o.Cpu);
            string desc = $"H {heads}/KV {kvHeads}, d {d}, seqs {Seqs(counts, starts)}";
            Compare("SoftmaxAttention out", desc, o.Device, o.Cpu);
            Record("SoftmaxAttention cache", desc,
                caches.SelectMany(c => Read(device, c.Keys.Device).Concat(Read(device, c.Values.Device))).ToArray(),
                caches.SelectMany(c => Read(cpu, c.Keys.Cpu).Concat(Read(cpu, c.Values.Cpu))).ToArray());
            Dispose([q, k, v, o, .. caches.Select(c => c.Keys), .. caches.Select(c => c.Values)]);
        }

        /// <summary>The smallest gap, over the tokens, between the k-th and the (k+1)-th router logit on the CPU (the
        /// router's product of the normed rows): where it is within bf16 rounding of the device's inputs, the two
        /// backends may choose different experts, which shows as an error of about the weight of the choice that flips.</summary>
        internal static double RoutingMargin(float[] x, float[] router, int tokens, int hidden, int experts, int topK)
        {
            if (topK >= experts) return double.PositiveInfinity;
            double margin = double.PositiveInfinity;
            var logits = new double[experts];
            for (int t = 0; t < tokens; t++)
            {
                for (int e = 0; e < experts; e++)
                {
                    double sum = 0;
                    for (int i = 0; i < hidden; i++) sum += (double)x[(long)t * hidden + i] * router[(long)e * hidden + i];
                    logits[e] = sum;
                }
                Array.Sort(logits);
                margin = Math.Min(margin, logits[experts - topK] - logits[experts - topK - 1]);
            }
            return margin;
        }

        private void Moe(int tokens, int hidden, int experts, int inter, int topK, DType weightType = DType.BF16)
        {
            var x = Activation(Random((long)tokens * hidden), tokens, hidden);
            var router = Weight(weightType, Random((long)experts * hidden, 0.2f), experts, hidden);
            var weights = Enumerable.Range(0, experts).Select(_ => (
                W1: Weight(weightType, Random((long)inter * hidden, 0.1f), inter, hidden),
                W2: Weight(weightType, Random((long)hidden * inter, 0.1f), hidden, inter),
                W3: Weight(weightType, Random((long)inter * hidden, 0.1f), inter, hidden))).ToArray();
            var o = Activation(new float[tokens * hidden], tokens, hidden);
            device.MixtureOfExperts(x.Device, router.Device, weights.Select(e => new ExpertWeights(e.W1.Device, e.W2.Device, e.W3.Device)).ToArray(), topK, o.Device);
            cpu.MixtureOfExperts(x.Cpu, router.Cpu, weights.Select(e => new ExpertWeights(e.W1.Cpu, e.W2.Cpu, e.W3.Cpu)).ToArray(), topK, o.Cpu);
            Compare("MixtureOfExperts", $"T {tokens}, hidden {hidden}, E {experts}, I {inter}, top-{topK}, {weightType}, "
                + $"top-k margin {RoutingMargin(Read(cpu, x.Cpu), Read(cpu, router.Cpu), tokens, hidden, experts, topK):E1}", o.Device, o.Cpu);
            Dispose([x, router, o, .. weights.SelectMany(e => new[] { e.W1, e.W2, e.W3 })]);
        }

        // ---- attention backward ops (float32 gradients, as in training) ----

        /// <summary>Float32 paths: the bound on ‖Δ‖/‖ref‖ of the attention backward ops.</summary>
        private const double GradientTolerance = 1e-4;

        /// <summary>
        /// The attention backward ops against the CPU backend. Called on CudaBackend directly (the backend's
        /// IGradientBackend declaration lands separately); other device backends skip these rows.
        /// </summary>
        public void RunAttentionGradientOps()
        {
            if (device is not CudaBackend)
            {
                Console.Error.WriteLine($"  attention gradient checks skipped: backend '{device.Name}' is not CUDA");
                return;
            }
            LightningBackward(4, 16, [1, 37, 130], layer: 3, DType.F32);
            LightningBackward(2, 128, [130, 1, 37], layer: 0, DType.F32);
            LightningBackward(3, 32, [300], layer: 6, DType.F32);            // slopes near zero: long memory
            LightningBackward(2, 40, [17, 33], layer: 2, DType.F32);          // channels not a multiple of 32
            LightningBackward(2, 128, [37, 70], layer: 3, DType.BF16);       // bf16 inputs, float32 gradient
            SoftmaxBackward(4, 2, 32, [1, 45, 70], DType.F32);
            SoftmaxBackward(4, 2, 128, [45, 1, 70], DType.F32);
            SoftmaxBackward(6, 1, 16, [33], DType.F32);
            SoftmaxBackward(3, 1, 18, [40, 2], DType.F32);                   // rows not 16-byte aligned
            SoftmaxBackward(4, 4, 64, [70, 45], DType.BF16);
            RopeBackward(4, 64, 32, 1e7, [5, 130, 1], [0, 17, 1000]);
            RopeBackward(2, 16, 16, 1e4, [45], [0]);
        }

        private CudaBackend DeviceGradients => (CudaBackend)device;
        private IGradientBackend CpuGradients => (IGradientBackend)cpu;

        private void LightningBackward(int heads, int d, int[] counts, int layer, DType inputType)
        {
            var layout = BatchLayout.Create(counts, new int[counts.Length]);
            int T = layout.TotalTokens;
            var qkv = Pair(Random((long)T * 3 * heads * d, 1.5f), inputType, T, 3 * heads * d);
            var dOut = Pair(Random((long)T * heads * d), inputType, T, heads * d);
            var dQkv = Pair(new float[T * 3 * heads * d], DType.F32, T, 3 * heads * d);
            float[] slopes = LightningDecay.Slopes(heads, layer, 8);
            DeviceGradients.LightningAttentionBackward(qkv.Device, layout, slopes, d, 64, dOut.Device, dQkv.Device);
            CpuGradients.LightningAttentionBackward(qkv.Cpu, layout, slopes, d, 64, dOut.Cpu, dQkv.Cpu);
            Record("LightningAttentionBackward", $"H {heads}, d {d}, layer {layer}/8, {inputType} in, seqs {string.Join(" ", counts)}",
                Read(device, dQkv.Device), Read(cpu, dQkv.Cpu), GradientTolerance);
            Dispose(qkv, dOut, dQkv);
        }

        private void SoftmaxBackward(int heads, int kvHeads, int d, int[] counts, DType inputType)
        {
            var layout = BatchLayout.Create(counts, new int[counts.Length]);
            var shape = new AttentionShape(heads, kvHeads, d);
            int T = layout.TotalTokens;
            var q = Pair(Random((long)T * shape.Width, 2f), inputType, T, shape.Width);
            var k = Pair(Random((long)T * shape.KvWidth, 2f), inputType, T, shape.KvWidth);
            var v = Pair(Random((long)T * shape.KvWidth), inputType, T, shape.KvWidth);
            var dOut = Pair(Random((long)T * shape.Width), inputType, T, shape.Width);
            var dq = Pair(new float[T * shape.Width], DType.F32, T, shape.Width);
            var dk = Pair(new float[T * shape.KvWidth], DType.F32, T, shape.KvWidth);
            var dv = Pair(new float[T * shape.KvWidth], DType.F32, T, shape.KvWidth);
            DeviceGradients.SoftmaxAttentionBackward(q.Device, k.Device, v.Device, layout, shape, dOut.Device, dq.Device, dk.Device, dv.Device);
            CpuGradients.SoftmaxAttentionBackward(q.Cpu, k.Cpu, v.Cpu, layout, shape, dOut.Cpu, dq.Cpu, dk.Cpu, dv.Cpu);
            string desc = $"H {heads}/KV {kvHeads}, d {d}, {inputType} in, seqs {string.Join(" ", counts)}";
            Record("SoftmaxAttentionBackward dQ", desc, Read(device, dq.Device), Read(cpu, dq.Cpu), GradientTolerance);
            Record("SoftmaxAttentionBackward dK", desc, Read(device, dk.Device), Read(cpu, dk.Cpu), GradientTolerance);
            Record("SoftmaxAttentionBackward dV", desc, Read(device, dv.Device), Read(cpu, dv.Cpu), GradientTolerance);
            Dispose(q, k, v, dOut, dq, dk, dv);
        }

        private void RopeBackward(int heads, int headDim, int rotary, double theta, int[] counts, int[] starts)
        {
            var layout = BatchLayout.Create(counts, starts);
            int T = layout.TotalTokens, w = heads * headDim;
            float[] values = Random((long)T * w);
            var x = Pair(values, DType.F32, T, w);
            DeviceGradients.RopeBackward(x.Device, layout, headDim, rotary, theta);
            CpuGradients.RopeBackward(x.Cpu, layout, headDim, rotary, theta);
            string desc = $"{heads}x{headDim} rot {rotary}, seqs {Seqs(counts, starts)}";
            Record("RopeBackward", desc, Read(device, x.Device), Read(cpu, x.Cpu), GradientTolerance);
            // Backward after forward rotates back to the input (up to float32 rounding).
            device.Rope(x.Device, layout, headDim, rotary, theta);
            Record("Rope after RopeBackward (identity)", desc, Read(device, x.Device), values, GradientTolerance);
            Dispose(x);
        }

        // ---- the fixture model end to end ----

        public void RunFixture(string dir)
        {
            int[][] ids = FixtureIds(dir);
            var expected = Npy.Read(Path.Combine(dir, "seq100_logits.npy"));
            int T = ids[0].Length;
            using var onDevice = ModelLoader.Load(dir, device);
            using var onCpu = ModelLoader.Load(dir, cpu);
            string shape = $"tiny-hybrid {ids.Length}x{T}";
            float[] cpuLogits = ForwardCommand.Run(onCpu, ids, T, T);
            float[] deviceLogits = ForwardCommand.Run(onDevice, ids, T, T);
            Record("model logits vs CPU", shape, deviceLogits, cpuLogits);
            Record("model logits vs fixture", shape, deviceLogits, expected.Data);
            // Chunked prefill (chunks not a multiple of the block size) and one-token decode steps.
            float[] decode = ForwardCommand.Run(onDevice, ids, 40, 17);
            Record("model prefill 17-chunks + decode vs CPU", shape, decode, cpuLogits);
        }

        private static int[][] FixtureIds(string dir)
        {
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"fixture folder not found: {dir}");
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "seq100.json")));
            return doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        }

        // ---- decode steps as recorded graphs ----

        /// <summary>Graphs are exact: the same kernels with the same arguments, so only float noise from a
        /// changed order of operations could differ, and there is none; the bound leaves room for that alone.</summary>
        private const double GraphTolerance = 1e-5;

        /// <summary>
        /// Decode steps with step graphs on (a warm-up step, a capture, then replays) against the same steps
        /// with graphs off, on the same device: the fixture model (float32 weights: cuBLAS products inside the
        /// graph) and random bf16 models (matvec products; head_dim 16 and 128, one and three sequences).
        /// A row fails when the logits differ by more than 1e-5 or when no step was replayed.
        /// </summary>
        public void RunGraphChecks(string? fixtureDir)
        {
            ScaleAddRmsNorm(67, 1000);
            ScaleAddRmsNorm(1, 2048);
            if (device is not IStepGraphs graphs) return;
            bool wasEnabled = graphs.StepGraphsEnabled;
            try
            {
                if (fixtureDir is not null)
                {
                    int[][] ids = FixtureIds(fixtureDir);
                    GraphDecode("tiny-hybrid f32", ModelLoader.Load(fixtureDir, device), ids, ids[0].Length - 40);
                }
                var tiny = BuiltInConfigs.Get("tiny");
                GraphDecode("random tiny bf16", RandomModel(tiny), RandomIds(3, 56, tiny.VocabSize), 16);
                var wide = tiny with { HiddenSize = 256, NumHeads = 4, NumKvHeads = 2, HeadDim = 128, RotaryDim = 64, IntermediateSize = 256 };
                GraphDecode("random bf16 head_dim 128", RandomModel(wide), RandomIds(1, 72, wide.VocabSize), 30);
            }
            finally
            {
                graphs.StepGraphsEnabled = wasEnabled;
            }
        }

        /// <summary>The fused residual add and norm the model runs twice per layer (float32 residual, bf16 norm
        /// output aliasing the first input, as in the model).</summary>
        private void ScaleAddRmsNorm(int rows, int cols)
        {
            var a = Activation(Random((long)rows * cols), rows, cols);
            var b = Pair(Random((long)rows * cols, 2f), device.ResidualType, rows, cols);
            var residual = Pair(new float[rows * cols], device.ResidualType, rows, cols);
            var w = Weight(Random(cols), cols);
            device.ScaleAddRmsNorm(a.Device, 3.5f, b.Device, 1f, residual.Device, w.Device, 1e-5f, a.Device);
            cpu.ScaleAddRmsNorm(a.Cpu, 3.5f, b.Cpu, 1f, residual.Cpu, w.Cpu, 1e-5f, a.Cpu);
            Compare("ScaleAddRmsNorm residual", $"[{rows},{cols}]", residual.Device, residual.Cpu);
            Compare("ScaleAddRmsNorm out", $"[{rows},{cols}]", a.Device, a.Cpu);
            Dispose(a, b, residual, w);
        }

        private MiniMaxModel RandomModel(ModelConfig c) =>
            new(c, WeightLoader.Load(new DictionaryTensorSource(RandomWeights.Create(c, seed: 7, DType.BF16)), c, device), device);

        private int[][] RandomIds(int sequences, int tokens, int vocab) =>
            Enumerable.Range(0, sequences).Select(_ => Enumerable.Range(0, tokens).Select(_ => _rng.Next(vocab)).ToArray()).ToArray();

        private void GraphDecode(string name, MiniMaxModel model, int[][] ids, int prefill)
        {
            using var m = model;
            var graphs = (IStepGraphs)device;
            graphs.StepGraphsEnabled = false;
            float[] eager = ForwardCommand.Run(m, ids, prefill, prefill);
            graphs.StepGraphsEnabled = true;
            var before = graphs.StepGraphCounters;
            float[] graphed = ForwardCommand.Run(m, ids, prefill, prefill);
            var steps = graphs.StepGraphCounters.Since(before);
            string shape = $"{name}, {ids.Length} seq, {ids[0].Length - prefill} decode steps";
            Record("decode graphs vs eager", shape, graphed, eager, GraphTolerance);
            // Pass only when graphs actually ran: error 0 with replays, infinite without.
            var row = new Row("decode graph replays", $"{shape}: {steps}", steps.Replayed > 0 ? 0 : double.PositiveInfinity, 0);
            Rows.Add(row);
            Console.Error.WriteLine($"  {row.Op} {row.Shape}{(row.Pass ? "" : "  FAIL")}");
        }
    }
}
