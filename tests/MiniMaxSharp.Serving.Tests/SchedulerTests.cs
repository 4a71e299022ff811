using MiniMaxSharp.Generation;
using MiniMaxSharp.Serving;

namespace MiniMaxSharp.Serving.Tests;

[Collection(ServingCollection.Name)]
public class SchedulerTests(ServingTestModel fixture)
{
    private static async Task<int[]> ReadAll(GenerationHandle handle)
    {
        var ids = new List<int>();
        await foreach (int id in handle.Tokens.ReadAllAsync()) ids.Add(id);
        return [.. ids];
    }

    [Fact]
    public async Task ConcurrentGreedyRequestsGiveTheTokensOfEachRunAlone()
    {
        using var text = fixture.Load();
        var steps = new List<StepInfo>();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions { MaxConcurrentSequences = 32 });
        scheduler.StepCompleted = s => { lock (steps) steps.Add(s); };
        const int count = 32, maxTokens = 12;
        var prompts = Enumerable.Range(0, count).Select(fixture.ChatPrompt).ToArray();
        var handles = prompts.Select(p => scheduler.Submit(p, maxTokens, SamplingOptions.Greedy, text.StopTokenIds)).ToArray();
        var results = await Task.WhenAll(handles.Select(ReadAll)).WaitAsync(TimeSpan.FromSeconds(30));
        for (int i = 0; i < count; i++)
        {
            var (expected, _) = await fixture.ReferenceAsync(prompts[i], maxTokens);
            Assert.Equal(expected, results[i]);
            Assert.Equal(expected.Length == maxTokens && !text.StopTokenIds.Contains(expected[^1]) ? FinishReason.Length : FinishReason.Stop, handles[i].FinishReason);
        }
        // They really ran together: some step decoded many sequences at once.
        lock (steps) Assert.Contains(steps, s => s.DecodeSequences >= 16);
        Assert.Equal(0, scheduler.ActiveSequences);
        Assert.Equal(0, scheduler.ReservedStateBytes);
    }

    [Fact]
    public async Task GreedyRequestsLimitedToTheEmittableIdsGiveTheHostsChoice()
    {
        // Plain greedy steps choose on the backend (IGreedyDecoding) among the first emittable ids only: the tokens of a
        // host loop that takes IndexOfMax over the allowed part of each logits row.
        using var text = fixture.Load();
        using var reference = fixture.Load();
        int vocab = text.Model.Config.VocabSize, emittable = vocab / 3;
        const int maxTokens = 10;
        var prompts = Enumerable.Range(0, 3).Select(fixture.ChatPrompt).ToArray();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions());
        var handles = prompts.Select(p => scheduler.Submit(p, maxTokens, SamplingOptions.Greedy, [], emittableTokens: emittable)).ToArray();
        var results = await Task.WhenAll(handles.Select(ReadAll)).WaitAsync(TimeSpan.FromSeconds(30));
        for (int i = 0; i < prompts.Length; i++)
        {
            using var seq = reference.Model.CreateSequence(prompts[i].Count + maxTokens);
            var expected = new List<int>();
            float[] logits = reference.Model.Forward([seq], [prompts[i].ToArray()], MiniMaxSharp.Model.LogitsSelection.LastPerSequence);
            while (true)
            {
                expected.Add(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.AsSpan(0, emittable)));
                if (expected.Count == maxTokens) break;
                logits = reference.Model.Forward([seq], [new[] { expected[^1] }], MiniMaxSharp.Model.LogitsSelection.LastPerSequence);
            }
            Assert.Equal(expected, results[i]);
            Assert.All(results[i], id => Assert.True(id < emittable));
        }
    }

    [Fact]
    public async Task LongPromptIsPrefilledInChunksWhileOthersDecode()
    {
        using var text = fixture.Load();
        var steps = new List<StepInfo>();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions { PrefillChunk = 64, StepTokenBudget = 80 });
        scheduler.StepCompleted = s => { lock (steps) steps.Add(s); };
        var shortPrompt = fixture.ChatPrompt(1);
        var longPrompt = Enumerable.Range(0, 700).Select(i => 100 + i % 2000).ToArray();
        // The decoding request must outlive the long prompt's 11 chunk steps however late this thread submits it (on a
        // busy machine the scheduler can run many decode steps first; with 40 tokens it once finished too early).
        const int shortTokensWanted = 600;
        using var decoding = scheduler.Submit(shortPrompt, shortTokensWanted, SamplingOptions.Greedy, []);
        Assert.True(await decoding.Tokens.WaitToReadAsync());   // decoding has begun
        using var prefilling = scheduler.Submit(longPrompt, 4, SamplingOptions.Greedy, []);
        var longTokens = await ReadAll(prefilling).WaitAsync(TimeSpan.FromSeconds(30));
        var shortTokens = await ReadAll(decoding).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((await fixture.ReferenceAsync(longPrompt, 4)).Ids, longTokens);
        Assert.Equal((await fixture.ReferenceAsync(shortPrompt, shortTokensWanted)).Ids.Take(shortTokens.Length), shortTokens);
        lock (steps)
        {
            Assert.All(steps, s => Assert.True(s.Tokens <= 80 + s.DecodeSequences, $"step of {s.Tokens} tokens"));
            // 700 prompt tokens at most 64 a step: at least 11 steps carried a prefill chunk next to the decode token.
            Assert.True(steps.Count(s => s.DecodeSequences == 1 && s.Sequences == 2) >= 11);
        }
    }

    [Fact]
    public async Task CancelledRequestFreesItsStateAndOthersGoOn()
    {
        using var text = fixture.Load();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions());
        using var cts = new CancellationTokenSource();
        var doomed = scheduler.Submit(fixture.ChatPrompt(2), 3000, SamplingOptions.Greedy, [], cts.Token);
        Assert.True(await doomed.Tokens.WaitToReadAsync());
        Assert.Equal(1, scheduler.ActiveSequences);
        Assert.True(scheduler.ReservedStateBytes > 0);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await ReadAll(doomed).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, scheduler.ActiveSequences);
        Assert.Equal(0, scheduler.ReservedStateBytes);
        var after = scheduler.Submit(fixture.ChatPrompt(3), 5, SamplingOptions.Greedy, text.StopTokenIds);
        var tokens = await ReadAll(after).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((await fixture.ReferenceAsync(fixture.ChatPrompt(3), 5)).Ids, tokens);
    }

    [Fact]
    public void LimitsAreCheckedOnSubmit()
    {
        using var text = fixture.Load();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions { ContextLength = 100, MaxNewTokens = 50, MaxConcurrentSequences = 1, MaxQueuedRequests = 1 });
        var prompt = fixture.ChatPrompt(0);
        var tooLong = Assert.Throws<InvalidRequestException>(() => scheduler.Submit(Enumerable.Repeat(5, 95).ToArray(), 10, SamplingOptions.Greedy, []));
        Assert.Equal("context_length_exceeded", tooLong.Code);
        Assert.Contains("100", tooLong.Message);
        Assert.Equal("max_tokens", Assert.Throws<InvalidRequestException>(() => scheduler.Submit(prompt, 51, SamplingOptions.Greedy, [])).Param);
        Assert.Equal("max_tokens", Assert.Throws<InvalidRequestException>(() => scheduler.Submit(prompt, 0, SamplingOptions.Greedy, [])).Param);
        Assert.Throws<InvalidRequestException>(() => scheduler.Submit([], 5, SamplingOptions.Greedy, []));
        Assert.Throws<InvalidRequestException>(() => scheduler.Submit([1, 3000], 5, SamplingOptions.Greedy, []));
        Assert.Throws<InvalidRequestException>(() => scheduler.Submit(prompt, 5, new SamplingOptions { TopP = 0 }, []));
        // One running and one queued fill it: the third is refused.
        using var first = scheduler.Submit(prompt, 50, SamplingOptions.Greedy, []);
        using var second = scheduler.Submit(prompt, 50, SamplingOptions.Greedy, []);
        Assert.Throws<ServerBusyException>(() => scheduler.Submit(prompt, 5, SamplingOptions.Greedy, []));
    }

    [Fact]
    public async Task OnlyEmittableTokensAreGenerated()
    {
        using var text = fixture.Load();
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions());
        var sampling = new SamplingOptions { Temperature = 1.5f, Seed = 3 };
        var free = await ReadAll(scheduler.Submit(fixture.ChatPrompt(0), 64, sampling, []));
        Assert.Contains(free, id => id >= 40);   // unrestricted, this seed reaches beyond the limit below
        var limited = await ReadAll(scheduler.Submit(fixture.ChatPrompt(0), 64, sampling, [], emittableTokens: 40));
        Assert.Equal(64, limited.Length);
        Assert.All(limited, id => Assert.InRange(id, 0, 39));
    }

    [Fact]
    public async Task StateMemoryLimitMakesRequestsWaitTheirTurn()
    {
        using var text = fixture.Load();
        var prompt = fixture.ChatPrompt(4);
        long one = Inference.SequenceState.BytesFor(text.Model.Config, prompt.Count + 8, text.Model.Backend.ActivationType);
        using var scheduler = new BatchScheduler(text.Model, new ServingOptions { MaxStateBytes = one + one / 2 });
        int maxActive = 0;
        scheduler.StepCompleted = s => maxActive = Math.Max(maxActive, s.Sequences);
        var handles = Enumerable.Range(0, 3).Select(_ => scheduler.Submit(prompt, 8, SamplingOptions.Greedy, [])).ToArray();
        var results = await Task.WhenAll(handles.Select(ReadAll)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, maxActive);
        var expected = (await fixture.ReferenceAsync(prompt, 8)).Ids;
        Assert.All(results, r => Assert.Equal(expected.Take(r.Length), r));
        Assert.Equal(0, scheduler.ReservedStateBytes);
    }
}
