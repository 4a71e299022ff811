using System.Threading.Channels;
using MiniMaxSharp.Generation;

namespace MiniMaxSharp.Serving;

/// <summary>
/// One request inside a <see cref="BatchScheduler"/>: its generated token ids stream out through
/// <see cref="Tokens"/>; the channel completes when it finishes (then <see cref="FinishReason"/> is set),
/// fails with the step's exception, or fails with <see cref="OperationCanceledException"/> once cancelled.
/// Disposing it cancels the request, so its sequence state is freed before the next step.
/// </summary>
public sealed class GenerationHandle : IDisposable
{
    private readonly Channel<int> _tokens = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Action _wakeScheduler;
    private CancellationTokenRegistration _registration;
    private int _cancelled;

    internal GenerationHandle(int[] prompt, int maxNewTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokenIds, Action wakeScheduler)
    {
        Prompt = prompt;
        MaxNewTokens = maxNewTokens;
        Sampling = sampling;
        StopTokenIds = stopTokenIds;
        _wakeScheduler = wakeScheduler;
    }

    internal int[] Prompt { get; }
    internal SamplingOptions Sampling { get; }
    internal IReadOnlyCollection<int> StopTokenIds { get; }
    internal int? EmittableTokens { get; init; }

    public int PromptTokens => Prompt.Length;
    public int MaxNewTokens { get; }
    public ChannelReader<int> Tokens => _tokens.Reader;
    /// <summary>Set before <see cref="Tokens"/> completes normally.</summary>
    public FinishReason? FinishReason { get; private set; }
    public bool IsCancelled => Volatile.Read(ref _cancelled) != 0;

    internal void CancelWhen(CancellationToken token)
    {
        if (token.CanBeCanceled) _registration = token.Register(Cancel);
    }

    /// <summary>Stops the request; the scheduler frees its state before its next step.</summary>
    public void Cancel()
    {
        if (Interlocked.Exchange(ref _cancelled, 1) == 0) _wakeScheduler();
    }

    internal void Write(int token) => _tokens.Writer.TryWrite(token);

    internal void Finish(FinishReason reason)
    {
        FinishReason = reason;
        _tokens.Writer.TryComplete();
        _registration.Dispose();
    }

    internal void Fail(Exception error)
    {
        _tokens.Writer.TryComplete(error);
        _registration.Dispose();
    }

    public void Dispose() => Cancel();
}
