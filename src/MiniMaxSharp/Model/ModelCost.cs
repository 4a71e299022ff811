using MiniMaxSharp.Config;

namespace MiniMaxSharp.Model;

/// <summary>Parameter counts, FLOPs and bytes of a config: what benchmarks compare measured speed against.</summary>
public static class ModelCost
{
    /// <summary>Parameters of one layer's attention block (projections and norm).</summary>
    public static long AttentionParams(ModelConfig c, int layer) =>
        c.LayerKinds[layer] == LayerKind.Lightning
            ? 3L * c.AttentionWidth * c.HiddenSize + 2L * c.AttentionWidth * c.HiddenSize + c.AttentionWidth
            : 2L * c.AttentionWidth * c.HiddenSize + 2L * c.KvWidth * c.HiddenSize;

    public static long ExpertParams(ModelConfig c) => 3L * c.IntermediateSize * c.HiddenSize;

    /// <summary>Every parameter of the checkpoint.</summary>
    public static long TotalParams(ModelConfig c)
    {
        long p = (long)c.VocabSize * c.HiddenSize * (c.TieWordEmbeddings ? 1 : 2) + c.HiddenSize;
        for (int l = 0; l < c.NumLayers; l++)
            p += AttentionParams(c, l) + 2L * c.HiddenSize + (long)c.NumExperts * c.HiddenSize + c.NumExperts * ExpertParams(c);
        return p;
    }

    /// <summary>Parameters one token touches: everything but the unchosen experts and the other embedding rows.</summary>
    public static long ActiveParams(ModelConfig c)
    {
        long p = (long)c.VocabSize * c.HiddenSize + 2L * c.HiddenSize;   // lm_head, one embedding row, final norm
        for (int l = 0; l < c.NumLayers; l++)
            p += AttentionParams(c, l) + 2L * c.HiddenSize + (long)c.NumExperts * c.HiddenSize + c.ExpertsPerToken * ExpertParams(c);
        return p;
    }

    /// <summary>Matrix-product FLOPs per token excluding attention over the context (2 per multiply-add).</summary>
    public static double DenseFlopsPerToken(ModelConfig c) => 2.0 * (ActiveParams(c) - c.HiddenSize);

    /// <summary>
    /// FLOPs of the lightning core per token and head in the blocked form with blocks of m tokens:
    /// (Q⊙decay)·S and Kᵀ·V are 2d² each; Q·Kᵀ and A·V are causal inside the block, m/2 keys on average: 2·m·d together.
    /// </summary>
    public static double LightningFlopsPerToken(ModelConfig c, int blockLength) =>
        (double)c.NumHeads * (4.0 * c.HeadDim * c.HeadDim + 2.0 * blockLength * c.HeadDim);

    /// <summary>FLOPs of prefilling <paramref name="tokens"/> tokens from an empty sequence, attention included.</summary>
    public static double PrefillFlops(ModelConfig c, long tokens)
    {
        double dense = DenseFlopsPerToken(c) * tokens;
        int m = (int)Math.Min(c.BlockSize, tokens);
        double lightning = c.NumLightningLayers * LightningFlopsPerToken(c, m) * tokens;
        double softmax = c.NumSoftmaxLayers * 4.0 * c.NumHeads * c.HeadDim * (tokens * (tokens + 1) / 2.0);
        return dense + lightning + softmax;
    }

    /// <summary>Bytes of weights one decode step reads (active parameters at the stored element size).</summary>
    public static double DecodeWeightBytes(ModelConfig c, int bytesPerWeight) => (double)ActiveParams(c) * bytesPerWeight;
}
