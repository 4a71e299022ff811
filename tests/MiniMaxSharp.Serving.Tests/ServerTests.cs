using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniMaxSharp.Serving;
using OpenAI;
using OpenAI.Chat;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using OpenAiFinishReason = OpenAI.Chat.ChatFinishReason;

namespace MiniMaxSharp.Serving.Tests;

[Collection(ServingCollection.Name)]
public class ServerTests(ServingTestModel fixture) : IAsyncLifetime
{
    private const string Key = "sk-test-key";
    private ServerHarness _harness = null!;

    public async Task InitializeAsync()
    {
        _harness = await ServerHarness.StartAsync(fixture.Load, new ServingOptions { MaxConcurrentSequences = 32, MaxQueuedRequests = 128 }, Key);
        await _harness.Server.Engine;
    }

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private ChatClient OpenAiChat() => new(ServerHarness.ModelId, new ApiKeyCredential(Key),
        new OpenAIClientOptions { Endpoint = new Uri(_harness.Server.BaseAddress, "v1") });

    private static List<OpenAI.Chat.ChatMessage> OpenAiMessages(int i) =>
        ServingTestModel.Conversation(i).Select(m => m.Role == "system" ? (OpenAI.Chat.ChatMessage)new SystemChatMessage(m.Content) : new UserChatMessage(m.Content)).ToList();

    private static List<AiChatMessage> AiMessages(int i) =>
        ServingTestModel.Conversation(i).Select(m => new AiChatMessage(new ChatRole(m.Role), m.Content)).ToList();

