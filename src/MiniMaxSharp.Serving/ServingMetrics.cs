using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Serving;

/// <summary>Counters and latency histograms of an engine, written in Prometheus' text format.</summary>
public sealed class ServingMetrics
{
    private long _started, _rejected, _promptTokens, _generatedTokens, _steps, _stepTokens;
    private readonly Dictionary<string, long> _finished = [];
    private readonly Dictionary<int, long> _httpResponses = [];
    private int _lastBatchSequences, _lastBatchTokens;

    public Histogram TimeToFirstToken { get; } = new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
    public Histogram InterTokenLatency { get; } = new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
    public Histogram BatchSize { get; } = new([1, 2, 4, 8, 16, 32, 64, 128]);

    public long RequestsStarted => Interlocked.Read(ref _started);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);

    internal void RequestStarted(int promptTokens)
    {
        Interlocked.Increment(ref _started);
        Interlocked.Add(ref _promptTokens, promptTokens);
    }

    internal void RequestRejected() => Interlocked.Increment(ref _rejected);
    internal void TokenGenerated() => Interlocked.Increment(ref _generatedTokens);

    internal void RequestFinished(string outcome)
    {
        lock (_finished) _finished[outcome] = _finished.GetValueOrDefault(outcome) + 1;
    }

    public void HttpResponse(int status)
    {
        lock (_httpResponses) _httpResponses[status] = _httpResponses.GetValueOrDefault(status) + 1;
    }

    internal void StepCompleted(StepInfo step)
    {
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _stepTokens, step.Tokens);
        Volatile.Write(ref _lastBatchSequences, step.Sequences);
        Volatile.Write(ref _lastBatchTokens, step.Tokens);
        BatchSize.Observe(step.Sequences);
    }

    /// <summary>The exposition text; gauges are read from <paramref name="scheduler"/> (null while the model loads).</summary>
    public string Render(BatchScheduler? scheduler)
    {
        var sb = new StringBuilder();
        Counter(sb, "minimax_requests_started_total", "Requests accepted by the scheduler", RequestsStarted);
        Counter(sb, "minimax_requests_rejected_total", "Requests refused because the queue was full", Interlocked.Read(ref _rejected));
        sb.Append("# HELP minimax_requests_finished_total Requests ended, by outcome\n# TYPE minimax_requests_finished_total counter\n");
        lock (_finished)
            foreach (var (outcome, n) in _finished.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"minimax_requests_finished_total{{outcome=\"{outcome}\"}} {n}\n");
        sb.Append("# HELP minimax_http_responses_total HTTP responses of the API endpoints, by status\n# TYPE minimax_http_responses_total counter\n");
        lock (_httpResponses)
            foreach (var (status, n) in _httpResponses.OrderBy(kv => kv.Key))
                sb.Append(CultureInfo.InvariantCulture, $"minimax_http_responses_total{{code=\"{status}\"}} {n}\n");
        Counter(sb, "minimax_prompt_tokens_total", "Prompt tokens of accepted requests", Interlocked.Read(ref _promptTokens));
        Counter(sb, "minimax_generated_tokens_total", "Tokens generated", GeneratedTokens);
        Counter(sb, "minimax_steps_total", "Batched forward steps", Interlocked.Read(ref _steps));
        Counter(sb, "minimax_step_tokens_total", "Tokens (prefill + decode) run through the model", Interlocked.Read(ref _stepTokens));
        Gauge(sb, "minimax_active_sequences", "Sequences holding state now", scheduler?.ActiveSequences ?? 0);
        Gauge(sb, "minimax_queue_depth", "Requests waiting for a sequence", scheduler?.QueueDepth ?? 0);
        Gauge(sb, "minimax_state_bytes_reserved", "Bytes of sequence state reserved by active sequences", scheduler?.ReservedStateBytes ?? 0);
        Gauge(sb, "minimax_last_batch_sequences", "Sequences in the last step", Volatile.Read(ref _lastBatchSequences));
        Gauge(sb, "minimax_last_batch_tokens", "Tokens in the last step", Volatile.Read(ref _lastBatchTokens));
        Gauge(sb, "minimax_model_loaded", "1 once the model is loaded", scheduler is null ? 0 : 1);
        TimeToFirstToken.Write(sb, "minimax_time_to_first_token_seconds", "Seconds from request to its first token");
        InterTokenLatency.Write(sb, "minimax_inter_token_latency_seconds", "Seconds between consecutive tokens of a request");
        BatchSize.Write(sb, "minimax_batch_sequences", "Sequences per batched step");
        return sb.ToString();
    }

    private static void Counter(StringBuilder sb, string name, string help, long value) =>
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");

    private static void Gauge(StringBuilder sb, string name, string help, long value) =>
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");

    /// <summary>A Prometheus histogram with fixed upper bounds.</summary>
    public sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private double _sum;
        private long _count;

        public long Count { get { lock (_counts) return _count; } }

        public void Observe(double value)
        {
            int i = 0;
            while (i < bounds.Length && value > bounds[i]) i++;
            lock (_counts)
            {
                _counts[i]++;
                _sum += value;
                _count++;
            }
        }

        internal void Write(StringBuilder sb, string name, string help)
        {
            sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} histogram\n");
            lock (_counts)
            {
                long cumulative = 0;
                for (int i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts[i];
                    sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i]}\"}} {cumulative}\n");
                }
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n{name}_sum {_sum}\n{name}_count {_count}\n");
            }
        }
    }
}
