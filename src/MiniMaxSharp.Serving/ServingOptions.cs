namespace MiniMaxSharp.Serving;

/// <summary>Limits and batching knobs of a <see cref="BatchScheduler"/>.</summary>
public sealed record ServingOptions
{
    /// <summary>Sequences decoded together; further requests wait in the queue.</summary>
    public int MaxConcurrentSequences { get; init; } = 32;
    /// <summary>Requests that may wait for a free sequence; beyond it a request is refused (<see cref="ServerBusyException"/>).</summary>
    public int MaxQueuedRequests { get; init; } = 64;
    /// <summary>Most prompt tokens one request feeds in one step (a long prompt is prefilled over several steps).</summary>
    public int PrefillChunk { get; init; } = 256;
    /// <summary>Most tokens in one step: decode tokens always go in, prefill chunks fill what is left, so one long prompt does not stall the others.</summary>
    public int StepTokenBudget { get; init; } = 512;
    /// <summary>Most tokens (prompt + max new tokens) a request may hold; null = the model's max_position_embeddings.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Largest max_tokens a request may ask for.</summary>
    public int MaxNewTokens { get; init; } = 4096;
    /// <summary>Most bytes all sequence states (lightning states + KV caches at full length) may reserve together.</summary>
    public long MaxStateBytes { get; init; } = 8L << 30;

    public void Validate()
    {
        if (MaxConcurrentSequences < 1) throw new ArgumentOutOfRangeException(nameof(MaxConcurrentSequences), $"max concurrent sequences must be >= 1, got {MaxConcurrentSequences}");
        if (MaxQueuedRequests < 0) throw new ArgumentOutOfRangeException(nameof(MaxQueuedRequests), $"queue length must be >= 0, got {MaxQueuedRequests}");
        if (PrefillChunk < 1) throw new ArgumentOutOfRangeException(nameof(PrefillChunk), $"prefill chunk must be >= 1, got {PrefillChunk}");
        if (StepTokenBudget < 1) throw new ArgumentOutOfRangeException(nameof(StepTokenBudget), $"step token budget must be >= 1, got {StepTokenBudget}");
        if (ContextLength is < 1) throw new ArgumentOutOfRangeException(nameof(ContextLength), $"context length must be >= 1, got {ContextLength}");
        if (MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), $"max new tokens must be >= 1, got {MaxNewTokens}");
        if (MaxStateBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxStateBytes), $"max state bytes must be >= 1, got {MaxStateBytes}");
    }
}

/// <summary>Why a request stopped producing tokens.</summary>
public enum FinishReason
{
    /// <summary>An end-of-sequence token or a stop string.</summary>
    Stop,
    /// <summary>max_tokens (or the context limit) reached.</summary>
    Length,
}

/// <summary>The queue is full: the server answers 429 (retry later).</summary>
public sealed class ServerBusyException(string message) : Exception(message);

/// <summary>A request the engine cannot run as asked (the server answers 400). <see cref="Param"/> names the field.</summary>
public sealed class InvalidRequestException(string message, string? param = null, string? code = null) : Exception(message)
{
    public string? Param { get; } = param;
    public string? Code { get; } = code;
}
