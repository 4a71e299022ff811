using Microsoft.Extensions.AI;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Text;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace MiniMaxSharp.Serving.Tests;

[Collection(ServingCollection.Name)]
public sealed class ChatClientTests(ServingTestModel fixture) : IDisposable
{
    private readonly TextModel _text = fixture.Load();
    private ServingEngine? _engine;

    private ServingEngine Engine => _engine ??= new ServingEngine(_text, new ServingOptions(), "chat-model");

    public void Dispose()
    {
        _engine?.Dispose();
        _text.Dispose();
    }

    private static List<AiChatMessage> Messages(int i) =>
        ServingTestModel.Conversation(i).Select(m => new AiChatMessage(new ChatRole(m.Role), m.Content)).ToList();

    /// <summary>The single-sequence path with the same sampling options, on the fixture's own model.</summary>
    private async Task<string> Reference(int conversation, int maxTokens, SamplingOptions sampling)
    {
        using var reference = fixture.Load();
        var text = new System.Text.StringBuilder();
        await foreach (var t in reference.GenerateTextAsync(reference.EncodeChat(ServingTestModel.Conversation(conversation)),
                           new GenerationOptions { MaxNewTokens = maxTokens, Sampling = sampling }))
            text.Append(t.Text);
        return text.ToString();
    }

