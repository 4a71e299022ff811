using System.Diagnostics;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

// Steps as CUDA graphs ("record, then replay with verification"). A key's first step runs eagerly (kernel
// modules load, scratch buffers and pointer tables reach their size), its second is captured (the launches
// go into a stream capture and each op's arguments into a host staging buffer, then the graph is
// instantiated, the staged arguments copied up and the graph launched), and later steps are replays: the
// host code runs as before but launches nothing; each launch is compared with the capture (kernel, grid,
// block, shared memory, every argument) and the op arguments are staged again at the same offsets. When
// everything matched, one copy of the staged arguments and one graph launch run the step; otherwise
// nothing was issued, the model runs the step eagerly and the next step captures afresh.
// A replay may also be held (BeginHeldStep, HoldStep): its host code runs while the previous step is still on the
// GPU, and LaunchHeldStep issues it later, provided nothing else was issued in between. The staged arguments go up
// from pinned host memory, two buffers used in turn, each reused only after its previous copy has run.
public sealed unsafe partial class CudaBackend
{
    /// <summary>Consecutive failures (capture errors, replay mismatches, aborted steps) after which a key runs eagerly for good.</summary>
    private const int GraphFailureLimit = 3;
    private const int InitialGraphArgumentBytes = 64 * 1024;

    private readonly Dictionary<StepGraphKey, StepGraph> _graphs = [];
    private StepGraph? _graphStep;
    private ulong _graphArguments;
    private int _graphArgumentBytes;
    private long _replayed, _captured, _eager, _fallbacks;
    private string? _lastFallback;
    private nint[] _timingEvents = [];   // start, end, start, end, ... (one pair per timed graph launch)
    private int _timedLaunches;
    private bool _timing;
    private bool _holding;   // the open step was begun by BeginHeldStep
    private HeldStep? _held;
    private byte[] _heldStaged = [];
    private readonly nint[] _stagingPinned = new nint[2];
    private readonly int[] _stagingPinnedBytes = new int[2];
    private readonly nint[] _stagingCopied = new nint[2];   // an event after each buffer's last copy
    private int _stagingSlot;

    /// <summary>A replay whose host code ran ahead: its graph and exec, its staged argument bytes (in
    /// <see cref="_heldStaged"/>) and the issued-work count it is valid for.</summary>
    private sealed record HeldStep(StepGraph Graph, nint Exec, int StagedBytes, long IssuedWork);

    private sealed class StepGraph
    {
        public int Steps;
        public int Failures;
        public bool GivenUp;
        public nint Exec;
        public StepRecording? Recording;
    }

    /// <summary>On unless MINIMAXSHARP_CUDA_GRAPHS=0.</summary>
    public bool StepGraphsEnabled { get; set; } = Environment.GetEnvironmentVariable("MINIMAXSHARP_CUDA_GRAPHS") != "0";

    public StepGraphCounters StepGraphCounters => new(_replayed, _captured, _eager, _fallbacks, _lastFallback);

    /// <summary>The device buffer the graphs read their op arguments from.</summary>
    private ulong GraphArguments => _graphArguments;

    public bool BeginStep(StepGraphKey key)
    {
        if (!StepGraphsEnabled || _disposed || _graphStep is not null || _device.Graphs.Mode != StepGraphMode.Eager) return false;
        if (!_graphs.TryGetValue(key, out var g)) _graphs[key] = g = new StepGraph();
        if (g.GivenUp || g.Steps++ == 0)
        {
            _eager++;
            return false;
        }
        _device.MakeCurrent();
        if (g.Exec != 0 && g.Recording is { } recording)
        {
            _device.Graphs.BeginReplay(recording, _graphArgumentBytes);
            _graphStep = g;
            return true;
        }
        try
        {
            EnsureGraphArguments();
        }
        catch (OutOfMemoryException e)
        {
            Fail(g, e.Message);
            return false;
        }
        int r = cuStreamBeginCapture(_device.Stream, StreamCaptureModeRelaxed);
        if (r != Success)
        {
            Fail(g, $"cuStreamBeginCapture failed: {ErrorName(r)}");
            return false;
        }
        _device.Graphs.BeginCapture(_graphArgumentBytes);
        _graphStep = g;
        return true;
    }

