using System.Numerics.Tensors;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Cli.Commands;

// Greedy token choice on the device (IGreedyDecoding): the argmax op against the CPU on rows full of ties, signed
// zeros and NaN; the embedding of ids read on the device; and pipelined greedy decodes of random bf16 models against
// the host-logits path on the same device, token for token. The error of these rows is a count of differences
// (ids, values or tokens), so the bound is 0.
internal static partial class VerifyCommand
{
    internal sealed partial class Verifier
    {
        public void RunGreedyDecodeChecks()
        {
            if (device is not IGreedyDecoding) return;
            ArgMax(1, 32000, 32000, ties: false, nan: false);   // bench-1b's vocabulary: float4 loads
            ArgMax(1, 32768, 32768, ties: true, nan: false);
            ArgMax(3, 32771, 32771, ties: true, nan: false);    // odd length: scalar loads
            ArgMax(5, 97, 97, ties: true, nan: false);          // fewer columns than threads
            ArgMax(4, 1025, 1025, ties: true, nan: true);       // the first NaN wins
            ArgMax(2, 1, 1, ties: false, nan: false);
            ArgMax(3, 32000, 31996, ties: true, nan: false);    // a tokenizer smaller than the vocabulary: float4 loads
            ArgMax(3, 1000, 999, ties: true, nan: true);        // the same with scalar loads
            EmbeddingFromDevice(1000, 512, [0, 999, 17, 5, 5]);
            var tiny = BuiltInConfigs.Get("tiny");
            PipelinedDecode("random tiny bf16", tiny, sequences: 3, prompt: 21, steps: 24);
            PipelinedDecode("random tiny bf16", tiny, sequences: 12, prompt: 9, steps: 16);   // 24 pairs: the padded MoE groups, in graphs
            var wide = tiny with { HiddenSize = 256, NumHeads = 4, NumKvHeads = 2, HeadDim = 128, RotaryDim = 64, IntermediateSize = 256 };
            PipelinedDecode("random bf16 head_dim 128", wide, sequences: 1, prompt: 40, steps: 40);   // the KV cache grows at 64
        }

        /// <summary>The choice among the first <paramref name="columns"/> of each row, against IndexOfMax on the host.</summary>
        private void ArgMax(int rows, int cols, int columns, bool ties, bool nan)
        {
            var values = new float[(long)rows * cols];
            for (long i = 0; i < values.Length; i++)
                values[i] = ties ? _rng.Next(10) switch { 0 => 0f, 1 => -0f, _ => _rng.Next(-3, 4) * 0.25f } : (float)(_rng.NextDouble() * 8 - 4);
            if (nan)
                for (int r = 0; r < rows; r++)
                    if (r % 2 == 1) values[(long)r * cols + _rng.Next(cols)] = values[(long)r * cols + _rng.Next(cols)] = float.NaN;
            var greedy = (IGreedyDecoding)device;
            using var logits = device.Allocate(DType.F32, rows, cols);
            using var ids = device.Allocate(DType.I32, rows, 1);
            device.Upload(values, logits);
            greedy.ArgMaxRows(logits, columns, ids);
            var chosen = new int[rows];
            greedy.StartIdsDownload(ids, rows);
            greedy.FinishIdsDownload(chosen);
            int wrong = 0;
            for (int r = 0; r < rows; r++)
                if (chosen[r] != TensorPrimitives.IndexOfMax(values.AsSpan(r * cols, columns))) wrong++;
            Record("ArgMaxRows (wrong ids)", $"[{rows},{cols}]{(columns < cols ? $" first {columns}" : "")}{(ties ? " ties, ±0" : "")}{(nan ? ", NaN" : "")}", wrong, 0);
        }

        /// <summary>Ids read on the device against the host-id embedding of the CPU; an id past the table gives NaN.</summary>
        private void EmbeddingFromDevice(int vocab, int hidden, int[] tokenIds)
        {
            var table = Weight(Random((long)vocab * hidden), vocab, hidden);
            var greedy = (IGreedyDecoding)device;
            using var ids = device.Allocate(DType.I32, tokenIds.Length + 1, 1);
            greedy.UploadIds([.. tokenIds, vocab], ids);
            var output = Pair(new float[(tokenIds.Length + 1) * hidden], device.ActivationType, tokenIds.Length + 1, hidden);
            greedy.EmbeddingFromDevice(table.Device, ids, output.Device);
            using var cpuRows = output.Cpu.RowSlice(0, tokenIds.Length);
            cpu.Embedding(table.Cpu, tokenIds, cpuRows);
            float[] got = Read(device, output.Device), expected = Read(cpu, output.Cpu);
            int differ = 0, notNaN = 0;
            for (int i = 0; i < tokenIds.Length * hidden; i++)
                if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(expected[i])) differ++;
            for (int i = tokenIds.Length * hidden; i < got.Length; i++)
                if (!float.IsNaN(got[i])) notNaN++;
            Record("EmbeddingFromDevice (values differing)", $"[{vocab},{hidden}] x {tokenIds.Length} ids", differ, 0);
            Record("EmbeddingFromDevice (id past the table: values not NaN)", $"[{vocab},{hidden}] id {vocab}", notNaN, 0);
            Dispose(table, output);
        }