    [Fact]
    public async Task SeededSamplingWithPenaltiesMatchesTheSingleSequencePathEvenWhenConcurrent()
    {
        IChatClient client = new MiniMaxChatClient(Engine);
        ChatOptions Options(int i) => new()
        {
            Temperature = 0.9f, TopP = 0.95f, TopK = 50, Seed = 1000 + i, MaxOutputTokens = 12, FrequencyPenalty = 0.5f, PresencePenalty = 0.3f,
        };
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => client.GetResponseAsync(Messages(i), Options(i)))).WaitAsync(TimeSpan.FromSeconds(30));
        int changedByPenalties = 0;
        for (int i = 0; i < 8; i++)
        {
            var plain = new SamplingOptions { Temperature = 0.9f, TopP = 0.95f, TopK = 50, Seed = 1000 + i };
            Assert.Equal(await Reference(i, 12, plain with { FrequencyPenalty = 0.5f, PresencePenalty = 0.3f }), responses[i].Text);
            if (await Reference(i, 12, plain) != responses[i].Text) changedByPenalties++;
        }
        // The penalties change some results (else this test would not show they reach the sampler).
        Assert.True(changedByPenalties > 0);
    }

    [Fact]
    public async Task ResponseCarriesUsageFinishReasonAndModel()
    {
        IChatClient client = new MiniMaxChatClient(Engine);
        var prompt = _text.EncodeChat(ServingTestModel.Conversation(2));
        var expected = await fixture.ReferenceAsync(prompt, 7);
        var response = await client.GetResponseAsync(Messages(2), new ChatOptions { MaxOutputTokens = 7 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(prompt.Count, response.Usage!.InputTokenCount);
        Assert.Equal(expected.Ids.Length, response.Usage.OutputTokenCount);
        Assert.Equal(prompt.Count + expected.Ids.Length, response.Usage.TotalTokenCount);
        Assert.Equal(expected.Ids.Length == 7 ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("chat-model", response.ModelId);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Messages(2), new ChatOptions { MaxOutputTokens = 7 })) updates.Add(u);
        Assert.Equal(expected.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(response.FinishReason, updates[^1].FinishReason);
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Single();
        Assert.Equal(expected.Ids.Length, usage.Details.OutputTokenCount);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
    }

    [Fact]
    public async Task StopSequencesCutTheTextAndFinishWithStop()
    {
        IChatClient client = new MiniMaxChatClient(Engine);
        string full = (await client.GetResponseAsync(Messages(6), new ChatOptions { MaxOutputTokens = 16 })).Text;
        Assert.True(full.Length >= 6, $"reference too short: '{full}'");
        string stop = full.Substring(full.Length / 2, 3);
        int cut = full.IndexOf(stop, StringComparison.Ordinal);
        var options = new ChatOptions { MaxOutputTokens = 16, StopSequences = ["\u0001never", stop] };
        var response = await client.GetResponseAsync(Messages(6), options);
        Assert.Equal(full[..cut], response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        var streamed = new System.Text.StringBuilder();
        await foreach (var u in client.GetStreamingResponseAsync(Messages(6), options)) streamed.Append(u.Text);
        Assert.Equal(full[..cut], streamed.ToString());
        await WaitIdle();
    }

    [Fact]
    public async Task CancellationStopsTheRequestAndFreesItsSequence()
    {
        IChatClient client = new MiniMaxChatClient(Engine);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Messages(1), new ChatOptions { MaxOutputTokens = 3000 }, cts.Token))
                if (++seen == 2) cts.Cancel();
        });
        await WaitIdle();
        using var already = new CancellationTokenSource();
        already.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Messages(1), new ChatOptions(), already.Token));
        await WaitIdle();
    }

    [Fact]
    public void GetServiceReturnsTheEngineObjectsAndMetadata()
    {
        using IChatClient client = new MiniMaxChatClient(Engine);
        var metadata = client.GetService<ChatClientMetadata>();
        Assert.NotNull(metadata);
        Assert.Equal("chat-model", metadata.DefaultModelId);
        Assert.Same(Engine, client.GetService<ServingEngine>());
        Assert.Same(Engine.Scheduler, client.GetService<BatchScheduler>());
        Assert.Same(_text, client.GetService<TextModel>());
        Assert.Same(_text.Model, client.GetService<MiniMaxSharp.Model.MiniMaxModel>());
        Assert.Same(_text.Tokenizer, client.GetService<MiniMaxSharp.Tokenizers.Tokenizer>());
        Assert.Null(client.GetService<ServingEngine>("some key"));
        Assert.Null(client.GetService<HttpClient>());
    }

    [Fact]
    public async Task InvalidOptionsAreReported()
    {
        IChatClient client = new MiniMaxChatClient(Engine);
        await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync(Messages(0), new ChatOptions { MaxOutputTokens = -1 }));
        await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync(Messages(0), new ChatOptions { TopP = 0 }));
        await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync(Messages(0), new ChatOptions { ModelId = "other" }));
        await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync(Messages(0), new ChatOptions { MaxOutputTokens = 5000 }));
        await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync([], new ChatOptions()));
    }

    private async Task WaitIdle()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Engine.Scheduler.ActiveSequences != 0 || Engine.Scheduler.QueueDepth != 0 || Engine.Scheduler.ReservedStateBytes != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the scheduler did not return to idle");
            await Task.Delay(20);
        }
    }
}

public class StopStringFilterTests
{
    [Fact]
    public void StopStringSplitAcrossPiecesIsFoundAndHeldBackTextIsReleased()
    {
        var filter = new StopStringFilter(["END", "xyz"]);
        Assert.Equal(("hello ", false), filter.Push("hello E"));     // "E" may start "END": held back
        Assert.Equal(("", false), filter.Push("N"));
        Assert.Equal(("ENXa", false), filter.Push("Xa"));            // it did not: released
        Assert.Equal(("b ", false), filter.Push("b EN"));
        Assert.Equal(("", true), filter.Push("D and more"));         // "END" across two pieces
    }

    [Fact]
    public void EarliestStopWinsAndTheRestIsFlushedAtTheEnd()
    {
        var filter = new StopStringFilter(["cd", "b"]);
        Assert.Equal(("a", true), filter.Push("abcd"));
        var other = new StopStringFilter(["abc"]);
        Assert.Equal(("x", false), other.Push("xab"));
        Assert.Equal("ab", other.Flush());
        Assert.Equal(("same", false), new StopStringFilter([]).Push("same"));
    }
}
