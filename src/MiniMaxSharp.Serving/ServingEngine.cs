using System.Diagnostics;
using System.Runtime.CompilerServices;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Templates;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Serving;

/// <summary>What to generate for one text request.</summary>
public sealed record TextRequest
{
    public int MaxTokens { get; init; } = 256;
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;
    /// <summary>Stop strings: the text is cut before the first one and the request finishes with <see cref="FinishReason.Stop"/>.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];
    /// <summary>Generate max_tokens tokens whatever the model says (benchmarks; vLLM's ignore_eos).</summary>
    public bool IgnoreEos { get; init; }
}

/// <summary>A piece of generated text. The last chunk of a stream carries <see cref="Finish"/>.</summary>
public sealed record TextChunk(string Text, FinishReason? Finish, int PromptTokens, int CompletionTokens);

/// <summary>
/// A <see cref="TextModel"/> behind a <see cref="BatchScheduler"/>: prompts in, streamed text out, with stop
/// strings, usage and metrics. The server and the <see cref="MiniMaxChatClient"/> both run on it.
/// </summary>
public sealed class ServingEngine : IDisposable
{
    public ServingEngine(TextModel textModel, ServingOptions options, string modelId, ServingMetrics? metrics = null)
    {
        TextModel = textModel;
        ModelId = modelId;
        Metrics = metrics ?? new ServingMetrics();
        Scheduler = new BatchScheduler(textModel.Model, options) { StepCompleted = Metrics.StepCompleted };
    }

    public TextModel TextModel { get; }
    public BatchScheduler Scheduler { get; }
    public ServingMetrics Metrics { get; }
    public string ModelId { get; }

    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages)
    {
        try
        {
            return TextModel.EncodeChat(messages);
        }
        catch (TemplateException e)
        {
            throw new InvalidRequestException($"the chat template rejected the messages: {e.Message}", "messages");
        }
    }

    /// <summary>Queues a request now (so a full queue or an invalid request throws here, before any output);
    /// the returned stream reads its text.</summary>
    public TextStream Start(IReadOnlyList<int> prompt, TextRequest request, CancellationToken cancellationToken = default)
    {
        foreach (var stop in request.StopSequences)
            if (string.IsNullOrEmpty(stop)) throw new InvalidRequestException("a stop sequence is empty", "stop");
        GenerationHandle handle;
        try
        {
            handle = Scheduler.Submit(prompt, request.MaxTokens, request.Sampling, request.IgnoreEos ? [] : TextModel.StopTokenIds,
                cancellationToken, emittableTokens: TextModel.Tokenizer.VocabSize);
        }
        catch (ServerBusyException)
        {
            Metrics.RequestRejected();
            throw;
        }
        Metrics.RequestStarted(prompt.Count);
        return new TextStream(this, handle, request.StopSequences);
    }

    public void Dispose() => Scheduler.Dispose();
}

/// <summary>The text of one running request. Read it once; disposing it (or cancelling the read) cancels the request.</summary>
public sealed class TextStream : IDisposable
{
    private readonly ServingEngine _engine;
    private readonly GenerationHandle _handle;
    private readonly IReadOnlyList<string> _stops;
    private readonly long _started = Stopwatch.GetTimestamp();

    internal TextStream(ServingEngine engine, GenerationHandle handle, IReadOnlyList<string> stops)
    {
        _engine = engine;
        _handle = handle;
        _stops = stops;
    }

    public int PromptTokens => _handle.PromptTokens;

    public async IAsyncEnumerable<TextChunk> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var metrics = _engine.Metrics;
        var decoder = _engine.TextModel.Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        var held = new StopStringFilter(_stops);
        int produced = 0;
        long last = _started;
        string outcome = "cancelled";
        try
        {
            var reader = _handle.Tokens;
            while (await reader.WaitToReadAsync(cancellationToken))
            {
                while (reader.TryRead(out int id))
                {
                    long now = Stopwatch.GetTimestamp();
                    if (produced == 0) metrics.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(_started, now).TotalSeconds);
                    else metrics.InterTokenLatency.Observe(Stopwatch.GetElapsedTime(last, now).TotalSeconds);
                    last = now;
                    produced++;
                    metrics.TokenGenerated();
                    var (text, stopped) = held.Push(decoder.Push(id));
                    if (stopped)
                    {
                        _handle.Cancel();
                        outcome = "stop";
                        yield return new TextChunk(text, FinishReason.Stop, PromptTokens, produced);
                        yield break;
                    }
                    if (text.Length > 0) yield return new TextChunk(text, null, PromptTokens, produced);
                }
            }
            var (tail, stoppedAtEnd) = held.Push(decoder.Flush());
            var reason = stoppedAtEnd ? FinishReason.Stop : _handle.FinishReason ?? FinishReason.Length;
            if (!stoppedAtEnd) tail += held.Flush();
            outcome = reason == FinishReason.Stop ? "stop" : "length";
            yield return new TextChunk(tail, reason, PromptTokens, produced);
        }
        finally
        {
            _handle.Cancel();   // no-op once finished; frees the sequence when the reader stops early
            metrics.RequestFinished(outcome);
        }
    }

    public void Dispose() => _handle.Cancel();
}

/// <summary>
/// Cuts streamed text before the first stop string. Text that could still be the start of a stop string is
/// held back until the next piece decides it, so a stop string split across tokens is found too.
/// </summary>
internal sealed class StopStringFilter(IReadOnlyList<string> stops)
{
    private string _pending = "";

    /// <summary>The text now safe to emit, and whether a stop string was found (the text is then cut before it).</summary>
    public (string Text, bool Stopped) Push(string piece)
    {
        if (stops.Count == 0) return (piece, false);
        _pending += piece;
        int cut = -1;
        foreach (var stop in stops)
        {
            int at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            string before = _pending[..cut];
            _pending = "";
            return (before, true);
        }
        int keep = 0;
        foreach (var stop in stops)
            for (int len = Math.Min(stop.Length - 1, _pending.Length); len > keep; len--)
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    keep = len;
                    break;
                }
        string safe = _pending[..^keep];
        _pending = _pending[^keep..];
        return (safe, false);
    }

    /// <summary>What is still held back when the text ends without a stop string.</summary>
    public string Flush()
    {
        string rest = _pending;
        _pending = "";
        return rest;
    }
}
