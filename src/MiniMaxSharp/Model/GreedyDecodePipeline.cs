using System.Diagnostics;
using MiniMaxSharp.Inference;

namespace MiniMaxSharp.Model;

/// <summary>
/// Greedy decode with the token choice on the device and the host one step ahead of the GPU
/// (<see cref="MiniMaxModel.StartGreedyDecode"/>). Each step embeds the ids the previous step chose (on the device)
/// and ends with the argmax into the same buffer; its 4 bytes per sequence are copied back behind it. While step n
/// runs, the host runs step n+1's host code as a held graph replay (nothing issued, no sequence changed), then waits
/// for step n's ids; only when they do not end the decode (stop rule, step limit, a full sequence) is step n+1
/// issued, so no step is ever run that the decode did not need. Without step graphs (or before a step was
/// recorded) each step's host code simply runs when the step is issued.
/// </summary>
public sealed class GreedyDecodePipeline : IDisposable
{
    private readonly MiniMaxModel _model;
    private readonly SequenceState[] _sequences;
    private readonly int _maxSteps;
    private readonly Func<int[], bool>? _stopsAfter;
    private bool _inFlight, _held, _ended, _disposed;
    private long _aheadTicks, _waitTicks;

    internal GreedyDecodePipeline(MiniMaxModel model, SequenceState[] sequences, int maxSteps, Func<int[], bool>? stopsAfter)
    {
        _model = model;
        _sequences = sequences;
        _maxSteps = maxSteps;
        _stopsAfter = stopsAfter;
    }

    /// <summary>Steps issued so far.</summary>
    public int StepsIssued { get; private set; }

    /// <summary>Steps issued from host code that ran while the previous step was on the GPU (held graph replays).</summary>
    public int HeldLaunches { get; private set; }

    /// <summary>Host time spent running the next step's host code ahead (overlapped with the GPU).</summary>
    public TimeSpan AheadTime => Stopwatch.GetElapsedTime(0, _aheadTicks);

    /// <summary>Host time spent waiting for the chosen ids.</summary>
    public TimeSpan WaitTime => Stopwatch.GetElapsedTime(0, _waitTicks);

    /// <summary>The ids the next step chose, one per sequence in order; null once the decode has ended.</summary>
    public int[]? Next()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_inFlight)
        {
            if (_ended || !MayIssue())
            {
                End();
                return null;
            }
            Issue();
        }
        var ids = new int[_sequences.Length];
        long waitStart = Stopwatch.GetTimestamp();
        _inFlight = false;
        _model.FinishPipelinedIdsDownload(ids);
        _waitTicks += Stopwatch.GetTimestamp() - waitStart;
        if (_stopsAfter?.Invoke(ids) != true && MayIssue()) Issue();
        else End();
        return ids;
    }

    private bool MayIssue()
    {
        if (StepsIssued >= _maxSteps) return false;
        foreach (var s in _sequences)
            if (s.Length >= s.MaxTokens) return false;
        return true;
    }

    private void Issue()
    {
        bool held = _held;
        _held = false;
        if (_model.IssuePipelinedStep(_sequences, held)) HeldLaunches++;
        StepsIssued++;
        _model.StartPipelinedIdsDownload(_sequences.Length);
        _inFlight = true;
        // The next step's host code while this one runs; dropped unissued if the decode ends here.
        if (!MayIssue()) return;
        long start = Stopwatch.GetTimestamp();
        _held = _model.HoldPipelinedStep(_sequences);
        _aheadTicks += Stopwatch.GetTimestamp() - start;
    }

    private void End()
    {
        _ended = true;
        if (_held) _model.DiscardHeldStep();
        _held = false;
    }

    /// <summary>Ends the decode: a step still in flight is waited for (its ids are dropped), a held one is dropped.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (_inFlight) _model.FinishPipelinedIdsDownload(new int[_sequences.Length]);
            _inFlight = false;
            End();
        }
        finally
        {
            _model.PipelineEnded(this);
        }
    }
}
