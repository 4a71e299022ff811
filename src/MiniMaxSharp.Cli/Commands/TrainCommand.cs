using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Tokenizers;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax train</c>: trains a model from scratch (<c>--config</c>) or fine-tunes one (<c>--init-from</c>) on text
/// tokenised with a tokenizer.json, or on token-id JSON Lines; checkpoints that resume exactly, held-out evaluation,
/// a loss curve PNG.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config") { Description = "Model config (Hugging Face dialect JSON): train from scratch with random weights" };
        var initFrom = new Option<string>("--init-from", "--model") { Description = "Model folder to fine-tune (its config is used)" };
        var data = new Option<string[]>("--data") { Description = "Text files (with --tokenizer), or JSON Lines of token ids (without)", Required = true, AllowMultipleArgumentsPerToken = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer.json (or its folder) to tokenise text data with; copied into the output" };
        var paragraphs = new Option<bool>("--paragraphs") { Description = "Text: every blank-line-separated paragraph is a document (default: every file)" };
        var endOfText = new Option<string>("--end-of-text") { Description = "Token appended to every text document", DefaultValueFactory = _ => "<|endoftext|>" };
        var holdOut = new Option<int?>("--hold-out-every") { Description = "Every n-th document is held out for evaluation (0: none; default 20 for text, 0 for token-id JSON Lines)" };
        var output = new Option<string>("--out", "--output") { Description = "Output folder: model, tokenizer, training state, loss curve", Required = true };
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
        var seed = new Option<int>("--seed") { Description = "Seed of the row order and of the initial weights", DefaultValueFactory = _ => 0 };
        var initStd = new Option<float>("--init-std") { Description = "Standard deviation of random initial matrices (--config)", DefaultValueFactory = _ => 0.02f };
        var saveEvery = new Option<int>("--save-every") { Description = "Checkpoint every N steps (0: only at the end)" };
        var evalEvery = new Option<int>("--eval-every") { Description = "Evaluate on the held-out rows every N steps (0: only at the end)" };
        var evalRows = new Option<int>("--eval-rows") { Description = "Held-out rows per evaluation (0: all)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the training state in the output folder" };
        var stopAfter = new Option<int?>("--stop-after") { Description = "Stop (and checkpoint) after this many steps in total; --resume continues" };
        var bf16 = new Option<bool>("--save-bf16") { Description = "Save model.safetensors as bfloat16 (the training state stays float32)" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var precision = CommonOptions.Precision("bf16 on cuda (throughput; float32 masters), f32 on cpu");
        var cmd = new Command("train", "Train (--config) or fine-tune (--init-from) a model: AdamW, warm-up + cosine, clipping, accumulation, resumable checkpoints")
        {
            config, initFrom, data, tokenizer, paragraphs, endOfText, holdOut, output, steps, seqLen, rows, accumulation, lr, minLr, warmup,
            weightDecay, clip, aux, seed, initStd, saveEvery, evalEvery, evalRows, resume, stopAfter, bf16, threads, backend, precision,
        };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(() => Task.Run(() =>
        {
            var options = new TrainingOptions
            {
                Steps = r.GetValue(steps), BatchRows = r.GetValue(rows), Accumulation = r.GetValue(accumulation),
                LearningRate = r.GetValue(lr), MinLearningRate = r.GetValue(minLr), WarmupSteps = r.GetValue(warmup),
                WeightDecay = r.GetValue(weightDecay), ClipNorm = r.GetValue(clip), AuxLoss = r.GetValue(aux), Seed = r.GetValue(seed),
                SaveEvery = r.GetValue(saveEvery), EvalEvery = r.GetValue(evalEvery), EvalRows = r.GetValue(evalRows),
                SaveAs = r.GetValue(bf16) ? DType.BF16 : DType.F32,
            };
            options.Validate();
            var requested = CommonOptions.ParsePrecision(r.GetValue(precision));
            if ((r.GetValue(config) is null) == (r.GetValue(initFrom) is null))
                throw new ArgumentException("give exactly one of --config (train from scratch) and --init-from (fine-tune)");
            int seq = r.GetValue(seqLen);
            string? tokenizerFile = r.GetValue(tokenizer) is string t ? (Directory.Exists(t) ? Path.Combine(t, "tokenizer.json") : t) : null;

            List<int[]> documents;
            if (tokenizerFile is not null)
            {
                var tok = Tokenizer.FromFile(tokenizerFile);
                int? eot = tok.TokenToId(r.GetValue(endOfText)!);
                if (eot is null) Console.Error.WriteLine($"note: the tokenizer has no '{r.GetValue(endOfText)}'; documents get no end token");
                documents = TextCorpus.ReadDocuments(tok, r.GetValue(data)!, r.GetValue(paragraphs), eot);
            }
            else documents = r.GetValue(data)!.SelectMany(TrainingData.ReadDocuments).ToList();
            var (trainDocs, heldOutDocs) = (r.GetValue(holdOut) ?? (tokenizerFile is null ? 0 : 20)) is > 0 and int n ? TextCorpus.Split(documents, n) : (documents, []);
            var trainRows = TrainingData.Pack(trainDocs, seq);
            var heldOutRows = heldOutDocs.Count > 0 ? TrainingData.Pack(heldOutDocs, seq) : [];

            var compute = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            var used = CommonOptions.ApplyPrecision(requested, compute, TrainingPrecision.BF16);
            using var model = r.GetValue(config) is FileInfo configFile
                ? FromScratch(ModelConfig.Load(configFile.FullName), compute, r.GetValue(seed), r.GetValue(initStd))
                : TrainingModel.Load(r.GetValue(initFrom)!, compute);
            int maxId = documents.Max(d => d.Max());
            if (maxId >= model.Config.VocabSize) throw new ArgumentException($"token id {maxId} of the data is outside the model's vocabulary of {model.Config.VocabSize}");

            using var run = new TrainingRun(model, trainRows, heldOutRows, options, r.GetValue(output)!, tokenizerFile);
            if (r.GetValue(resume)) run.Resume();
            long parameters = TrainableWeights.Named(model.Weights).Sum(p => p.Tensor.ElementCount);
            Console.Error.WriteLine($"{parameters:N0} parameters; {documents.Count} documents ({heldOutDocs.Count} held out): {trainRows.Count} training rows, "
                + $"{heldOutRows.Count} held-out rows of up to {seq} tokens; steps {run.Step + 1}..{options.Steps} of {options.Accumulation} x {options.BatchRows} rows; "
                + $"{(used == TrainingPrecision.BF16 ? "bf16 products, float32 master weights" : "float32")} on {compute.Name}");
            var inv = CultureInfo.InvariantCulture;
            // A kill (SIGTERM) or Ctrl+C ends the run after the current step with a checkpoint that --resume continues.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            void Stop(PosixSignalContext c)
            {
                c.Cancel = true;
                stop.Cancel();
            }
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            run.Run(p => Console.WriteLine(string.Create(inv,
                $"step {p.Step} loss {p.Report.CrossEntropy:F6} aux {p.Report.AuxLoss:F6} grad_norm {p.Report.GradientNorm:F4} lr {p.Report.LearningRate:E3} tok/s {p.TokensPerSecond:F0} eta {(int)p.Remaining.TotalMinutes}m{p.Remaining.Seconds:D2}s")
                + (p.EvalLoss is double e ? string.Create(inv, $" eval_loss {e:F6} eval_ppl {Math.Exp(e):F3}") : "")), r.GetValue(stopAfter), stop.Token);
            Console.Error.WriteLine(run.Step < options.Steps
                ? $"stopped at step {run.Step}; checkpoint in {r.GetValue(output)} (--resume continues)"
                : $"saved the model to {r.GetValue(output)}");
            return 0;
        }, CancellationToken.None)));
        return cmd;
    }

    /// <summary>A training model with seeded random weights for a config.</summary>
    internal static TrainingModel FromScratch(ModelConfig config, IComputeBackend backend, int seed, float std)
    {
        var host = RandomWeights.Create(config, seed, DType.F32, std);
        var loaded = WeightLoader.Load(new DictionaryTensorSource(host), config, backend);
        try
        {
            return new TrainingModel(config, TrainableWeights.CopyToFloat32(loaded, backend), backend);
        }
        finally
        {
            foreach (var tensor in loaded.AllTensors().Distinct()) tensor.Dispose();
        }
    }
}
