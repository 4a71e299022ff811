using System.CommandLine;
using System.Globalization;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax gradients</c>: the training loss of a batch and the float32 gradient of every parameter.</summary>
internal static class GradientsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var input = new Option<FileInfo>("--input")
        {
            Description = "JSON file with \"input_ids\" and \"labels\" (equally long token lists; label -100 = ignored; labels are shifted by one as in Hugging Face) and optionally \"document_lengths\"",
            Required = true,
        };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the gradients (.safetensors, float32, checkpoint tensor names)", Required = true };
        var aux = new Option<bool>("--aux-loss") { Description = "Add the MoE load-balancing loss (times router_aux_loss_coef) and its gradient" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var precision = CommonOptions.Precision("f32 (the exact gradients)");
        var cmd = new Command("gradients", "Compute the loss of a batch and write the gradient of every parameter") { model, input, output, aux, threads, backend, precision };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            string dir = r.GetValue(model)!;
            var requested = CommonOptions.ParsePrecision(r.GetValue(precision));
            string[] checkpointNames;
            using (var files = CheckpointFiles.Open(dir))
                checkpointNames = [.. files.Names];
            var compute = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            var used = CommonOptions.ApplyPrecision(requested, compute, TrainingPrecision.F32);
            var batch = GradientFiles.ReadBatch(r.GetValue(input)!.FullName);
            using var m = TrainingModel.Load(dir, compute);
            var loss = m.ForwardBackward(batch, r.GetValue(aux));
            string outPath = r.GetValue(output)!.FullName;
            var inv = CultureInfo.InvariantCulture;
            GradientFiles.Write(outPath, m, checkpointNames, new Dictionary<string, string>
            {
                ["loss"] = loss.Total.ToString("R", inv),
                ["cross_entropy"] = loss.CrossEntropy.ToString("R", inv),
                ["aux_loss"] = loss.AuxLoss.ToString("R", inv),
                ["targets"] = loss.TargetCount.ToString(inv),
                ["precision"] = used == TrainingPrecision.BF16 ? "bf16" : "f32",
            });
            Console.WriteLine(string.Create(inv, $"loss {loss.Total:R}"));
            Console.WriteLine(string.Create(inv, $"cross_entropy {loss.CrossEntropy:R} over {loss.TargetCount} targets"));
            if (r.GetValue(aux)) Console.WriteLine(string.Create(inv, $"aux_loss {loss.AuxLoss:R}"));
            Console.Error.WriteLine($"wrote the gradients to {outPath}");
            return 0;
        }));
        return cmd;
    }
}
