using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax bench-serve</c>: tokens/s and time to first token of the server versus concurrent streaming clients.</summary>
internal static class BenchServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var clients = new Option<string>("--clients") { Description = "Concurrent streaming clients, comma-separated", DefaultValueFactory = _ => "1,8,32" };
        var requests = new Option<int>("--requests") { Description = "Requests per concurrency level (default: 4 x clients, at least 8)", DefaultValueFactory = _ => 0 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens generated per request (end-of-sequence ignored)", DefaultValueFactory = _ => 64 };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("bench-serve", "Benchmark the OpenAI-compatible server in-process on loopback with concurrent streaming clients")
            { model, clients, requests, maxTokens, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            string dir = r.GetValue(model)!;
            int[] levels = r.GetValue(clients)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(s => int.TryParse(s, out int v) && v > 0 ? v : throw new ArgumentException($"--clients: '{s}' is not a positive count")).ToArray();
            int tokens = r.GetValue(maxTokens);
            if (tokens < 1) throw new ArgumentException("--max-tokens must be at least 1");
            var backendInstance = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            var options = new ServerOptions
            {
                Host = "127.0.0.1",
                Port = 0,
                ModelId = ServeCommand.ModelIdFor(dir),
                LogLevel = Microsoft.Extensions.Logging.LogLevel.None,
                Serving = new ServingOptions { MaxConcurrentSequences = Math.Max(32, levels.Max()), MaxQueuedRequests = 1024 },
            };
            await using var server = await OpenAiServer.StartAsync(options, () => TextModel.Load(dir, backendInstance), ct);
            await server.Engine;
            using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
            await RunLevel(http, options.ModelId, 1, 2, tokens, ct);   // warm-up: JIT and first allocations
            Console.WriteLine($"model {options.ModelId}, {tokens} tokens per request, {Environment.ProcessorCount} cores");
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
        string body = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = modelId,
            ["messages"] = new[] { new Dictionary<string, string> { ["role"] = "user", ["content"] = "Write a short story about a lighthouse keeper and a storm." } },
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
            ["stream"] = true,
            ["ignore_eos"] = true,
            ["stream_options"] = new Dictionary<string, bool> { ["include_usage"] = true },
        });
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
