using MiniMaxSharp.Backends;

namespace MiniMaxSharp.Training;

/// <summary>What one optimiser step did.</summary>
public sealed record StepReport(double CrossEntropy, double AuxLoss, int TargetCount, double GradientNorm, double LearningRate);

/// <summary>One optimiser step: gradient accumulation over micro-batches, clipping by global norm, AdamW.</summary>
public static class TrainingStep
{
    /// <summary>
    /// Zeroes the gradients, accumulates those of every micro-batch so that they equal the gradient of one batch
    /// holding them all (mean cross-entropy over all targets; the load-balancing loss averaged over micro-batches),
    /// clips them to <paramref name="maxGradientNorm"/> (≤ 0: no clipping) and updates the weights.
    /// </summary>
    public static StepReport Run(TrainingModel model, AdamW optimizer, IReadOnlyList<IReadOnlyList<TrainingExample>> microBatches,
        double learningRate, double maxGradientNorm, bool includeAuxLoss = false)
    {
        if (microBatches.Count == 0) throw new ArgumentException("a step needs at least one micro-batch");
        model.Profiler?.Restart();
        model.ZeroGradients();
        model.Profiler?.Mark(TrainingPhase.ZeroGradients);
        int total = microBatches.Sum(model.CountTargets);
        double ceSum = 0, aux = 0;
        // One weight-copy scope over all micro-batches (each ForwardBackward nests its own in it): the weights change only
        // in the optimiser, so a bf16 product mode converts each weight once per step.
        using (var weightCopies = (model.Backend as IMixedPrecisionTraining)?.WeightCopyScope())
        {
            foreach (var mb in microBatches)
            {
                var r = model.ForwardBackward(mb, includeAuxLoss, total, 1f / microBatches.Count);
                ceSum += r.CrossEntropy * r.TargetCount;
                aux += r.AuxLoss / microBatches.Count;
            }
        }
        double norm = GradientClipping.ClipByGlobalNorm(model, maxGradientNorm);
        model.Profiler?.Mark(TrainingPhase.GradientNorm);
        optimizer.Step(learningRate);
        model.Profiler?.Mark(TrainingPhase.AdamW);
        return new StepReport(ceSum / total, aux, total, norm, learningRate);
    }
}

/// <summary>Clipping of all gradients together by their global L2 norm.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales every gradient by maxNorm / (norm + 1e-6) when the global norm exceeds <paramref name="maxNorm"/>
    /// (as PyTorch's clip_grad_norm_); maxNorm ≤ 0 leaves them. Returns the norm before clipping.
    /// </summary>
    public static double ClipByGlobalNorm(TrainingModel model, double maxNorm)
    {
        var ops = (IGradientBackend)model.Backend;
        var gradients = TrainableWeights.Named(model.Gradients).Select(p => p.Tensor).ToArray();
        var sums = new double[gradients.Length];
        ops.SumsOfSquares(gradients, sums);
        double total = 0;
        foreach (double sum in sums) total += sum;   // in tensor order, as one sum per tensor added up
        double norm = Math.Sqrt(total);
        if (!double.IsFinite(norm)) throw new ArithmeticException($"the gradient norm is {norm}: the loss diverged or the input is invalid");
        if (maxNorm > 0 && norm > maxNorm)
        {
            float factor = (float)(maxNorm / (norm + 1e-6));
            foreach (var g in gradients) model.Backend.ScaleAdd(g, factor, g, 0f, g);
        }
        return norm;
    }
}
