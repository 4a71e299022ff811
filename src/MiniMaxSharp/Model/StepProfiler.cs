using System.Diagnostics;
using MiniMaxSharp.Backends;

namespace MiniMaxSharp.Model;

/// <summary>Parts of a forward step that benchmarks time separately.</summary>
public enum StepPhase
{
    Embedding,
    Projections,
    LightningCore,
    SoftmaxCore,
    Norms,
    MixtureOfExperts,
    LmHead,
}

/// <summary>
/// Accumulates wall time per <see cref="StepPhase"/> when attached to a model (benchmarks only:
/// it synchronises the backend at every phase boundary).
/// </summary>
public sealed class StepProfiler(IComputeBackend backend)
{
    private readonly double[] _seconds = new double[Enum.GetValues<StepPhase>().Length];
    private long _start;

    public double Seconds(StepPhase phase) => _seconds[(int)phase];
    public double TotalSeconds => _seconds.Sum();
    public void Reset() => Array.Clear(_seconds);

    internal void Begin()
    {
        backend.Synchronize();
        _start = Stopwatch.GetTimestamp();
    }

    internal void End(StepPhase phase)
    {
        backend.Synchronize();
        _seconds[(int)phase] += Stopwatch.GetElapsedTime(_start).TotalSeconds;
    }
}
