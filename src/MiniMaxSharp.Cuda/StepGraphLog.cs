namespace MiniMaxSharp.Backends.Cuda;

/// <summary>How the backend treats the work its ops issue.</summary>
internal enum StepGraphMode
{
    /// <summary>Launched on the stream as it comes.</summary>
    Eager,
    /// <summary>Launched into a stream capture (nothing runs) and written down.</summary>
    Capture,
    /// <summary>Not launched: compared with what the capture wrote down (the graph runs instead).</summary>
    Replay,
}

/// <summary>What one capture wrote down: the launch words to compare replays with, and how many
/// argument bytes the step stages.</summary>
internal sealed record StepRecording(ulong[] Words, int Launches, int StagedBytes);

/// <summary>
/// Host-side bookkeeping of a recorded step, free of any CUDA call (unit-tested without a GPU).
/// Every launch (kernel or library call) is written as words: its id, grid, block, shared memory and every
/// argument slot; every block of op arguments is staged at the next 16-byte aligned offset of a host buffer
/// that is copied in one piece to a device buffer before the graph runs, so an op's arguments sit at the
/// same device address in every replay. A replay recomputes the same words and must match them one for one.
/// </summary>
internal sealed class StepGraphLog
{
    /// <summary>Words that stand for a staged block (then offset | length &lt;&lt; 32) instead of a launch.</summary>
    private const ulong StageMarker = 0xFFFF_FFFF_FFFF_FF01UL;
    private const int Alignment = 16;

    private readonly List<ulong> _captured = [];
    private ulong[] _expected = [];
    private int _cursor;
    private int _launches;
    private byte[] _staging = [];
    private int _capacity;

    public StepGraphMode Mode { get; private set; }

    /// <summary>Counts what was issued or changed on the device outside recorded steps (eager launches, copies,
    /// allocations, frees, synchronisations, graph launches): a held step is valid only while this stays the same.</summary>
    public long IssuedWork { get; private set; }

    /// <summary>Counts a graph launch (or other work issued by the backend itself) in <see cref="IssuedWork"/>.</summary>
    public void NoteIssued() => IssuedWork++;

    /// <summary>Bytes staged so far in this step.</summary>
    public int StagedBytes { get; private set; }

    /// <summary>The first difference a replay found (null while it matches).</summary>
    public string? Mismatch { get; private set; }

    /// <summary>Set when a step needed more argument bytes than the buffer holds: the size to grow to.</summary>
    public int CapacityNeeded { get; private set; }

    /// <summary>The staged argument bytes of this step (copied to the device before the graph launch).</summary>
    public ReadOnlySpan<byte> Staged => _staging.AsSpan(0, StagedBytes);

    public void BeginCapture(int capacity)
    {
        Start(StepGraphMode.Capture, capacity);
        _captured.Clear();
    }

    public void BeginReplay(StepRecording recording, int capacity)
    {
        Start(StepGraphMode.Replay, capacity);
        _expected = recording.Words;
    }

