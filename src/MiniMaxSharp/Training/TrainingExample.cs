namespace MiniMaxSharp.Training;

/// <summary>
/// One row of a training batch: token ids and labels of equal length, and optionally the lengths of the
/// documents packed into it (default: one document). Position t of a document is trained to predict
/// labels[t+1] of the same document (Hugging Face's shift); the last position of each document predicts
/// nothing, and a label of -100 is ignored. Every document starts at position 0 from a zero state.
/// </summary>
public sealed record TrainingExample(int[] InputIds, int[] Labels, int[]? DocumentLengths = null)
{
    public const int IgnoreIndex = Backends.IGradientBackend.IgnoredTarget;

    /// <summary>An example whose labels are its own ids (language modelling).</summary>
    public static TrainingExample FromIds(int[] ids, int[]? documentLengths = null) => new(ids, ids, documentLengths);
}

/// <summary>The loss of one batch: mean cross-entropy over the counted targets, and the load-balancing loss
/// (already times router_aux_loss_coef; 0 when off). <see cref="Total"/> is what the gradients are of.</summary>
public sealed record LossReport(double CrossEntropy, double AuxLoss, int TargetCount)
{
    public double Total => CrossEntropy + AuxLoss;
}