    public bool EndStep()
    {
        var g = _graphStep;
        _graphStep = null;
        if (g is null) return false;
        var log = _device.Graphs;
        if (_holding)
        {
            _holding = false;
            log.Reset();
            throw new InvalidOperationException("a step begun by BeginHeldStep ends with HoldStep, not EndStep");
        }
        if (log.Mode == StepGraphMode.Capture)
        {
            var recording = log.EndCapture();
            int r = cuStreamEndCapture(_device.Stream, out nint graph);
            if (r != Success || graph == 0)
            {
                if (graph != 0) cuGraphDestroy(graph);
                Fail(g, $"cuStreamEndCapture failed: {ErrorName(r)}");
                return false;
            }
            r = cuGraphInstantiateWithFlags(out nint exec, graph, GraphInstantiateAutoFreeOnLaunch);
            cuGraphDestroy(graph);
            if (r != Success)
            {
                Fail(g, $"cuGraphInstantiateWithFlags failed: {ErrorName(r)}");
                return false;
            }
            DestroyExec(g);
            g.Exec = exec;
            g.Recording = recording;
            if (!LaunchGraph(g, log.Staged)) return false;
            _captured++;
            g.Failures = 0;
            return true;
        }
        if (log.Mode == StepGraphMode.Replay)
        {
            if (!log.EndReplay())
            {
                // Something the graph bakes in changed (a buffer moved, a grid grew): capture again next step.
                DestroyExec(g);
                Fail(g, log.Mismatch ?? "replay mismatch");
                return false;
            }
            if (!LaunchGraph(g, log.Staged)) return false;
            _replayed++;
            g.Failures = 0;
            return true;
        }
        return false;
    }

    public void CancelStep(string reason)
    {
        var g = _graphStep;
        _graphStep = null;
        bool holding = _holding;
        _holding = false;
        var log = _device.Graphs;
        bool capturing = log.Mode == StepGraphMode.Capture;
        log.Reset();
        if (capturing)
        {
            // Ends the (possibly invalidated) capture; nothing of it ran.
            cuStreamEndCapture(_device.Stream, out nint graph);
            if (graph != 0) cuGraphDestroy(graph);
        }
        if (g is null) return;
        DestroyExec(g);   // the next step captures afresh (and with a larger argument buffer if that was the reason)
        Fail(g, reason, countEager: !holding);   // a held step that failed is counted when the step itself runs
    }

    public bool BeginHeldStep(StepGraphKey key)
    {
        if (!StepGraphsEnabled || _disposed || _graphStep is not null || _device.Graphs.Mode != StepGraphMode.Eager) return false;
        if (!_graphs.TryGetValue(key, out var g) || g.GivenUp || g.Exec == 0 || g.Recording is not { } recording) return false;
        _held = null;
        _device.Graphs.BeginReplay(recording, _graphArgumentBytes);
        _graphStep = g;
        _holding = true;
        return true;
    }

    public bool HoldStep()
    {
        var g = _graphStep;
        bool holding = _holding;
        _graphStep = null;
        _holding = false;
        if (g is null) return false;
        var log = _device.Graphs;
        if (!holding)
        {
            log.Reset();
            throw new InvalidOperationException("only a step begun by BeginHeldStep can be held");
        }
        if (!log.EndReplay())
        {
            DestroyExec(g);
            Fail(g, log.Mismatch ?? "replay mismatch", countEager: false);
            return false;
        }
        var staged = log.Staged;
        if (_heldStaged.Length < staged.Length) _heldStaged = new byte[staged.Length];
        staged.CopyTo(_heldStaged);
        _held = new HeldStep(g, g.Exec, staged.Length, log.IssuedWork);
        return true;
    }

