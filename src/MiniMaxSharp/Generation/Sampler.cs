using System.Numerics.Tensors;

namespace MiniMaxSharp.Generation;

/// <summary>Turns one row of logits into a token id (see <see cref="SamplingOptions"/>). Not thread-safe.</summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly Random _rng;
    private float[] _work = [];
    private int[] _order = [];
    // Times each token was returned by this sampler (OpenAI's penalties count generated tokens only, not the prompt).
    private readonly Dictionary<int, int> _generated = [];

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _rng = options.Seed is int s ? new Random(s) : new Random();
    }

    /// <summary>Chooses the next token. <paramref name="logits"/> is modified (penalties, filtering).
    /// The choice is counted for the frequency and presence penalties of later calls.</summary>
    public int Sample(Span<float> logits, IReadOnlyCollection<int> seen)
    {
        int id = Choose(logits, seen);
        _generated[id] = _generated.GetValueOrDefault(id) + 1;
        return id;
    }

    private int Choose(Span<float> logits, IReadOnlyCollection<int> seen)
    {
        var o = _options;
        if (o.RepetitionPenalty != 1f)
            foreach (int id in seen)
                if ((uint)id < (uint)logits.Length)
                    logits[id] = logits[id] < 0 ? logits[id] * o.RepetitionPenalty : logits[id] / o.RepetitionPenalty;
        if (o.FrequencyPenalty != 0f || o.PresencePenalty != 0f)
            foreach (var (id, count) in _generated)
                if ((uint)id < (uint)logits.Length)
                    logits[id] -= count * o.FrequencyPenalty + o.PresencePenalty;
        if (o.IsGreedy) return TensorPrimitives.IndexOfMax(logits);

        TensorPrimitives.Divide(logits, o.Temperature, logits);
        if (o.TopK > 0 && o.TopK < logits.Length)
        {
            float kth = KthLargest(logits, o.TopK);
            foreach (ref float v in logits)
                if (v < kth) v = float.NegativeInfinity;
        }
        // Probabilities of what is left.
        TensorPrimitives.SoftMax(logits, logits);
        if (o.TopP < 1f) ApplyTopP(logits, o.TopP);
        if (o.MinP > 0f)
        {
            float threshold = o.MinP * TensorPrimitives.Max(logits);
            foreach (ref float p in logits)
                if (p < threshold) p = 0f;
        }
        double total = 0;
        foreach (float p in logits) total += p;
        double u = _rng.NextDouble() * total, acc = 0;
        int last = -1;
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] <= 0) continue;
            last = i;
            acc += logits[i];
            if (acc > u) return i;
        }
        return last >= 0 ? last : TensorPrimitives.IndexOfMax(logits);
    }

    private float KthLargest(ReadOnlySpan<float> values, int k)
    {
        if (_work.Length < values.Length) _work = new float[values.Length];
        var w = _work.AsSpan(0, values.Length);
        values.CopyTo(w);
        w.Sort();
        return w[values.Length - k];
    }

    /// <summary>Zeroes every token outside the smallest most-likely set whose mass reaches topP (at least one kept).</summary>
    private void ApplyTopP(Span<float> probs, float topP)
    {
        int n = probs.Length;
        if (_order.Length < n) _order = new int[n];
        if (_work.Length < n) _work = new float[n];
        var order = _order.AsSpan(0, n);
        var keys = _work.AsSpan(0, n);
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
            keys[i] = -probs[i];
        }
        keys.Sort(order);   // descending probability
        double cum = 0;
        int keep = 0;
        while (keep < n)
        {
            cum += probs[order[keep]];
            keep++;
            if (cum >= topP) break;
        }
        for (int i = keep; i < n; i++) probs[order[i]] = 0f;
    }
}
