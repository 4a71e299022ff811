using System.Diagnostics;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Serving;

/// <summary>What one scheduler step ran.</summary>
public readonly record struct StepInfo(int Sequences, int Tokens, int DecodeSequences, TimeSpan Elapsed);

/// <summary>
/// Continuous batching over one model shared by all requests. One background thread repeats: admit
/// queued requests while there are free sequences and state memory; drop cancelled ones (freeing their
/// state); gather every active request's one decode token and, within the step's token budget, the next
/// prefill chunk of those still reading their prompt; run ONE packed <see cref="MiniMaxModel.Forward"/>;
/// sample each finished-prefill row with the request's own <see cref="Sampler"/>, and stream the token out.
/// </summary>
public sealed class BatchScheduler : IDisposable
{
    private readonly MiniMaxModel _model;
    private readonly ServingOptions _options;
    private readonly object _lock = new();
    private readonly List<GenerationHandle> _queue = [];   // guarded by _lock
    private readonly List<Slot> _active = [];               // loop thread only
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _thread;
    private int _inSystem;           // queued + active; guarded by _lock
    private volatile bool _stopping;
    private int _prefillCursor;
    private long _reservedBytes;

    public BatchScheduler(MiniMaxModel model, ServingOptions options)
    {
        options.Validate();
        _model = model;
        _options = options;
        ContextLength = Math.Min(options.ContextLength ?? model.Config.MaxPositionEmbeddings, model.Config.MaxPositionEmbeddings);
        // On a GPU: the state budget plus the largest step's workspace must fit beside the weights, checked before serving starts.
        MemoryPlan.CheckFits(model, options.MaxConcurrentSequences, ContextLength,
            Math.Max(options.StepTokenBudget, options.MaxConcurrentSequences), stateBytes: options.MaxStateBytes);
        _thread = new Thread(Loop) { IsBackground = true, Name = "minimax-batch-scheduler" };
        _thread.Start();
    }

    public ServingOptions Options => _options;
    public int ContextLength { get; }

    /// <summary>Called on the scheduler thread after each step (metrics). Must be quick and must not throw.</summary>
    public Action<StepInfo>? StepCompleted { get; set; }

    public int ActiveSequences => Volatile.Read(ref _activeCount);
    private int _activeCount;
    public int QueueDepth { get { lock (_lock) return _queue.Count; } }
    /// <summary>State bytes reserved by active sequences (each at its full length).</summary>
    public long ReservedStateBytes => Interlocked.Read(ref _reservedBytes);
    public long Steps => Interlocked.Read(ref _steps);
    private long _steps;

    /// <summary>Queues a request. Throws <see cref="InvalidRequestException"/> for one that can never run
    /// and <see cref="ServerBusyException"/> when the queue is full.</summary>
    /// <param name="emittableTokens">When set, only ids below it may be generated (the tokenizer's vocabulary, when the
    /// model's is padded beyond it: such ids decode to nothing).</param>
    public GenerationHandle Submit(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling,
        IReadOnlyCollection<int> stopTokenIds, CancellationToken cancellationToken = default, int? emittableTokens = null)
    {
        if (emittableTokens is < 1) throw new ArgumentOutOfRangeException(nameof(emittableTokens), "at least one token must be emittable");
        if (prompt.Count == 0) throw new InvalidRequestException("the prompt is empty", "prompt");
        if (maxNewTokens < 1) throw new InvalidRequestException($"max_tokens must be at least 1, got {maxNewTokens}", "max_tokens");
        if (maxNewTokens > _options.MaxNewTokens)
            throw new InvalidRequestException($"max_tokens is {maxNewTokens}; this server allows at most {_options.MaxNewTokens}", "max_tokens");
        if ((long)prompt.Count + maxNewTokens > ContextLength)
            throw new InvalidRequestException($"this model's context length is {ContextLength} tokens; the request has {prompt.Count} prompt tokens " +
                $"and asks for {maxNewTokens} more ({prompt.Count + maxNewTokens}). Shorten the prompt or lower max_tokens.", "messages", "context_length_exceeded");
        int vocab = _model.Config.VocabSize;
        for (int i = 0; i < prompt.Count; i++)
            if ((uint)prompt[i] >= (uint)vocab)
                throw new InvalidRequestException($"prompt token {i} is {prompt[i]}, outside the vocabulary 0..{vocab - 1}", "prompt");
        try
        {
            sampling.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidRequestException(e.Message, e.ParamName);
        }
        long bytes = StateBytes(prompt.Count + maxNewTokens);
        if (bytes > _options.MaxStateBytes)
            throw new InvalidRequestException($"the request needs {bytes} bytes of sequence state; this server allows {_options.MaxStateBytes}", "max_tokens");

        var handle = new GenerationHandle([.. prompt], maxNewTokens, sampling, stopTokenIds, Wake) { EmittableTokens = emittableTokens };
        // Registered before it is queued, so the registration is released by whichever end the request meets.
        handle.CancelWhen(cancellationToken);
        lock (_lock)
        {
            // Checked under the lock: the loop's shutdown drains the queue under it, so nothing queued is left hanging.
            bool full = _inSystem >= _options.MaxConcurrentSequences + _options.MaxQueuedRequests;
            if (_stopping || full)
            {
                handle.Fail(_stopping ? new ObjectDisposedException(nameof(BatchScheduler)) : new OperationCanceledException("refused"));
                ObjectDisposedException.ThrowIf(_stopping, this);
                throw new ServerBusyException($"the server is busy: {_options.MaxConcurrentSequences} sequences running and {_options.MaxQueuedRequests} waiting; retry later");
            }
            _inSystem++;
            _queue.Add(handle);
        }
        Wake();
        return handle;
    }