        /// <summary>
        /// Greedy decode of a random bf16 model three ways on the device: the host-logits path (logits downloaded,
        /// argmax on the host), the pipelined device path with step graphs, and the pipelined path with graphs off.
        /// Rows count differing tokens (bound 0); one more row fails unless the pipelined graph steps were replayed and
        /// some launched from host code run during the previous step.
        /// </summary>
        private void PipelinedDecode(string name, ModelConfig c, int sequences, int prompt, int steps)
        {
            using var m = RandomModel(c);
            int[][] prompts = RandomIds(sequences, prompt, c.VocabSize);
            int[][] host = HostLogitsDecode(m, prompts, steps);
            var graphs = device as IStepGraphs;
            bool wasEnabled = graphs?.StepGraphsEnabled ?? false;
            try
            {
                var before = graphs?.StepGraphCounters ?? default;
                int[][] piped = PipelinedDecode(m, prompts, steps, out int held);
                var counters = graphs is null ? default : graphs.StepGraphCounters.Since(before);
                string shape = $"{name}, {sequences} seq, {steps} steps";
                Record("greedy pipeline vs host logits (tokens differing)", shape, Differences(piped, host), 0);
                bool ran = graphs is null || (counters.Replayed > 0 && held > 0);
                Record("greedy pipeline graph replays", $"{shape}: {counters}; {held} launched from held host code", ran ? 0 : double.PositiveInfinity, 0);
                if (graphs is not null)
                {
                    graphs.StepGraphsEnabled = false;
                    int[][] eager = PipelinedDecode(m, prompts, steps, out _);
                    Record("greedy pipeline, graphs off, vs host logits (tokens differing)", shape, Differences(eager, host), 0);
                }
            }
            finally
            {
                if (graphs is not null) graphs.StepGraphsEnabled = wasEnabled;
            }
        }

        private static int[][] HostLogitsDecode(MiniMaxModel m, int[][] prompts, int steps) =>
            WithSequences(m, prompts.Length, prompts[0].Length + steps + 1, seqs =>
            {
                var got = prompts.Select(_ => new List<int>()).ToArray();
                float[] logits = m.Forward(seqs, prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray(), LogitsSelection.LastPerSequence);
                for (int step = 0; ; step++)
                {
                    int vocab = m.Config.VocabSize;
                    var next = Enumerable.Range(0, prompts.Length).Select(i => TensorPrimitives.IndexOfMax(logits.AsSpan(i * vocab, vocab))).ToArray();
                    for (int i = 0; i < next.Length; i++) got[i].Add(next[i]);
                    if (step == steps) break;
                    logits = m.Forward(seqs, next.Select(t => (ReadOnlyMemory<int>)new[] { t }).ToArray(), LogitsSelection.LastPerSequence);
                }
                return got.Select(g => g.ToArray()).ToArray();
            });

        private static int[][] PipelinedDecode(MiniMaxModel m, int[][] prompts, int steps, out int held)
        {
            int heldLaunches = 0;
            var result = WithSequences(m, prompts.Length, prompts[0].Length + steps + 1, seqs =>
            {
                int[] first = m.ForwardGreedy(seqs, prompts.Select(p => (ReadOnlyMemory<int>)p).ToArray());
                var got = first.Select(t => new List<int> { t }).ToArray();
                using var pipeline = m.StartGreedyDecode(seqs, first, steps);
                while (pipeline.Next() is { } ids)
                    for (int i = 0; i < ids.Length; i++) got[i].Add(ids[i]);
                heldLaunches = pipeline.HeldLaunches;
                return got.Select(g => g.ToArray()).ToArray();
            });
            held = heldLaunches;
            return result;
        }

        private static T WithSequences<T>(MiniMaxModel m, int count, int maxTokens, Func<SequenceState[], T> run)
        {
            var seqs = Enumerable.Range(0, count).Select(_ => m.CreateSequence(maxTokens)).ToArray();
            try
            {
                return run(seqs);
            }
            finally
            {
                foreach (var s in seqs) s.Dispose();
            }
        }

        /// <summary>Tokens that differ (a missing or extra token counts as one).</summary>
        private static int Differences(int[][] actual, int[][] expected)
        {
            int n = Math.Abs(actual.Length - expected.Length);
            for (int i = 0; i < Math.Min(actual.Length, expected.Length); i++)
            {
                n += Math.Abs(actual[i].Length - expected[i].Length);
                for (int j = 0; j < Math.Min(actual[i].Length, expected[i].Length); j++)
                    if (actual[i][j] != expected[i][j]) n++;
            }
            return n;
        }
    }
}
