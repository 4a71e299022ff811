using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Model;

/// <summary>Not enough device memory for a planned run; the message gives the plan and what is free.</summary>
public sealed class InsufficientDeviceMemoryException(string message) : Exception(message);

/// <summary>
/// The device memory a run needs, worked out before it starts: weights (already loaded), the state of every
/// sequence at its longest (float32 lightning states, which never grow, plus KV caches at the full context), and
/// the workspace of the largest step (the model's activation buffers, the logits, and the backend's scratch:
/// MoE grouping and expert activations, split-attention partials, lightning chunk states). The workspace is an
/// upper estimate of the buffers our ops create; a margin covers the libraries' own workspaces (cuBLAS).
/// </summary>
public sealed record MemoryPlan(long WeightBytes, long StateBytes, long WorkspaceBytes, int Sequences, long TokensPerSequence, int StepTokens)
{
    /// <summary>Kept free for cuBLAS's workspace, kernel images and fragmentation.</summary>
    public const long Margin = 512L << 20;

    public long TotalBytes => WeightBytes + StateBytes + WorkspaceBytes + Margin;

    /// <param name="weightBytes">Bytes of the loaded weights (<see cref="ModelWeights.AllTensors"/>).</param>
    /// <param name="sequences">Sequences held at once (batch size).</param>
    /// <param name="tokensPerSequence">The longest context of a sequence (prompt plus generated tokens).</param>
    /// <param name="stepTokens">The most tokens one forward step carries (prefill chunk × sequences, or the batch for decode).</param>
    public static MemoryPlan For(ModelConfig c, long weightBytes, int sequences, long tokensPerSequence, int stepTokens,
        DType activationType, DType residualType)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(weightBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokensPerSequence, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(stepTokens, 1);
        long states = sequences * SequenceState.BytesFor(c, tokensPerSequence, activationType);
        return new MemoryPlan(weightBytes, states, WorkspaceFor(c, sequences, tokensPerSequence, stepTokens, activationType, residualType),
            sequences, tokensPerSequence, stepTokens);
    }

    /// <summary>
    /// On a backend with a fixed memory (<see cref="IDeviceMemory"/>): the plan of a run of <paramref name="model"/>,
    /// checked against the memory free now (throws <see cref="InsufficientDeviceMemoryException"/>). Null elsewhere.
    /// <paramref name="stateBytes"/> replaces the computed sequence states when the caller budgets them itself (serving).
    /// </summary>
    public static MemoryPlan? CheckFits(MiniMaxModel model, int sequences, long tokensPerSequence, int stepTokens, long? stateBytes = null)
    {
        if (model.Backend is not IDeviceMemory memory) return null;
        long weightBytes = model.Weights.AllTensors().Sum(t => t.ByteLength);
        var plan = For(model.Config, weightBytes, sequences, tokensPerSequence, stepTokens, model.Backend.ActivationType, model.Backend.ResidualType);
        if (stateBytes is long budget) plan = plan with { StateBytes = budget };
        plan.EnsureFits(memory.MemoryInfo().Free, model.Backend.Name);
        return plan;
    }

    /// <summary>The largest step's buffers (see the class summary); all terms in bytes.</summary>
    private static long WorkspaceFor(ModelConfig c, int sequences, long context, long n, DType activationType, DType residualType)
    {
        long a = DTypeInfo.SizeOf(activationType), r = DTypeInfo.SizeOf(residualType);
        // MiniMaxModel's workspace: hidden + branch (residual type), normed input, attention output and gate, qkv, keys, values.
        long model = n * (2 * c.HiddenSize * r + c.HiddenSize * a + 2L * c.AttentionWidth * a
            + (c.NumLightningLayers > 0 ? 3L * c.AttentionWidth * a : 0) + (c.NumSoftmaxLayers > 0 ? 2L * c.KvWidth * a : 0));
        long logits = (long)Math.Max(sequences, 1) * c.VocabSize * 4;
        // MoE: router logits, per-pair ids/weights/slots, gathered inputs (twice when converted), gate and up activations, float32 outputs.
        long pairs = n * c.ExpertsPerToken;
        long moe = n * c.NumExperts * 4 + pairs * (16 + 2L * c.HiddenSize * a + 2L * c.IntermediateSize * 4 + c.HiddenSize * 4L);
        // Split attention over the context (decode): float32 partial outputs and softmax statistics per split of 256 keys.
        long splits = Math.Min((context + 255) / 256, 1024);
        long attention = c.NumSoftmaxLayers > 0 ? Math.Min(n, sequences) * c.NumHeads * splits * (c.HeadDim + 2L) * 4 : 0;
        // Lightning chunk states (CudaBackend.BuildLightningStatesPlan): up to two pieces per multiprocessor of the largest
        // GPUs, a marker per chunk start (up to two chunks per multiprocessor) and one per (sequence, head).
        long lightning = c.NumLightningLayers > 0 ? (4L * 160 + (long)sequences * c.NumHeads) * c.HeadDim * c.HeadDim * 4 : 0;
        return model + logits + moe + attention + lightning;
    }

    /// <summary>Throws <see cref="InsufficientDeviceMemoryException"/> naming every part of the plan when the remaining
    /// parts (everything but the weights, which <paramref name="freeBytes"/> already excludes) do not fit.</summary>
    public void EnsureFits(long freeBytes, string device)
    {
        long needed = TotalBytes - WeightBytes;
        if (needed > freeBytes)
            throw new InsufficientDeviceMemoryException(
                $"not enough memory on {device}: {Sequences} sequence(s) of up to {TokensPerSequence} tokens need {Gib(needed)} beyond the loaded weights "
                + $"({Describe()}), but {Gib(freeBytes)} is free; use fewer or shorter sequences, or a smaller --prefill-chunk");
    }

    public string Describe() =>
        $"weights {Gib(WeightBytes)}, sequence states {Gib(StateBytes)}, workspace for {StepTokens} tokens per step {Gib(WorkspaceBytes)}, margin {Gib(Margin)}";

    private static string Gib(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1L << 20):F1} MiB";
}