    public bool LaunchHeldStep()
    {
        var h = _held;
        _held = null;
        if (h is null || _disposed || _graphStep is not null || _device.Graphs.Mode != StepGraphMode.Eager) return false;
        // Anything issued since the hold may have moved a buffer or changed what the step's host code would compute.
        if (h.Graph.Exec != h.Exec || _device.Graphs.IssuedWork != h.IssuedWork) return false;
        _device.MakeCurrent();
        if (!LaunchGraph(h.Graph, _heldStaged.AsSpan(0, h.StagedBytes))) return false;
        h.Graph.Steps++;
        _replayed++;
        h.Graph.Failures = 0;
        return true;
    }

    public void DiscardHeldStep() => _held = null;

    public void ForgetStepGraphs(object owner)
    {
        if (_disposed) return;   // Dispose released every graph
        _device.MakeCurrent();
        foreach (var key in _graphs.Keys.Where(k => ReferenceEquals(k.Owner, owner)).ToArray())
        {
            DestroyExec(_graphs[key]);
            _graphs.Remove(key);
        }
    }

    /// <summary>Stopwatch timestamp of the last graph launch (when the host began issuing it): a benchmark takes
    /// the host's share of a step as this minus the step's start.</summary>
    public long LastGraphLaunchTimestamp { get; private set; }

    /// <summary>Starts timing graph launches on the GPU (benchmarks): events before the argument copy and after
    /// the graph launch of each of the next <paramref name="launches"/> launches. Nothing waits for them until
    /// <see cref="StopGraphTiming"/>.</summary>
    public void StartGraphTiming(int launches)
    {
        _device.MakeCurrent();
        // Creating events issues no stream work: checked without counting it, so a held step stays valid.
        if (_device.Graphs.Mode != StepGraphMode.Eager) throw new StepGraphAbortedException("creating timing events inside a recorded step");
        while (_timingEvents.Length < 2 * launches)
        {
            var more = new nint[Math.Max(2 * launches, 64)];
            _timingEvents.CopyTo(more, 0);
            for (int i = _timingEvents.Length; i < more.Length; i++) Check(cuEventCreate(out more[i], EventDefault), "cuEventCreate");
            _timingEvents = more;
        }
        _timedLaunches = 0;
        _timing = true;
    }

