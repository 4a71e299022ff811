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
        // Plain greedy on a backend that chooses tokens on the device: only the chosen ids come back, and the decode
        // steps run pipelined (GreedyDecodePipeline); the same tokens as the host path below.
        bool onDevice = options.Sampling.IsPlainGreedy && model.HasDeviceGreedy;
        float[] logits = [];
        int next = -1;
        for (int at = 0; at < ids.Length; at += options.PrefillChunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(options.PrefillChunk, ids.Length - at);
            bool last = at + n == ids.Length;
            if (last && onDevice) next = model.ForwardGreedy([seq], [ids.AsMemory(at, n)])[0];
            else logits = model.Forward([seq], [ids.AsMemory(at, n)], last ? LogitsSelection.LastPerSequence : LogitsSelection.None);
            await Task.Yield();
        }
        if (options.MaxNewTokens == 0) yield break;
        if (onDevice)
        {
            yield return next;
            if (options.StopTokenIds.Contains(next) || options.MaxNewTokens == 1 || seq.Length >= capacity) yield break;
            using var pipeline = model.StartGreedyDecode([seq], [next], options.MaxNewTokens - 1, chosen => options.StopTokenIds.Contains(chosen[0]));
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (pipeline.Next() is not { } chosen) yield break;
                yield return chosen[0];
                await Task.Yield();
            }
        }
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            next = sampler.Sample(logits, seen);
            seen.Add(next);
            yield return next;
            if (options.StopTokenIds.Contains(next) || produced + 1 == options.MaxNewTokens || seq.Length >= capacity) yield break;
            logits = model.Forward([seq], [new[] { next }], LogitsSelection.LastPerSequence);
            await Task.Yield();
        }
    }
}
