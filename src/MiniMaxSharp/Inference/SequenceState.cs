using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Inference;

/// <summary>Thrown when a sequence would exceed its stated token limit.</summary>
public sealed class ContextLimitException(string message) : Exception(message);

/// <summary>
/// What a sequence carries between steps: for each lightning layer the float32 state [H, d·d]
/// (fixed size whatever the length), for each softmax layer the rotated keys and values
/// (grown on demand up to <see cref="MaxTokens"/>), and how many tokens it has consumed.
/// </summary>
public sealed class SequenceState : IDisposable
{
    private readonly IComputeBackend _backend;
    private readonly ModelConfig _config;
    private readonly DeviceTensor?[] _lightning;
    private readonly KvCache?[] _caches;

    internal SequenceState(IComputeBackend backend, ModelConfig config, int maxTokens)
    {
        if (maxTokens <= 0) throw new ArgumentOutOfRangeException(nameof(maxTokens), "the token limit must be positive");
        _backend = backend;
        _config = config;
        MaxTokens = maxTokens;
        _lightning = new DeviceTensor?[config.NumLayers];
        _caches = new KvCache?[config.NumLayers];
        for (int l = 0; l < config.NumLayers; l++)
            if (config.LayerKinds[l] == LayerKind.Lightning)
                _lightning[l] = backend.Allocate(DType.F32, config.NumHeads, config.HeadDim * config.HeadDim);
    }

    /// <summary>Tokens consumed so far (the position of the next token).</summary>
    public int Length { get; private set; }

    /// <summary>The most tokens this sequence may hold (prompt and generated).</summary>
    public int MaxTokens { get; }

    /// <summary>Positions the KV caches can hold now without growing.</summary>
    public int CacheCapacity { get; private set; }

    public DeviceTensor LightningState(int layer) =>
        _lightning[layer] ?? throw new InvalidOperationException($"layer {layer} is not a lightning layer");

    public KvCache Cache(int layer) =>
        _caches[layer] ?? throw new InvalidOperationException($"layer {layer} has no KV cache (capacity not reserved)");

    /// <summary>Bytes held now: lightning states plus allocated KV caches.</summary>
    public long StateBytes
    {
        get
        {
            long b = 0;
            foreach (var s in _lightning) b += s?.ByteLength ?? 0;
            foreach (var c in _caches) b += (c?.Keys.ByteLength ?? 0) + (c?.Values.ByteLength ?? 0);
            return b;
        }
    }

    /// <summary>Bytes the state of a sequence of <paramref name="tokens"/> tokens needs: float32 lightning
    /// states plus KV caches of <paramref name="cacheType"/>.</summary>
    public static long BytesFor(ModelConfig config, long tokens, DType cacheType = DType.F32) =>
        (long)config.NumLightningLayers * config.NumHeads * config.HeadDim * config.HeadDim * 4
        + (long)config.NumSoftmaxLayers * 2 * config.KvWidth * DTypeInfo.SizeOf(cacheType) * tokens;

    /// <summary>Makes room for <paramref name="additional"/> more tokens (KV caches grow by doubling).</summary>
    internal void Reserve(int additional)
    {
        long needed = (long)Length + additional;
        if (needed > MaxTokens)
            throw new ContextLimitException($"sequence would hold {needed} tokens; its limit is {MaxTokens}");
        if (needed <= CacheCapacity || _config.NumSoftmaxLayers == 0) return;
        int capacity = (int)Math.Min(MaxTokens, Math.Max(needed, Math.Max(64L, 2L * CacheCapacity)));
        for (int l = 0; l < _config.NumLayers; l++)
        {
            if (_config.LayerKinds[l] != LayerKind.Softmax) continue;
            var t = _backend.ActivationType;
            var grown = new KvCache(_backend.Allocate(t, capacity, _config.KvWidth), _backend.Allocate(t, capacity, _config.KvWidth));
            if (_caches[l] is KvCache old)
            {
                _backend.CopyRows(old.Keys, grown.Keys, Length);
                _backend.CopyRows(old.Values, grown.Values, Length);
                old.Dispose();
            }
            _caches[l] = grown;
        }
        CacheCapacity = capacity;
    }

    /// <summary>Whether <paramref name="additional"/> more tokens fit now without growing the KV caches (no allocation).</summary>
    internal bool HasRoomWithoutGrowing(int additional)
    {
        long needed = (long)Length + additional;
        return needed <= MaxTokens && (needed <= CacheCapacity || _config.NumSoftmaxLayers == 0);
    }

    internal void Advance(int tokens) => Length += tokens;

    public void Dispose()
    {
        foreach (var s in _lightning) s?.Dispose();
        foreach (var c in _caches) c?.Dispose();
        Array.Clear(_lightning);
        Array.Clear(_caches);
    }
}
