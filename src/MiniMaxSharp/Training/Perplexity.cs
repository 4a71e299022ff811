using MiniMaxSharp.Model;

namespace MiniMaxSharp.Training;

/// <summary>Negative log-likelihood of documents under a model, through the inference forward.</summary>
public static class Perplexity
{
    /// <summary>
    /// Scores every document in windows of at most <paramref name="window"/> tokens, each window a fresh sequence
    /// (no state carried over): position t predicts token t+1 of the same window, so the first token of a window
    /// is context only. Returns the summed NLL (natural log, float64) and the number of scored tokens.
    /// </summary>
    public static (double NllSum, long Tokens) Score(MiniMaxModel model, IEnumerable<int[]> documents, int window)
    {
        if (window < 2) throw new ArgumentOutOfRangeException(nameof(window), window, "a window needs at least 2 tokens");
        int V = model.Config.VocabSize;
        double sum = 0;
        long count = 0;
        foreach (var doc in documents)
        {
            for (int at = 0; at + 1 < doc.Length; at += window)
            {
                int n = Math.Min(window, doc.Length - at);
                if (n < 2) break;
                using var sequence = model.CreateSequence(n);
                var logits = model.Forward([sequence], [doc.AsMemory(at, n)], LogitsSelection.All);
                for (int t = 0; t + 1 < n; t++)
                {
                    var row = logits.AsSpan(t * V, V);
                    int target = doc[at + t + 1];
                    if ((uint)target >= (uint)V) throw new ArgumentException($"token id {target} is outside the model's vocabulary of {V}");
                    double max = double.NegativeInfinity;
                    foreach (float v in row) max = Math.Max(max, v);
                    double z = 0;
                    foreach (float v in row) z += Math.Exp(v - max);
                    sum += max + Math.Log(z) - row[target];
                    count++;
                }
            }
        }
        return (sum, count);
    }
}
