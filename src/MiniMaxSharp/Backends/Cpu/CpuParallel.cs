using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>One index of a parallel loop. A struct body lets <see cref="CpuParallel.For{TBody}"/> run without allocating.</summary>
public interface IParallelBody
{
    void Invoke(int index);
}

/// <summary>
/// Fork-join over persistent worker threads, built for many short (tens of microseconds) tasks such as one
/// matrix product of a decode step. Workers spin briefly after a job (the next one usually follows within
/// microseconds) and then sleep on a semaphore, so an idle engine does not burn CPU.
/// The calling thread takes part in the work. Indices are handed out dynamically, so uneven tasks balance.
/// A call made from inside a body, or while another thread's call is running, runs serially on its caller.
/// </summary>
public static unsafe class CpuParallel
{
    /// <summary>How long a worker spins for the next job before it sleeps.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

    private static readonly object Gate = new();
    private static Worker[] workers = [];

    [ThreadStatic] private static bool insideBody;

    // The job being run; written by the caller under Gate before workers are woken.
    private static delegate*<void*, int, void> jobInvoke;
    private static void* jobState;
    private static int jobCount;
    private static int jobNext;
    private static int jobOpen;    // 1 while workers may still join the current job
    private static int jobJoined;  // workers inside the current job
    private static ExceptionDispatchInfo? jobError;

    /// <summary>Threads a caller can sensibly ask for on this machine.</summary>
    public static int MaxThreads => Environment.ProcessorCount;

    /// <summary>Runs body(i) for i in [0, count) on up to <paramref name="threads"/> threads (the caller included).</summary>
    public static void For(int count, int threads, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var wrapper = new ActionBody(body);
        For(count, threads, in wrapper);
    }

    /// <summary>Runs body.Invoke(i) for i in [0, count) on up to <paramref name="threads"/> threads (the caller included).
    /// Exceptions from a body are rethrown on the caller after every index has finished.</summary>
    public static void For<TBody>(int count, int threads, in TBody body) where TBody : struct, IParallelBody
    {
        if (count <= 0)
            return;
        int participants = Math.Min(Math.Min(threads, count), MaxThreads);
        if (participants <= 1 || insideBody || !Monitor.TryEnter(Gate))
        {
            RunSerial(count, in body);
            return;
        }
        try
        {
            EnsureWorkers(participants - 1);
            // The body lives on this stack frame until every worker has finished with it.
            TBody local = body;
            jobState = Unsafe.AsPointer(ref local);
            jobInvoke = &Invoker<TBody>.Run;
            jobCount = count;
            jobNext = 0;
            jobError = null;
            Volatile.Write(ref jobOpen, 1);
            for (int w = 0; w < participants - 1; w++)
                workers[w].Post();

            insideBody = true;
            try { RunShare(); }
            finally { insideBody = false; }

            // Every index is taken. Workers that have not joined yet (descheduled on a busy machine) are not
            // waited for: closing the job makes them leave; only those already inside are waited for.
            Interlocked.Exchange(ref jobOpen, 0);
            var spin = new SpinWait();
            while (Volatile.Read(ref jobJoined) != 0)
                spin.SpinOnce(sleep1Threshold: -1);
            jobState = null;
            jobError?.Throw();
        }
        finally
        {
            Monitor.Exit(Gate);
        }
    }

    private static void RunSerial<TBody>(int count, in TBody body) where TBody : struct, IParallelBody
    {
        bool wasInside = insideBody;
        insideBody = true;
        try
        {
            for (int i = 0; i < count; i++)
                body.Invoke(i);
        }
        finally { insideBody = wasInside; }
    }

    /// <summary>Takes indices of the current job until none are left.</summary>
    private static void RunShare()
    {
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref jobNext) - 1) < jobCount)
                jobInvoke(jobState, i);
        }
        catch (Exception e)
        {
            // Keep the first failure; stop handing out further indices.
            Interlocked.CompareExchange(ref jobError, ExceptionDispatchInfo.Capture(e), null);
            Volatile.Write(ref jobNext, int.MaxValue / 2);
        }
    }

    private static void EnsureWorkers(int needed)
    {
        if (workers.Length >= needed)
            return;
        var grown = new Worker[needed];
        Array.Copy(workers, grown, workers.Length);
        for (int w = workers.Length; w < needed; w++)
            grown[w] = new Worker(w);
        workers = grown;
    }

    private static class Invoker<TBody> where TBody : struct, IParallelBody
    {
        public static void Run(void* state, int index) => Unsafe.AsRef<TBody>(state).Invoke(index);
    }

    private readonly struct ActionBody(Action<int> action) : IParallelBody
    {
        public void Invoke(int index) => action(index);
    }

    private sealed class Worker
    {
        private const int Awake = 0, Sleeping = 1;
        private readonly SemaphoreSlim signal = new(0);
        private int state = Awake;
        private int posted;   // job generation posted to this worker
        private int seen;     // last generation this worker ran (worker thread only)

        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"CpuParallel worker {index}" };
            thread.Start();
        }

        /// <summary>Caller side: hand the current job to this worker and wake it if it sleeps.</summary>
        public void Post()
        {
            Interlocked.Increment(ref posted);
            if (Interlocked.Exchange(ref state, Awake) == Sleeping)
                signal.Release();
        }

        private void Loop()
        {
            insideBody = true;
            while (true)
            {
                WaitForJob();
                seen = Volatile.Read(ref posted);
                Interlocked.Increment(ref jobJoined);
                if (Volatile.Read(ref jobOpen) == 1)
                    RunShare();
                Interlocked.Decrement(ref jobJoined);
            }
        }

        private void WaitForJob()
        {
            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref posted) == seen)
            {
                if (Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    Interlocked.Exchange(ref state, Sleeping);
                    // A job may have been posted between the check and the state change: then whoever
                    // flips the state back first decides whether a semaphore token is to be consumed.
                    if (Volatile.Read(ref posted) != seen &&
                        Interlocked.CompareExchange(ref state, Awake, Sleeping) == Sleeping)
                        return;
                    signal.Wait();
                    return;
                }
                Thread.SpinWait(20);
            }
        }
    }
}
