namespace MiniMaxSharp.Backends;

/// <summary>
/// Which recorded step a graph serves: the model that runs it (<paramref name="Owner"/>, compared by
/// reference), a shape number the model chooses (e.g. the number of sequences of a decode step) and a variant
/// for steps of one shape that issue different work (e.g. logits out, or token ids chosen on the device).
/// </summary>
public readonly record struct StepGraphKey(object Owner, int Shape, int Variant = 0);

/// <summary>How many steps ran as a replayed graph, as a freshly captured graph, or eagerly (warm-up steps
/// and fallbacks); <see cref="Fallbacks"/> of the eager ones are steps whose capture or replay failed,
/// the last of them for the reason <see cref="LastFallback"/>.</summary>
public readonly record struct StepGraphCounters(long Replayed, long Captured, long Eager, long Fallbacks, string? LastFallback)
{
    public StepGraphCounters Since(StepGraphCounters earlier) =>
        new(Replayed - earlier.Replayed, Captured - earlier.Captured, Eager - earlier.Eager, Fallbacks - earlier.Fallbacks,
            Fallbacks > earlier.Fallbacks ? LastFallback : null);

    public override string ToString() =>
        $"replayed {Replayed}, captured {Captured}, eager {Eager}" + (Fallbacks == 0 ? "" : $" ({Fallbacks} fallbacks, the last: {LastFallback})");
}

/// <summary>
/// Optional backend capability: a step's ops recorded once and then replayed as one unit (CUDA graphs).
/// The caller runs the step's host code between <see cref="BeginStep"/> and <see cref="EndStep"/> exactly
/// as it would eagerly. While a step is recorded or replayed the backend launches nothing on its own, so a
/// step that cannot be finished that way (<see cref="EndStep"/> returns false, or any exception, after
/// which the caller calls <see cref="CancelStep"/>) has had no effect and the caller simply runs it again
/// eagerly. A step between BeginStep and EndStep must not read results on the host (no Download).
/// </summary>
public interface IStepGraphs
{
    /// <summary>False turns graphs off: every BeginStep returns false.</summary>
    bool StepGraphsEnabled { get; set; }

    StepGraphCounters StepGraphCounters { get; }

    /// <summary>True: the step's ops are recorded or checked against a recording until EndStep or
    /// CancelStep. False: run the step eagerly (graphs off, a warm-up step, or a key given up on).</summary>
    bool BeginStep(StepGraphKey key);

    /// <summary>True: the whole step has been issued (as a graph). False: nothing was issued; run the step again eagerly.</summary>
    bool EndStep();

    /// <summary>Leaves a step begun by BeginStep after an exception (<paramref name="reason"/>: its message); nothing of it was issued.</summary>
    void CancelStep(string reason);

    /// <summary>Releases the graphs recorded for <paramref name="owner"/> (a model being disposed).</summary>
    void ForgetStepGraphs(object owner);

    // ---- held steps: a step's host code run ahead, while the previous step still runs, and issued later ----

    /// <summary>Begins a step that <see cref="HoldStep"/> keeps instead of issuing: only when the step would replay a
    /// recording. False (graphs off, the key not yet recorded, given up, another step open): nothing happened, not even
    /// in the counters, and the step is later run the ordinary way. After true the caller runs the step's host code,
    /// then calls HoldStep, or CancelStep after an exception.</summary>
    bool BeginHeldStep(StepGraphKey key) => false;

    /// <summary>Ends a step begun by <see cref="BeginHeldStep"/> without issuing anything: true when it matched its
    /// recording and is held for <see cref="LaunchHeldStep"/> (one at a time); false when nothing is held.</summary>
    bool HoldStep() => false;

    /// <summary>Issues the held step: true when it was still valid, i.e. nothing was issued, allocated, freed or
    /// copied since HoldStep; false when nothing was issued (the caller runs the step the ordinary way). Either way
    /// nothing stays held.</summary>
    bool LaunchHeldStep() => false;

    /// <summary>Drops the held step, if any; it was never issued.</summary>
    void DiscardHeldStep()
    {
    }
}

/// <summary>Thrown by a backend when an op inside a recorded or replayed step cannot be part of a graph
/// (a host round trip, an allocation, a synchronisation); the step is then run eagerly.</summary>
public sealed class StepGraphAbortedException(string reason) : Exception($"step graph aborted: {reason}")
{
    public string Reason { get; } = reason;
}
