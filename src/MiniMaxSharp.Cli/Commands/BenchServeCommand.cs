using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Templates;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Text;
using MiniMaxSharp.Tokenizers;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax bench-serve</c>: tokens/s and time to first token of the server versus concurrent streaming clients.</summary>
internal static class BenchServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        var preset = new Option<string?>("--preset") { Description = $"Instead of --model: a built-in shape with random weights ({string.Join(", ", BuiltInConfigs.All.Keys)}); needs --tokenizer" };
        var tokenizerDir = new Option<string?>("--tokenizer") { Description = "With --preset: a folder with tokenizer.json (and a chat template; ChatML when it has none)" };
        var weightType = new Option<string>("--weights") { Description = "With --preset: element type of the random weights: f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var clients = new Option<string>("--clients") { Description = "Concurrent streaming clients, comma-separated", DefaultValueFactory = _ => "1,8,32" };
        var requests = new Option<int>("--requests") { Description = "Requests per concurrency level (default: 4 x clients, at least 8)", DefaultValueFactory = _ => 0 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens generated per request (end-of-sequence ignored)", DefaultValueFactory = _ => 64 };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("bench-serve", "Benchmark the OpenAI-compatible server in-process on loopback with concurrent streaming clients")
            { model, preset, tokenizerDir, weightType, clients, requests, maxTokens, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            string? dir = r.GetValue(model), presetName = r.GetValue(preset), tokenizerFolder = r.GetValue(tokenizerDir);
            if ((dir is null) == (presetName is null)) throw new ArgumentException("give either --model DIR or --preset NAME --tokenizer DIR");
            if (presetName is not null && tokenizerFolder is null) throw new ArgumentException("--preset needs --tokenizer DIR (a folder holding tokenizer.json)");
            var type = r.GetValue(weightType)!.ToLowerInvariant() switch
            {
                "f32" => DType.F32,
                "bf16" => DType.BF16,
                "f16" => DType.F16,
                var other => throw new ArgumentException($"--weights must be f32, bf16 or f16, got '{other}'"),
            };
            int[] levels = r.GetValue(clients)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(s => int.TryParse(s, out int v) && v > 0 ? v : throw new ArgumentException($"--clients: '{s}' is not a positive count")).ToArray();
            int tokens = r.GetValue(maxTokens);
            if (tokens < 1) throw new ArgumentException("--max-tokens must be at least 1");
            var backendInstance = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            var options = new ServerOptions
            {
                Host = "127.0.0.1",
                Port = 0,
                ModelId = dir is not null ? ServeCommand.ModelIdFor(dir) : $"random-{presetName}",
                LogLevel = Microsoft.Extensions.Logging.LogLevel.Error,
                Serving = new ServingOptions { MaxConcurrentSequences = Math.Max(32, levels.Max()), MaxQueuedRequests = 1024 },
            };
            Func<TextModel> load = dir is not null
                ? () => TextModel.Load(dir, backendInstance)
                : () => RandomTextModel(BuiltInConfigs.Get(presetName!), tokenizerFolder!, type, backendInstance);
            await using var server = await OpenAiServer.StartAsync(options, load, ct);
            await server.Engine;
            using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
            await RunLevel(http, options.ModelId, 1, 2, tokens, ct);   // warm-up: JIT and first allocations
            Console.WriteLine($"model {options.ModelId}{(presetName is not null ? $" ({type} random weights)" : "")}, {tokens} tokens per request, {Environment.ProcessorCount} cores");
            Console.WriteLine("clients  requests  tokens/s  TTFT p50 ms  TTFT p95 ms  wall s");
            foreach (int level in levels)
            {
                int n = r.GetValue(requests) is > 0 and int given ? given : Math.Max(8, 4 * level);
                var (tokensPerSecond, ttft, wall) = await RunLevel(http, options.ModelId, level, n, tokens, ct);
                Console.WriteLine($"{level,7}  {n,8}  {tokensPerSecond,8:F1}  {Percentile(ttft, 0.5) * 1000,11:F1}  {Percentile(ttft, 0.95) * 1000,11:F1}  {wall,6:F2}");
            }
            return 0;
        }));
        return cmd;
    }

    private const string ChatMl =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>A built-in shape with random weights over a real tokenizer: serving figures without a trained checkpoint.</summary>
    private static TextModel RandomTextModel(ModelConfig config, string tokenizerFolder, DType type, IComputeBackend backend)
    {
        var tokenizer = Tokenizer.FromFile(tokenizerFolder);
        ChatTemplate template;
        try
        {
            template = ChatTemplateLoader.Load(tokenizerFolder);
        }
        catch (TemplateException)
        {
            template = new ChatTemplate(ChatMl, null, "<|im_end|>");
        }
        var weights = RandomWeights.Create(config, seed: 1, type);
        var model = new MiniMaxModel(config, WeightLoader.Load(new DictionaryTensorSource(weights), config, backend), backend);
        return new TextModel(model, tokenizer, template);
    }

    private static async Task<(double TokensPerSecond, double[] Ttft, double Wall)> RunLevel(HttpClient http, string modelId, int clients, int requests,
        int maxTokens, CancellationToken ct)
    {
        int next = 0;
        var ttft = new List<double>();
        long generated = 0;
        var wall = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, clients).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= requests)
            {
                var (first, count) = await StreamOne(http, modelId, maxTokens, ct);
                lock (ttft) ttft.Add(first);
                Interlocked.Add(ref generated, count);
            }
        });
        await Task.WhenAll(workers);
        double seconds = wall.Elapsed.TotalSeconds;
        return (generated / seconds, [.. ttft], seconds);
    }

    /// <summary>One streaming chat completion: seconds to the first content event, and the completion tokens reported in usage.</summary>
    private static async Task<(double FirstToken, int Tokens)> StreamOne(HttpClient http, string modelId, int maxTokens, CancellationToken ct)
    {
        // JsonObject rather than reflection-based serialisation: the published CLI is trimmed.
        string body = new JsonObject
        {
            ["model"] = modelId,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Write a short story about a lighthouse keeper and a storm." }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
            ["stream"] = true,
            ["ignore_eos"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        }.ToJsonString();
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        double first = double.NaN;
        int tokens = 0;
        while (await reader.ReadLineAsync(ct) is string line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            using var doc = JsonDocument.Parse(line.AsMemory(6).ToString());
            var root = doc.RootElement;
            if (root.TryGetProperty("error", out var error))
                throw new InvalidOperationException($"the server reported an error mid-stream: {error.GetProperty("message").GetString()}");
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object) tokens = usage.GetProperty("completion_tokens").GetInt32();
            if (double.IsNaN(first) && root.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                && choices[0].GetProperty("delta").TryGetProperty("content", out var c) && c.GetString() is { Length: > 0 })
                first = clock.Elapsed.TotalSeconds;
        }
        return (first, tokens);
    }

    private static double Percentile(double[] values, double p)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(p * sorted.Length) - 1)];
    }
}