    private void Start(StepGraphMode mode, int capacity)
    {
        if (Mode != StepGraphMode.Eager) throw new InvalidOperationException($"a step is already being {Mode.ToString().ToLowerInvariant()}d");
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), "the argument buffer needs a positive size");
        if (_staging.Length < capacity) _staging = new byte[capacity];
        _capacity = capacity;
        Mode = mode;
        StagedBytes = 0;
        Mismatch = null;
        _cursor = 0;
        _launches = 0;
    }

    /// <summary>Ends a capture: what a replay of this step must match.</summary>
    public StepRecording EndCapture()
    {
        if (Mode != StepGraphMode.Capture) throw new InvalidOperationException("no step is being captured");
        Mode = StepGraphMode.Eager;
        return new StepRecording([.. _captured], _launches, StagedBytes);
    }

    /// <summary>Ends a replay: true when every launch and staged block matched the recording and none is missing.</summary>
    public bool EndReplay()
    {
        if (Mode != StepGraphMode.Replay) throw new InvalidOperationException("no step is being replayed");
        Mode = StepGraphMode.Eager;
        if (Mismatch is null && _cursor != _expected.Length)
            Mismatch = $"the step issued {_launches} launches; the recording has more";
        return Mismatch is null;
    }

    /// <summary>Back to eager after an abandoned step.</summary>
    public void Reset() => Mode = StepGraphMode.Eager;

    /// <summary>Throws <see cref="StepGraphAbortedException"/> while a step is captured or replayed:
    /// <paramref name="what"/> cannot be part of a graph. Outside a step it counts in <see cref="IssuedWork"/>.</summary>
    public void RequireEager(string what)
    {
        if (Mode == StepGraphMode.Eager) IssuedWork++;
        else throw new StepGraphAbortedException($"{what} inside a {(Mode == StepGraphMode.Capture ? "captured" : "replayed")} step");
    }

    /// <summary>Notes a launch; returns true when the caller should issue it (eager or capture), false in a replay.</summary>
    public bool Launch(string name, ulong id, uint gridX, uint gridY, uint gridZ, uint block, int sharedBytes, ReadOnlySpan<ulong> args)
    {
        if (Mode == StepGraphMode.Eager)
        {
            IssuedWork++;
            return true;
        }
        Span<ulong> head = [id, gridX | (ulong)gridY << 32, gridZ | (ulong)block << 32, (uint)sharedBytes | (ulong)(uint)args.Length << 32];
        _launches++;
        if (Mode == StepGraphMode.Capture)
        {
            foreach (ulong w in head) _captured.Add(w);
            foreach (ulong w in args) _captured.Add(w);
            return true;
        }
        if (Mismatch is not null) return false;
        int n = head.Length + args.Length;
        var expected = _expected.AsSpan(_cursor, Math.Min(n, _expected.Length - _cursor));
        if (expected.Length != n || !expected[..head.Length].SequenceEqual(head) || !expected[head.Length..].SequenceEqual(args))
        {
            Mismatch = $"launch {_launches} ({name}, grid {gridX}x{gridY}x{gridZ}, block {block}) differs from the recording: {Describe(expected, n)}";
            return false;
        }
        _cursor += n;
        return false;
    }

    /// <summary>Copies <paramref name="bytes"/> to the next aligned offset of the staging buffer and returns the offset.</summary>
    public int Stage(ReadOnlySpan<byte> bytes)
    {
        if (Mode == StepGraphMode.Eager) throw new InvalidOperationException("op arguments are staged only while a step is captured or replayed");
        int at = (StagedBytes + Alignment - 1) / Alignment * Alignment;
        if ((long)at + bytes.Length > _capacity)
        {
            CapacityNeeded = Math.Max(CapacityNeeded, (int)Math.Min(int.MaxValue / 2, 2L * (at + bytes.Length)));
            throw new StepGraphAbortedException($"the step's op arguments need more than the {_capacity}-byte graph argument buffer");
        }
        _staging.AsSpan(StagedBytes, at - StagedBytes).Clear();   // the alignment padding: no stale bytes go up
        bytes.CopyTo(_staging.AsSpan(at));
        StagedBytes = at + bytes.Length;
        ulong word = (uint)at | (ulong)(uint)bytes.Length << 32;
        if (Mode == StepGraphMode.Capture)
        {
            _captured.Add(StageMarker);
            _captured.Add(word);
        }
        else if (Mismatch is null)
        {
            if (_cursor + 2 > _expected.Length || _expected[_cursor] != StageMarker || _expected[_cursor + 1] != word)
                Mismatch = $"op arguments of {bytes.Length} bytes at offset {at} after launch {_launches} differ from the recording";
            else _cursor += 2;
        }
        return at;
    }

    private static string Describe(ReadOnlySpan<ulong> expected, int n) =>
        expected.Length < n ? "the recording has fewer launches or arguments"
        : expected[0] == StageMarker ? "the recording has staged arguments here"
        : "kernel, grid, block, shared memory or an argument changed";
}
