namespace MiniMaxSharp.Backends;

/// <summary>What the matrix products of training compute in; weights, gradients and optimiser state stay float32 in both.</summary>
public enum TrainingPrecision
{
    /// <summary>Every product in float32: the exact reference mode (what the fixture gradients are checked against at 1e-6).</summary>
    F32,

    /// <summary>Matrix products with bf16 operands and float32 accumulation and results (tensor cores); float32 master
    /// weights, gradients and AdamW moments.</summary>
    BF16,
}

/// <summary>
/// A gradient backend that can run training's matrix products in reduced precision (<see cref="TrainingPrecision.BF16"/>).
/// Only training sets it; inference never does. The CPU backend does not implement it (float32 only).
/// </summary>
public interface IMixedPrecisionTraining
{
    /// <summary>The precision of the matrix products with float32 operands (float32 by default).</summary>
    TrainingPrecision ProductPrecision { get; set; }

    /// <summary>
    /// While the returned scope is open the backend may keep one reduced-precision copy of each float32 weight it
    /// multiplies with, made on first use: the caller promises not to change or free those weights inside the scope
    /// (one forward + backward). Disposing it drops the copies' validity.
    /// </summary>
    IDisposable WeightCopyScope();
}
