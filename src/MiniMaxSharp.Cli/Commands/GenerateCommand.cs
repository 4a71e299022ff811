using System.CommandLine;
using System.Diagnostics;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax generate</c>: stream a continuation of a prompt.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0: off)", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass (1: off)", DefaultValueFactory = _ => 1f };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens below min-p x the top probability (0: off)", DefaultValueFactory = _ => 0f };
        var repetition = new Option<float>("--repetition-penalty") { Description = "Penalty for tokens already seen (1: off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<int?>("--seed") { Description = "Random seed for sampling" };
        var chunk = new Option<int>("--prefill-chunk") { Description = "Prompt tokens per prefill step", DefaultValueFactory = _ => 512 };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("generate", "Generate a continuation of a prompt, streaming it as it is produced")
            { model, promptIds, maxNew, temperature, topK, topP, minP, repetition, seed, chunk, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            string? ids = r.GetValue(promptIds);
            if (ids is null) throw new ArgumentException("give the prompt with --prompt-ids 1,2,3");
            int[] prompt = ParseIds(ids);
            var options = new GenerationOptions
            {
                MaxNewTokens = r.GetValue(maxNew),
                PrefillChunk = r.GetValue(chunk),
                Sampling = new SamplingOptions
                {
                    Temperature = r.GetValue(temperature),
                    TopK = r.GetValue(topK),
                    TopP = r.GetValue(topP),
                    MinP = r.GetValue(minP),
                    RepetitionPenalty = r.GetValue(repetition),
                    Seed = r.GetValue(seed),
                },
            };
            options.Sampling.Validate();
            using var m = ModelLoader.Load(r.GetValue(model)!, BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads)));
            options = options with { StopTokenIds = m.Config.EosTokenIds };
            var clock = Stopwatch.StartNew();
            double firstToken = 0;
            int produced = 0;
            await foreach (int token in TokenGenerator.GenerateAsync(m, prompt, options, ct))
            {
                if (produced++ == 0) firstToken = clock.Elapsed.TotalSeconds;
                Console.Write(produced == 1 ? $"{token}" : $",{token}");
                Console.Out.Flush();
            }
            Console.WriteLine();
            double total = clock.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"prompt {prompt.Length} tokens: first token after {firstToken * 1000:F0} ms; " +
                $"{produced} tokens in {total:F2} s ({(produced > 1 ? (produced - 1) / (total - firstToken) : 0):F1} tokens/s after the first)");
            return 0;
        }));
        return cmd;
    }

    internal static int[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("the prompt has no token ids");
        return parts.Select(p => int.TryParse(p, out int v) ? v : throw new FormatException($"'{p}' is not a token id")).ToArray();
    }
}
