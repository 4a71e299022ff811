using System.CommandLine;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax inspect</c>: what a model is, what it weighs, and what a sequence's state costs.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        var preset = new Option<string?>("--preset") { Description = $"A built-in shape instead of a model folder ({string.Join(", ", BuiltInConfigs.All.Keys)})" };
        var context = new Option<long[]>("--context") { Description = "Context lengths to size the per-sequence state for", DefaultValueFactory = _ => [4096, 131072, 1048576], AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("inspect", "Show a model's config, parameter counts, tensor dtypes and per-sequence state size") { model, preset, context };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            string? dir = r.GetValue(model);
            string? name = r.GetValue(preset);
            if ((dir is null) == (name is null)) throw new ArgumentException("give either --model DIR or --preset NAME");
            var c = dir is not null ? ModelConfig.Load(dir) : BuiltInConfigs.Get(name!);
            Console.WriteLine(dir is not null ? $"model: {Path.GetFullPath(dir)} (config dialect {c.SourceDialect})" : $"built-in config: {name}");
            Console.WriteLine($"  hidden {c.HiddenSize}, {c.NumLayers} layers ({c.NumLightningLayers} lightning, {c.NumSoftmaxLayers} softmax: {string.Concat(c.LayerKinds.Select(k => k == LayerKind.Lightning ? 'L' : 'S'))})");
            Console.WriteLine($"  attention: {c.NumHeads} heads x {c.HeadDim} (width {c.AttentionWidth}), {c.NumKvHeads} KV heads, RoPE on {c.RotaryDim} of {c.HeadDim} channels, theta {c.RopeTheta:G}, lightning block {c.BlockSize}");
            Console.WriteLine($"  experts: {c.NumExperts} x width {c.IntermediateSize}, top-{c.ExpertsPerToken}; vocabulary {c.VocabSize}{(c.TieWordEmbeddings ? " (tied lm_head)" : "")}");
            Console.WriteLine($"  residual alpha/beta: lightning {c.LightningResidual.Alpha:G6}/{c.LightningResidual.Beta:G6}, softmax {c.SoftmaxResidual.Alpha:G6}/{c.SoftmaxResidual.Beta:G6}, mlp {c.MlpResidual.Alpha:G6}/{c.MlpResidual.Beta:G6}");
            Console.WriteLine($"  parameters: {Count(ModelCost.TotalParams(c))} total, {Count(ModelCost.ActiveParams(c))} active per token");
            if (dir is not null)
            {
                using var files = CheckpointFiles.Open(dir);
                var byType = new Dictionary<string, (long Count, long Elements, long Bytes)>();
                foreach (var n in files.Names)
                {
                    var info = files.Get(n).Info;
                    string t = info.DType.ToString();
                    var e = byType.GetValueOrDefault(t);
                    byType[t] = (e.Count + 1, e.Elements + info.ElementCount, e.Bytes + info.ByteLength);
                }
                Console.WriteLine($"  checkpoint: {files.Files.Count} file(s), {files.Names.Count} tensors");
                foreach (var (t, e) in byType.OrderByDescending(kv => kv.Value.Bytes))
                    Console.WriteLine($"    {t,-5} {e.Count,6} tensors {Count(e.Elements),10} elements {Bytes(e.Bytes),10}");
            }
            Console.WriteLine("  per-sequence state (float32 lightning states + float32 KV cache on the CPU, bf16 cache on CUDA):");
            foreach (long n in r.GetValue(context)!)
                Console.WriteLine($"    {n,10} tokens: {Bytes(SequenceState.BytesFor(c, n)),10} (CPU)  {Bytes(SequenceState.BytesFor(c, n, Tensors.DType.BF16)),10} (bf16 cache)");
            return 0;
        }));
        return cmd;
    }

    internal static string Count(double n) => n switch
    {
        >= 1e9 => $"{n / 1e9:F2}B",
        >= 1e6 => $"{n / 1e6:F2}M",
        >= 1e3 => $"{n / 1e3:F1}K",
        _ => $"{n:F0}",
    };

    internal static string Bytes(double b) => b switch
    {
        >= 1L << 30 => $"{b / (1L << 30):F2} GiB",
        >= 1L << 20 => $"{b / (1L << 20):F1} MiB",
        >= 1L << 10 => $"{b / (1L << 10):F1} KiB",
        _ => $"{b:F0} B",
    };
}
