namespace MiniMaxSharp.Generation;

/// <summary>
/// How the next token is chosen from the logits, applied in Hugging Face's order: repetition penalty,
/// (OpenAI's frequency and presence penalties), temperature, top-k, top-p, min-p, then a draw.
/// Temperature 0 means greedy (argmax, after the penalties).
/// </summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 1f;
    /// <summary>Keep the k most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p; 1 disables.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens less likely than min_p × the most likely one; 0 disables.</summary>
    public float MinP { get; init; }
    /// <summary>Divides positive (multiplies negative) logits of tokens already seen; 1 disables.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI's frequency penalty: subtracts penalty × (times the token was generated so far) from its logit; 0 disables.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI's presence penalty: subtracts penalty from the logit of every token generated at least once; 0 disables.</summary>
    public float PresencePenalty { get; init; }
    public int? Seed { get; init; }

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0f };

    public bool IsGreedy => Temperature == 0f;

    /// <summary>Greedy without penalties: the choice is the argmax of the logits alone, which a backend may make on the
    /// device (<see cref="Model.MiniMaxModel.ForwardGreedy"/>).</summary>
    public bool IsPlainGreedy => IsGreedy && RepetitionPenalty == 1f && FrequencyPenalty == 0f && PresencePenalty == 0f;

    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), $"temperature must be >= 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), $"top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), $"top-p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentOutOfRangeException(nameof(MinP), $"min-p must be in [0, 1], got {MinP}");
        if (!(RepetitionPenalty > 0)) throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), $"repetition penalty must be > 0, got {RepetitionPenalty}");
        // OpenAI's range for both penalties.
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw new ArgumentOutOfRangeException(nameof(FrequencyPenalty), $"frequency penalty must be in [-2, 2], got {FrequencyPenalty}");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw new ArgumentOutOfRangeException(nameof(PresencePenalty), $"presence penalty must be in [-2, 2], got {PresencePenalty}");
    }
}

/// <summary>What to generate and when to stop.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>Generation stops after emitting one of these (it is yielded).</summary>
    public IReadOnlyCollection<int> StopTokenIds { get; init; } = [];
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;
    /// <summary>Prompt tokens per prefill step (bounds activation memory).</summary>
    public int PrefillChunk { get; init; } = 512;
    /// <summary>Most tokens (prompt + generated) the sequence may hold; null = the model's max_position_embeddings.</summary>
    public int? MaxContextTokens { get; init; }
}
