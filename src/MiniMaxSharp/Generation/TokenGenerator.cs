using System.Runtime.CompilerServices;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Generation;

/// <summary>
/// Single-sequence generation: chunked prefill of the prompt, then one decode step per token,
/// streamed as it is produced. Token ids in, token ids out.
/// </summary>
public static class TokenGenerator
{
    public static async IAsyncEnumerable<int> GenerateAsync(MiniMaxModel model, IReadOnlyList<int> prompt,
        GenerationOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty");
        if (options.MaxNewTokens < 0) throw new ArgumentOutOfRangeException(nameof(options), "max new tokens must be >= 0");
        if (options.PrefillChunk <= 0) throw new ArgumentOutOfRangeException(nameof(options), "prefill chunk must be positive");
        int limit = options.MaxContextTokens ?? model.Config.MaxPositionEmbeddings;
        if (prompt.Count > limit)
            throw new ContextLimitException($"the prompt has {prompt.Count} tokens; the context limit is {limit}");
        int capacity = (int)Math.Min(limit, (long)prompt.Count + options.MaxNewTokens);
        var sampler = new Sampler(options.Sampling);
        var seen = new HashSet<int>(prompt);
        MemoryPlan.CheckFits(model, 1, capacity, Math.Min(options.PrefillChunk, Math.Max(prompt.Count, 1)));
        using var seq = model.CreateSequence(capacity);

        var ids = prompt.ToArray();
        float[] logits = [];
        for (int at = 0; at < ids.Length; at += options.PrefillChunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(options.PrefillChunk, ids.Length - at);
            bool last = at + n == ids.Length;
            logits = model.Forward([seq], [ids.AsMemory(at, n)], last ? LogitsSelection.LastPerSequence : LogitsSelection.None);
            await Task.Yield();
        }
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int next = sampler.Sample(logits, seen);
            seen.Add(next);
            yield return next;
            if (options.StopTokenIds.Contains(next) || produced + 1 == options.MaxNewTokens || seq.Length >= capacity) yield break;
            logits = model.Forward([seq], [new[] { next }], LogitsSelection.LastPerSequence);
            await Task.Yield();
        }
    }
}