    /// <summary>Stops timing; waits for the last timed launch and returns how many launches were timed and their
    /// mean GPU time in milliseconds (0 when none was).</summary>
    public (int Launches, double MeanMilliseconds) StopGraphTiming()
    {
        _timing = false;
        int n = _timedLaunches;
        _timedLaunches = 0;
        if (n == 0) return (0, 0);
        _device.MakeCurrent();
        Check(cuEventSynchronize(_timingEvents[2 * n - 1]), "cuEventSynchronize");
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            Check(cuEventElapsedTime(out float ms, _timingEvents[2 * i], _timingEvents[2 * i + 1]), "cuEventElapsedTime");
            total += ms;
        }
        return (n, total / n);
    }

    /// <summary>Copies the staged op arguments up (outside any capture) and launches the graph after them on the op stream.</summary>
    private bool LaunchGraph(StepGraph g, ReadOnlySpan<byte> staged)
    {
        _device.Graphs.NoteIssued();
        LastGraphLaunchTimestamp = Stopwatch.GetTimestamp();
        // Timing never decides the step: an event that cannot be recorded just ends the timing.
        bool timed = _timing && 2 * _timedLaunches + 1 < _timingEvents.Length
            && cuEventRecord(_timingEvents[2 * _timedLaunches], _device.Stream) == Success;
        int r = Success;
        if (staged.Length > 0) r = UploadStaged(staged);
        if (r == Success) r = cuGraphLaunch(g.Exec, _device.Stream);
        if (r == Success)
        {
            if (timed && cuEventRecord(_timingEvents[2 * _timedLaunches + 1], _device.Stream) == Success) _timedLaunches++;
            else if (_timing) _timing = false;
            return true;
        }
        DestroyExec(g);
        Fail(g, $"launching the graph failed: {ErrorName(r)}");
        return false;
    }

    /// <summary>Copies <paramref name="staged"/> into the graph argument buffer from the pinned buffer not used by the
    /// previous launch (so a copy still queued is never overwritten), after that buffer's previous copy has run.</summary>
    private int UploadStaged(ReadOnlySpan<byte> staged)
    {
        int slot = _stagingSlot ^= 1;
        int r;
        if (_stagingCopied[slot] != 0 && (r = cuEventSynchronize(_stagingCopied[slot])) != Success) return r;
        if (_stagingPinnedBytes[slot] < staged.Length)
        {
            if (_stagingPinned[slot] != 0) cuMemFreeHost(_stagingPinned[slot]);
            _stagingPinned[slot] = 0;
            _stagingPinnedBytes[slot] = 0;
            int bytes = Math.Max(staged.Length, _graphArgumentBytes);
            if ((r = cuMemAllocHost(out _stagingPinned[slot], (nuint)bytes)) != Success) return r;
            _stagingPinnedBytes[slot] = bytes;
        }
        if (_stagingCopied[slot] == 0 && (r = cuEventCreate(out _stagingCopied[slot], EventDisableTiming)) != Success) return r;
        staged.CopyTo(new Span<byte>((void*)_stagingPinned[slot], staged.Length));
        if ((r = cuMemcpyHtoDAsync(_graphArguments, (void*)_stagingPinned[slot], (nuint)staged.Length, _device.Stream)) != Success) return r;
        return cuEventRecord(_stagingCopied[slot], _device.Stream);
    }

    private void Fail(StepGraph g, string reason, bool countEager = true)
    {
        if (countEager) _eager++;
        _fallbacks++;
        _lastFallback = reason;
        if (++g.Failures >= GraphFailureLimit) g.GivenUp = true;
    }

    private void DestroyExec(StepGraph g)
    {
        if (_held?.Graph == g) _held = null;
        // An exec still running is freed when it finishes (driver semantics), so this needs no synchronisation.
        if (g.Exec != 0) cuGraphExecDestroy(g.Exec);
        g.Exec = 0;
        g.Recording = null;
    }

    /// <summary>The graph argument buffer, grown (outside any capture) when a step needed more; graphs that
    /// read the old buffer are dropped with it.</summary>
    private void EnsureGraphArguments()
    {
        int needed = Math.Max(InitialGraphArgumentBytes, _device.Graphs.CapacityNeeded);
        if (_graphArguments != 0 && _graphArgumentBytes >= needed) return;
        if (_graphArguments != 0)
        {
            _device.Synchronize();
            foreach (var g in _graphs.Values) DestroyExec(g);
            _device.Free(_graphArguments);
            _graphArguments = 0;
        }
        _graphArguments = _device.Allocate(needed, "the graph argument buffer");
        _graphArgumentBytes = needed;
    }

    private void ReleaseGraphs()
    {
        foreach (var g in _graphs.Values) DestroyExec(g);
        _graphs.Clear();
        if (_graphArguments != 0) _device.Free(_graphArguments);
        _graphArguments = 0;
        foreach (nint e in _timingEvents) cuEventDestroy(e);
        _timingEvents = [];
        _held = null;
        for (int i = 0; i < 2; i++)
        {
            if (_stagingPinned[i] != 0) cuMemFreeHost(_stagingPinned[i]);
            if (_stagingCopied[i] != 0) cuEventDestroy(_stagingCopied[i]);
            _stagingPinned[i] = 0;
            _stagingPinnedBytes[i] = 0;
            _stagingCopied[i] = 0;
        }
    }
}