    private long StateBytes(int tokens) => SequenceState.BytesFor(_model.Config, tokens, _model.Backend.ActivationType);

    private void Wake()
    {
        // One pending wake-up is enough: the loop re-examines everything after it.
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    private void Loop()
    {
        while (!_stopping)
        {
            Admit();
            DropCancelled();
            if (_active.Count == 0)
            {
                _wake.Wait();
                continue;
            }
            Step();
        }
        foreach (var slot in _active) Release(slot, s => s.Handle.Fail(new ObjectDisposedException(nameof(BatchScheduler), "the server is shutting down")));
        _active.Clear();
        Volatile.Write(ref _activeCount, 0);
        lock (_lock)
        {
            foreach (var h in _queue) h.Fail(new ObjectDisposedException(nameof(BatchScheduler), "the server is shutting down"));
            _queue.Clear();
        }
    }

    private void Admit()
    {
        lock (_lock)
        {
            // Cancelled requests leave the queue at once, wherever they stand in it.
            for (int i = _queue.Count - 1; i >= 0; i--)
            {
                if (!_queue[i].IsCancelled) continue;
                var h = _queue[i];
                _queue.RemoveAt(i);
                _inSystem--;
                h.Fail(new OperationCanceledException("the request was cancelled"));
            }
            while (_queue.Count > 0)
            {
                var h = _queue[0];
                if (_active.Count >= _options.MaxConcurrentSequences) return;
                long bytes = StateBytes(h.PromptTokens + h.MaxNewTokens);
                // In arrival order: a request that does not fit now waits for memory to be freed (no overtaking).
                if (_reservedBytes + bytes > _options.MaxStateBytes) return;
                _queue.RemoveAt(0);
                Interlocked.Add(ref _reservedBytes, bytes);
                _active.Add(new Slot(h, _model.CreateSequence(h.PromptTokens + h.MaxNewTokens), bytes));
                Volatile.Write(ref _activeCount, _active.Count);
            }
        }
    }

    private void DropCancelled()
    {
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            var slot = _active[i];
            if (!slot.Handle.IsCancelled) continue;
            _active.RemoveAt(i);
            Release(slot, s => s.Handle.Fail(new OperationCanceledException("the request was cancelled")));
        }
    }

    /// <summary>Frees a slot's state and accounting, then tells its reader how it ended.</summary>
    private void Release(Slot slot, Action<Slot> complete)
    {
        slot.State.Dispose();
        Interlocked.Add(ref _reservedBytes, -slot.ReservedBytes);
        lock (_lock) _inSystem--;
        Volatile.Write(ref _activeCount, _active.Count);
        complete(slot);
    }

