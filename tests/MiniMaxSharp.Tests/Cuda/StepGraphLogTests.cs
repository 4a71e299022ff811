using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>The host-side bookkeeping of CUDA step graphs: what a capture writes down, what a replay must
/// match, and where op arguments are staged (no GPU needed).</summary>
public sealed class StepGraphLogTests
{
    private const int Capacity = 256;

    /// <summary>A small "step": two launches and two staged argument blocks, in the order ops issue them.</summary>
    private static void Step(StepGraphLog log, List<bool> issued, List<int> offsets, byte fill = 1, ulong pointer = 0x7000,
        uint grid = 4, int stagedLength = 10, bool extraLaunch = false, bool skipSecond = false)
    {
        offsets.Add(log.Stage(Enumerable.Repeat(fill, stagedLength).ToArray()));
        issued.Add(log.Launch("first", 11, grid, 1, 1, 128, 0, [pointer, 3]));
        offsets.Add(log.Stage(new byte[] { fill, fill, fill }));
        if (!skipSecond) issued.Add(log.Launch("second", 12, 1, 2, 1, 256, 4096, [pointer + 64, 0x3F800000]));
        if (extraLaunch) issued.Add(log.Launch("extra", 13, 1, 1, 1, 32, 0, []));
    }

    private static StepRecording Capture(StepGraphLog log)
    {
        log.BeginCapture(Capacity);
        Step(log, [], []);
        return log.EndCapture();
    }

    [Fact]
    public void EagerLaunchesAreIssuedAndNotWrittenDown()
    {
        var log = new StepGraphLog();
        Assert.Equal(StepGraphMode.Eager, log.Mode);
        Assert.True(log.Launch("k", 1, 1, 1, 1, 32, 0, [5]));
        log.RequireEager("anything");
        Assert.Throws<InvalidOperationException>(() => log.Stage([1, 2, 3]));
    }

    [Fact]
    public void IssuedWorkCountsOnlyWhatRunsOutsideRecordedSteps()
    {
        // A held step is valid while this count stands still: eager launches, copies/allocations (RequireEager) and
        // graph launches move it; the captured or replayed launches of a step do not, nor does a refused RequireEager.
        var log = new StepGraphLog();
        log.Launch("k", 1, 1, 1, 1, 32, 0, [5]);
        log.RequireEager("a copy");
        log.NoteIssued();
        Assert.Equal(3, log.IssuedWork);
        log.BeginCapture(Capacity);
        Step(log, [], []);
        Assert.Throws<StepGraphAbortedException>(() => log.RequireEager("a copy"));
        var recording = log.EndCapture();
        log.BeginReplay(recording, Capacity);
        Step(log, [], []);
        Assert.True(log.EndReplay());
        Assert.Equal(3, log.IssuedWork);
    }

    [Fact]
    public void AnIdenticalReplayMatchesLaunchesNothingAndStagesAtTheCapturedOffsets()
    {
        var log = new StepGraphLog();
        log.BeginCapture(Capacity);
        var issued = new List<bool>();
        var offsets = new List<int>();
        Step(log, issued, offsets);
        var recording = log.EndCapture();
        Assert.All(issued, Assert.True);   // a capture issues the launches (into the stream capture)
        Assert.Equal(2, recording.Launches);
        Assert.Equal([0, 16], offsets);    // 16-byte aligned blocks
        Assert.Equal(19, recording.StagedBytes);

        log.BeginReplay(recording, Capacity);
        var replayIssued = new List<bool>();
        var replayOffsets = new List<int>();
        Step(log, replayIssued, replayOffsets, fill: 9);   // new argument contents are fine: they are uploaded
        Assert.All(replayIssued, Assert.False);
        Assert.Equal(offsets, replayOffsets);
        Assert.True(log.EndReplay());
        Assert.Null(log.Mismatch);
        byte[] staged = log.Staged.ToArray();
        Assert.Equal(19, staged.Length);
        Assert.Equal(Enumerable.Repeat((byte)9, 10), staged[..10]);
        Assert.Equal(new byte[6], staged[10..16]);   // padding is zero
        Assert.Equal([9, 9, 9], staged[16..]);
        Assert.Equal(StepGraphMode.Eager, log.Mode);
    }

    [Fact]
    public void AChangedPointerArgumentIsAMismatchNamingTheLaunch()
    {
        var log = new StepGraphLog();
        var recording = Capture(log);
        log.BeginReplay(recording, Capacity);
        Step(log, [], [], pointer: 0x9000);
        Assert.False(log.EndReplay());
        Assert.Contains("launch 1 (first", log.Mismatch);
    }

    [Fact]
    public void AChangedGridIsAMismatch()
    {
        var log = new StepGraphLog();
        var recording = Capture(log);
        log.BeginReplay(recording, Capacity);
        Step(log, [], [], grid: 5);
        Assert.False(log.EndReplay());
        Assert.Contains("grid 5x1x1", log.Mismatch);
    }

    [Fact]
    public void AChangedArgumentSizeIsAMismatch()
    {
        var log = new StepGraphLog();
        var recording = Capture(log);
        log.BeginReplay(recording, Capacity);
        Step(log, [], [], stagedLength: 12);
        Assert.False(log.EndReplay());
        Assert.Contains("op arguments of 12 bytes", log.Mismatch);
    }

    [Fact]
    public void MissingAndExtraLaunchesAreMismatches()
    {
        var log = new StepGraphLog();
        var recording = Capture(log);

        log.BeginReplay(recording, Capacity);
        Step(log, [], [], skipSecond: true);
        Assert.False(log.EndReplay());
        Assert.Contains("recording has more", log.Mismatch);

        log.BeginReplay(recording, Capacity);
        Step(log, [], [], extraLaunch: true);
        Assert.False(log.EndReplay());
        Assert.Contains("launch 3 (extra", log.Mismatch);

        log.BeginReplay(recording, Capacity);   // a failed replay leaves nothing behind
        Step(log, [], []);
        Assert.True(log.EndReplay());
    }

    [Fact]
    public void ArgumentsBeyondTheBufferAbortTheStepAndAskForMore()
    {
        var log = new StepGraphLog();
        log.BeginCapture(64);
        log.Stage(new byte[40]);
        var e = Assert.Throws<StepGraphAbortedException>(() => log.Stage(new byte[30]));
        Assert.Contains("64-byte", e.Reason);
        Assert.True(log.CapacityNeeded >= 48 + 30);
        log.Reset();
        Assert.Equal(StepGraphMode.Eager, log.Mode);
    }

    [Fact]
    public void HostRoundTripsAreRefusedInsideASteps()
    {
        var log = new StepGraphLog();
        log.BeginCapture(Capacity);
        Assert.Contains("captured", Assert.Throws<StepGraphAbortedException>(() => log.RequireEager("a device-to-host copy")).Reason);
        Assert.Throws<InvalidOperationException>(() => log.BeginReplay(new StepRecording([], 0, 0), Capacity));
        var recording = log.EndCapture();
        log.BeginReplay(recording, Capacity);
        Assert.Contains("replayed", Assert.Throws<StepGraphAbortedException>(() => log.RequireEager("a synchronisation")).Reason);
        log.Reset();
    }
}
