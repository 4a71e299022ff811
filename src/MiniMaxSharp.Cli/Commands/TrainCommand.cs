using System.CommandLine;
using System.Globalization;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax train</c>: fine-tunes a model on packed token documents with AdamW and saves it.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var data = new Option<FileInfo>("--data") { Description = "JSON Lines file: one document per line, a list of token ids or {\"input_ids\": [...]}", Required = true };
        var output = new Option<string>("--output") { Description = "Folder to save the trained model in (config.json, model.safetensors)", Required = true };
        var steps = new Option<int>("--steps") { Description = "Optimiser steps", DefaultValueFactory = _ => 100 };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per packed row", DefaultValueFactory = _ => 512 };
        var rows = new Option<int>("--batch-rows") { Description = "Rows per micro-batch", DefaultValueFactory = _ => 1 };
        var accumulation = new Option<int>("--accumulation") { Description = "Micro-batches per optimiser step", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-4 };
        var minLr = new Option<double>("--min-lr") { Description = "Learning rate at the end of the cosine", DefaultValueFactory = _ => 0 };
        var warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps", DefaultValueFactory = _ => 0 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW decoupled weight decay (not on norms)", DefaultValueFactory = _ => 0.1 };
        var clip = new Option<double>("--clip") { Description = "Clip gradients to this global norm (0: off)", DefaultValueFactory = _ => 1.0 };
        var aux = new Option<bool>("--aux-loss") { Description = "Add the MoE load-balancing loss (times router_aux_loss_coef)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the row order", DefaultValueFactory = _ => 0 };
        var bf16 = new Option<bool>("--save-bf16") { Description = "Save the weights as bfloat16 (default float32)" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("train", "Fine-tune a model on token documents (AdamW, warm-up + cosine, clipping, accumulation)")
            { model, data, output, steps, seqLen, rows, accumulation, lr, minLr, warmup, weightDecay, clip, aux, seed, bf16, threads, backend };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            int stepCount = Positive(r.GetValue(steps), "--steps"), rowsPerBatch = Positive(r.GetValue(rows), "--batch-rows");
            int micro = Positive(r.GetValue(accumulation), "--accumulation");
            if (r.GetValue(warmup) < 0 || r.GetValue(warmup) > stepCount) throw new ArgumentException($"--warmup {r.GetValue(warmup)} must be in 0..{stepCount}");
            var packed = TrainingData.Pack(TrainingData.ReadDocuments(r.GetValue(data)!.FullName), r.GetValue(seqLen));
            using var m = TrainingModel.Load(r.GetValue(model)!, BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads)));
            using var adam = new AdamW(m, new AdamWOptions { WeightDecay = r.GetValue(weightDecay) });
            var schedule = new WarmupCosineSchedule(r.GetValue(lr), r.GetValue(warmup), stepCount, r.GetValue(minLr));
            var order = new RowOrder(packed.Count, r.GetValue(seed));
            var inv = CultureInfo.InvariantCulture;
            Console.Error.WriteLine($"{packed.Count} rows of up to {r.GetValue(seqLen)} tokens; {stepCount} steps of {micro} x {rowsPerBatch} rows");
            for (int s = 0; s < stepCount; s++)
            {
                var batches = Enumerable.Range(0, micro).Select(_ => (IReadOnlyList<TrainingExample>)Enumerable.Range(0, rowsPerBatch).Select(_ => packed[order.Next()]).ToArray()).ToArray();
                var report = TrainingStep.Run(m, adam, batches, schedule.At(s), r.GetValue(clip), r.GetValue(aux));
                Console.WriteLine(string.Create(inv, $"step {s + 1} loss {report.CrossEntropy:F6} aux {report.AuxLoss:F6} grad_norm {report.GradientNorm:F4} lr {report.LearningRate:E3}"));
            }
            TrainingCheckpoint.Save(r.GetValue(output)!, m, r.GetValue(bf16) ? DType.BF16 : DType.F32);
            Console.Error.WriteLine($"saved the model to {r.GetValue(output)}");
            return 0;
        }));
        return cmd;
    }

    private static int Positive(int value, string option) => value > 0 ? value : throw new ArgumentException($"{option} must be positive, got {value}");

    /// <summary>Rows in a seeded random order, reshuffled after every pass over the data.</summary>
    private sealed class RowOrder(int count, int seed)
    {
        private readonly Random _random = new(seed);
        private int[] _order = [];
        private int _at;

        public int Next()
        {
            if (_at == _order.Length)
            {
                _order = Enumerable.Range(0, count).ToArray();
                _random.Shuffle(_order);
                _at = 0;
            }
            return _order[_at++];
        }
    }
}