    private void Step()
    {
        var clock = Stopwatch.StartNew();
        var batch = new List<Slot>(_active.Count);
        var inputs = new List<ReadOnlyMemory<int>>(_active.Count);
        int budget = _options.StepTokenBudget, tokens = 0, decodes = 0;
        foreach (var slot in _active)
        {
            if (!slot.PrefillDone) continue;
            batch.Add(slot);
            inputs.Add(slot.NextInput);
            budget--;
            tokens++;
            decodes++;
        }
        // Prefill chunks share what is left of the budget, starting from a rotating request so none starves.
        int count = _active.Count;
        for (int k = 0; k < count && budget > 0; k++)
        {
            var slot = _active[(_prefillCursor + k) % count];
            if (slot.PrefillDone) continue;
            int n = Math.Min(Math.Min(_options.PrefillChunk, slot.Handle.PromptTokens - slot.Prefilled), budget);
            batch.Add(slot);
            inputs.Add(slot.Handle.Prompt.AsMemory(slot.Prefilled, n));
            slot.StepChunk = n;
            budget -= n;
            tokens += n;
        }
        _prefillCursor = count == 0 ? 0 : (_prefillCursor + 1) % count;

        // When every request of the step is plain greedy with the same emittable ids, the backend chooses on the device
        // (when it can) and 4 bytes per request come back instead of a row of logits.
        int vocab = _model.Config.VocabSize;
        int? deviceChoiceColumns = _model.HasDeviceGreedy && batch.All(s => s.Handle.Sampling.IsPlainGreedy)
            && batch.Select(s => Math.Min(s.Handle.EmittableTokens ?? vocab, vocab)).Distinct().ToArray() is [int columns]
            ? columns : null;
        float[] logits = [];
        int[]? deviceChoice = null;
        try
        {
            var states = batch.Select(s => s.State).ToArray();
            if (deviceChoiceColumns is int limit) deviceChoice = _model.ForwardGreedy(states, inputs, limit);
            else logits = _model.Forward(states, inputs, LogitsSelection.LastPerSequence);
        }
        catch (Exception e)
        {
            // A failed step leaves these states mid-update: every request in it fails, the others go on.
            foreach (var slot in batch)
            {
                _active.Remove(slot);
                Release(slot, s => s.Handle.Fail(e));
            }
            return;
        }

        var rows = new List<int>(batch.Count);   // batch rows that sample a token this step
        for (int i = 0; i < batch.Count; i++)
        {
            var slot = batch[i];
            if (!slot.PrefillDone)
            {
                slot.Prefilled += slot.StepChunk;
                // A request still mid-prefill ignores its row.
                if (!slot.PrefillDone) continue;
            }
            if (!slot.Handle.IsCancelled) rows.Add(i);   // a cancelled one is freed by DropCancelled before the next step
        }
        // Each request has its own Sampler, so rows sample in parallel (top-k/top-p sort the whole vocabulary).
        var chosen = new int[rows.Count];
        void SampleRow(int r)
        {
            var slot = batch[rows[r]];
            if (deviceChoice is not null)
            {
                chosen[r] = deviceChoice[rows[r]];   // plain greedy: no penalty state for the sampler to keep
                return;
            }
            var row = logits.AsSpan(rows[r] * vocab, vocab);
            if (slot.Handle.EmittableTokens is int limit && limit < vocab) row[limit..].Fill(float.NegativeInfinity);
            chosen[r] = slot.Sampler.Sample(row, slot.Seen);
        }
        if (rows.Count > 1 && rows.Any(r => !batch[r].Handle.Sampling.IsGreedy)) Parallel.For(0, rows.Count, SampleRow);
        else for (int r = 0; r < rows.Count; r++) SampleRow(r);

        for (int r = 0; r < rows.Count; r++)
        {
            var slot = batch[rows[r]];
            int next = chosen[r];
            slot.Seen.Add(next);
            slot.Generated++;
            slot.Handle.Write(next);
            FinishReason? reason = slot.Handle.StopTokenIds.Contains(next) ? FinishReason.Stop
                : slot.Generated >= slot.Handle.MaxNewTokens || slot.State.Length >= slot.State.MaxTokens ? FinishReason.Length
                : null;
            if (reason is FinishReason finish)
            {
                _active.Remove(slot);
                Release(slot, s => s.Handle.Finish(finish));
            }
            else slot.NextInput = new[] { next };
        }
        Interlocked.Increment(ref _steps);
        StepCompleted?.Invoke(new StepInfo(batch.Count, tokens, decodes, clock.Elapsed));
    }

    /// <summary>Stops the loop; requests still queued or running fail with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Release();
        _thread.Join();
        // _wake is not disposed: late Cancel() calls from handles may still release it.
    }

    private sealed class Slot(GenerationHandle handle, SequenceState state, long reservedBytes)
    {
        public GenerationHandle Handle { get; } = handle;
        public SequenceState State { get; } = state;
        public long ReservedBytes { get; } = reservedBytes;
        public Sampler Sampler { get; } = new(handle.Sampling);
        // Tokens the repetition penalty looks at: the prompt and what was generated (as TokenGenerator does).
        public HashSet<int> Seen { get; } = [.. handle.Prompt];
        public int Prefilled { get; set; }
        public int StepChunk { get; set; }
        public int Generated { get; set; }
        public ReadOnlyMemory<int> NextInput { get; set; }
        public bool PrefillDone => Prefilled == Handle.PromptTokens;
    }
}
