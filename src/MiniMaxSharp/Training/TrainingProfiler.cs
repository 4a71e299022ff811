using System.Diagnostics;
using MiniMaxSharp.Backends;

namespace MiniMaxSharp.Training;

/// <summary>Parts of a training step that <c>bench-train --profile</c> times separately.</summary>
public enum TrainingPhase
{
    ForwardProjections,
    ForwardLightning,
    ForwardSoftmax,
    ForwardMoe,
    ForwardOther,
    LmHeadCrossEntropy,
    BackwardProjections,
    BackwardLightning,
    BackwardSoftmax,
    BackwardMoe,
    BackwardOther,
    ZeroGradients,
    GradientNorm,
    AdamW,
}

/// <summary>
/// Accumulates wall time per <see cref="TrainingPhase"/> when attached to a <see cref="TrainingModel"/> (benchmarks only:
/// it synchronises the backend at every phase boundary, which costs time of its own). <see cref="Mark"/> gives the time
/// since the previous mark (or <see cref="Restart"/>) to a phase.
/// </summary>
public sealed class TrainingProfiler(IComputeBackend backend)
{
    private readonly double[] _seconds = new double[Enum.GetValues<TrainingPhase>().Length];
    private long _last = Stopwatch.GetTimestamp();

    public double Seconds(TrainingPhase phase) => _seconds[(int)phase];
    public double TotalSeconds => _seconds.Sum();

    public void Reset() => Array.Clear(_seconds);

    /// <summary>Starts the next span now (after the queued work has finished).</summary>
    public void Restart()
    {
        backend.Synchronize();
        _last = Stopwatch.GetTimestamp();
    }

    /// <summary>Waits for the queued work and gives the time since the last mark to <paramref name="phase"/>.</summary>
    public void Mark(TrainingPhase phase)
    {
        backend.Synchronize();
        long now = Stopwatch.GetTimestamp();
        _seconds[(int)phase] += Stopwatch.GetElapsedTime(_last, now).TotalSeconds;
        _last = now;
    }
}