    private async Task<string> ViaOpenAi(int i, int maxTokens, bool stream)
    {
        var client = OpenAiChat();
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = maxTokens };
        if (!stream) return (await client.CompleteChatAsync(OpenAiMessages(i), options)).Value.Content[0].Text;
        var text = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync(OpenAiMessages(i), options))
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
        return text.ToString();
    }

    private async Task<string> ViaChatClient(int i, int maxTokens, bool stream)
    {
        IChatClient client = new MiniMaxChatClient(await _harness.Server.Engine);
        var options = new ChatOptions { MaxOutputTokens = maxTokens };
        if (!stream) return (await client.GetResponseAsync(AiMessages(i), options)).Text;
        var text = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync(AiMessages(i), options)) text.Append(update.Text);
        return text.ToString();
    }

    [Fact]
    public async Task GreedyTextIsTheSameThroughServerChatClientAndGeneratorAloneAndWith32Concurrent()
    {
        const int maxTokens = 10;
        var expected = new string[32];
        for (int i = 0; i < 32; i++) expected[i] = (await fixture.ReferenceAsync(fixture.ChatPrompt(i), maxTokens)).Text;
        Assert.Contains(expected, e => e.Length > 0);

        // Alone.
        Assert.Equal(expected[0], await ViaOpenAi(0, maxTokens, stream: false));
        Assert.Equal(expected[0], await ViaOpenAi(0, maxTokens, stream: true));
        Assert.Equal(expected[0], await ViaChatClient(0, maxTokens, stream: false));
        Assert.Equal(expected[0], await ViaChatClient(0, maxTokens, stream: true));

        // 32 at once, through all four paths (128 requests: 32 run, the rest queue).
        var tasks = Enumerable.Range(0, 32).SelectMany(i => new[]
        {
            ViaOpenAi(i, maxTokens, false), ViaOpenAi(i, maxTokens, true), ViaChatClient(i, maxTokens, false), ViaChatClient(i, maxTokens, true),
        }).ToArray();
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        for (int i = 0; i < 32; i++)
            for (int k = 0; k < 4; k++)
                Assert.True(expected[i] == results[4 * i + k], $"conversation {i}, path {k}: '{results[4 * i + k]}' != '{expected[i]}'");
        await _harness.WaitIdleAsync();
    }

    [Fact]
    public async Task OpenAiClientSeesUsageAndFinishReasons()
    {
        var client = OpenAiChat();
        var reference = await fixture.ReferenceAsync(fixture.ChatPrompt(5), 6);
        var completion = (await client.CompleteChatAsync(OpenAiMessages(5), new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 })).Value;
        Assert.Equal(fixture.ChatPrompt(5).Count, completion.Usage.InputTokenCount);
        Assert.Equal(reference.Ids.Length, completion.Usage.OutputTokenCount);
        Assert.Equal(reference.Ids.Length == 6 ? OpenAiFinishReason.Length : OpenAiFinishReason.Stop, completion.FinishReason);

        OpenAiFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync(OpenAiMessages(5), new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 }))
        {
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(completion.FinishReason, finish);
        Assert.NotNull(usage);
        Assert.Equal(completion.Usage.OutputTokenCount, usage.OutputTokenCount);
    }

    [Fact]
    public async Task StreamingBytesFollowOpenAisChunkFormat()
    {
        var response = await _harness.Http.PostAsync("v1/chat/completions", ServerHarness.Json(ServerHarness.ChatBody(7, 5, stream: true)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        string body = await response.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        Assert.EndsWith("data: [DONE]\n\n", body);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e[6..]).RootElement).ToArray();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        var reference = await fixture.ReferenceAsync(fixture.ChatPrompt(7), 5);
        Assert.Equal(reference.Ids.Length, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(fixture.ChatPrompt(7).Count, usageChunk.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        var finishChunk = chunks[^2].GetProperty("choices")[0];
        Assert.Equal(reference.Ids.Length == 5 ? "length" : "stop", finishChunk.GetProperty("finish_reason").GetString());
        string text = string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal(reference.Text, text);
    }

    [Fact]
    public async Task CompletionsEndpointMatchesTheGeneratorAndCutsAtStopStrings()
    {
        const string prompt = "Once upon a time";
        using var text = fixture.Load();
        var ids = text.Tokenizer.Encode(prompt);
        var reference = await fixture.ReferenceAsync(ids, 12);
        var body = new Dictionary<string, object> { ["model"] = ServerHarness.ModelId, ["prompt"] = prompt, ["max_tokens"] = 12, ["temperature"] = 0 };
        var json = JsonDocument.Parse(await (await _harness.Http.PostAsync("v1/completions", ServerHarness.Json(body))).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.Equal(reference.Text, json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(ids.Count, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // A stop string taken from the middle of the reference text: the text ends just before it, finish_reason stop.
        Assert.True(reference.Text.Length >= 4, $"reference text too short: '{reference.Text}'");
        string stop = reference.Text.Substring(reference.Text.Length / 2, 2);
        int cut = reference.Text.IndexOf(stop, StringComparison.Ordinal);
        body["stop"] = new[] { stop };
        body["stream"] = true;
        string sse = await (await _harness.Http.PostAsync("v1/completions", ServerHarness.Json(body))).Content.ReadAsStringAsync();
        var chunks = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e != "data: [DONE]").Select(e => JsonDocument.Parse(e[6..]).RootElement).ToArray();
        Assert.Equal(reference.Text[..cut], string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        await _harness.WaitIdleAsync();
    }

    [Fact]
    public async Task ClientThatDisconnectsMidStreamFreesItsSequence()
    {
        double cancelledBefore = await _harness.MetricAsync("minimax_requests_finished_total{outcome=\"cancelled\"}");
        var body = ServerHarness.ChatBody(8, 3000, stream: true);
        body["ignore_eos"] = true;   // long enough that it is surely still running when the client leaves
        // A client that really leaves: HttpClient would otherwise drain up to 1 MB of the unread response to
        // reuse the connection, and on a fast machine that drain reads the whole (completed) stream.
        using var leaving = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = _harness.Http.BaseAddress };
        leaving.DefaultRequestHeaders.Authorization = _harness.Http.DefaultRequestHeaders.Authorization;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = ServerHarness.Json(body) })
        {
            var response = await leaving.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            for (int events = 0; events < 3;)
                if ((await reader.ReadLineAsync())!.StartsWith("data: ", StringComparison.Ordinal)) events++;
            Assert.Equal(1, await _harness.MetricAsync("minimax_active_sequences"));
            response.Dispose();   // the client goes away mid-stream
        }
        await _harness.WaitIdleAsync();
        Assert.Equal(cancelledBefore + 1, await _harness.MetricAsync("minimax_requests_finished_total{outcome=\"cancelled\"}"));
        // And the server keeps serving.
        Assert.Equal((await fixture.ReferenceAsync(fixture.ChatPrompt(9), 4)).Text, await ViaOpenAi(9, 4, stream: false));
    }

    [Fact]
    public async Task ModelsTokenizeHealthAndMetricsAnswer()
    {
        var models = JsonDocument.Parse(await _harness.Http.GetStringAsync("v1/models")).RootElement;
        Assert.Equal(ServerHarness.ModelId, models.GetProperty("data")[0].GetProperty("id").GetString());
        var health = await _harness.Http.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var tokens = JsonDocument.Parse(await (await _harness.Http.PostAsync("tokenize",
            ServerHarness.Json(new { prompt = "hello world", add_special_tokens = false }))).Content.ReadAsStringAsync()).RootElement;
        using var text = fixture.Load();
        Assert.Equal(text.Tokenizer.Encode("hello world", addSpecialTokens: false), tokens.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));
        await ViaOpenAi(1, 3, stream: true);
        string metrics = await _harness.Http.GetStringAsync("metrics");
        foreach (var name in new[] { "minimax_requests_started_total", "minimax_prompt_tokens_total", "minimax_generated_tokens_total",
                     "minimax_time_to_first_token_seconds_bucket", "minimax_inter_token_latency_seconds_count", "minimax_queue_depth",
                     "minimax_batch_sequences_bucket", "minimax_active_sequences" })
            Assert.Contains(name, metrics);
        Assert.True(await _harness.MetricAsync("minimax_time_to_first_token_seconds_count") >= 1);
    }
}
