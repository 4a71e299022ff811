using System.CommandLine;
using System.Diagnostics;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Model;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax generate</c>: stream a continuation of a prompt.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids" };
        var promptText = new Option<string?>("--prompt") { Description = "Prompt text (needs the model's tokenizer.json)" };
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
            { model, promptIds, promptText, maxNew, temperature, topK, topP, minP, repetition, seed, chunk, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            string? ids = r.GetValue(promptIds), text = r.GetValue(promptText);
            if ((ids is null) == (text is null)) throw new ArgumentException("give the prompt with either --prompt TEXT or --prompt-ids 1,2,3");
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
            string dir = r.GetValue(model)!;
            var backendInstance = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            var clock = Stopwatch.StartNew();
            double firstToken = 0;
            int produced = 0;
            int[] prompt;
            if (text is not null)
            {
                // Text in, text out: the model folder's tokenizer.json, streamed at whole characters.
                using var tm = TextModel.Load(dir, backendInstance);
                prompt = [.. tm.Tokenizer.Encode(text)];
                clock.Restart();
                Console.Write(text);
                var counting = options with { StopTokenIds = tm.StopTokenIds };
                await foreach (var token in tm.GenerateTextAsync(prompt, counting, ct))
                {
                    if (produced++ == 0) firstToken = clock.Elapsed.TotalSeconds;
                    Console.Write(token.Text);
                    Console.Out.Flush();
                }
            }
            else
            {
                prompt = ParseIds(ids!);
                using var m = ModelLoader.Load(dir, backendInstance);
                clock.Restart();
                await foreach (int token in TokenGenerator.GenerateAsync(m, prompt, options with { StopTokenIds = m.Config.EosTokenIds }, ct))
                {
                    if (produced++ == 0) firstToken = clock.Elapsed.TotalSeconds;
                    Console.Write(produced == 1 ? $"{token}" : $",{token}");
                    Console.Out.Flush();
                }
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
