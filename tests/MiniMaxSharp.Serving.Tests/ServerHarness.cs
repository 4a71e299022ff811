using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Serving.Tests;

/// <summary>A server on a free loopback port over its own instance of the test model, and a raw HttpClient to it.</summary>
public sealed class ServerHarness : IAsyncDisposable
{
    public const string ModelId = "test-model";

    private ServerHarness(OpenAiServer server, string? apiKey)
    {
        Server = server;
        Http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public OpenAiServer Server { get; }
    public HttpClient Http { get; }

    public static async Task<ServerHarness> StartAsync(Func<TextModel> load, ServingOptions? serving = null, string? apiKey = null)
    {
        var options = new ServerOptions
        {
            Port = 0,
            ModelId = ModelId,
            ApiKey = apiKey,
            LogLevel = LogLevel.None,
            Serving = serving ?? new ServingOptions(),
        };
        return new ServerHarness(await OpenAiServer.StartAsync(options, load), apiKey);
    }

    public static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    public static Dictionary<string, object?> ChatBody(int conversation, int maxTokens, bool stream = false)
    {
        var messages = ServingTestModel.Conversation(conversation).Select(m => new Dictionary<string, string> { ["role"] = m.Role, ["content"] = m.Content! }).ToArray();
        var body = new Dictionary<string, object?> { ["model"] = ModelId, ["messages"] = messages, ["max_tokens"] = maxTokens, ["temperature"] = 0 };
        if (stream)
        {
            body["stream"] = true;
            body["stream_options"] = new Dictionary<string, bool> { ["include_usage"] = true };
        }
        return body;
    }

    /// <summary>A gauge or counter value from /metrics (labels included in <paramref name="series"/>).</summary>
    public async Task<double> MetricAsync(string series)
    {
        string text = await Http.GetStringAsync("metrics");
        var match = Regex.Match(text, "^" + Regex.Escape(series) + " (\\S+)$", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>Polls until the server holds no sequence and queues nothing (bounded).</summary>
    public async Task WaitIdleAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (await MetricAsync("minimax_active_sequences") != 0 || await MetricAsync("minimax_queue_depth") != 0
               || await MetricAsync("minimax_state_bytes_reserved") != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the server did not return to idle: " + await Http.GetStringAsync("metrics"));
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}
