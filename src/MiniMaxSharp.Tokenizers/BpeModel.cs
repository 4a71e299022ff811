using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// Hugging Face's BPE model: a word starts as one symbol per character (or byte-fallback tokens) and the adjacent
/// pair with the lowest merge rank, leftmost first, is merged until no ranked pair is left.
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly string?[] _idToToken;
    private readonly Dictionary<long, MergeTarget> _merges;
    private readonly int[] _smallCharIds; // id of each single-char token below SmallCharLimit, or -1
    private readonly string? _unkToken;
    private readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    private readonly int[] _byteFallbackIds;
    private readonly string? _prefix, _suffix;
    private readonly int _affixBytes;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheCount;

    private const int SmallCharLimit = 0x180; // covers the 256 byte-level symbols (up to U+0143)
    private const int CacheCapacity = 100_000;
    private const int MaxCachedLength = 256;
    private const int ShortWordLimit = 48;

    private readonly record struct MergeTarget(int Rank, int NewId);

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, MergeTarget> merges, string? unkToken, bool fuseUnk,
        bool byteFallback, bool ignoreMerges, string? prefix, string? suffix)
    {
        _vocab = vocab;
        _vocabLookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _unkToken = unkToken;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = string.IsNullOrEmpty(prefix) ? null : prefix;
        _suffix = string.IsNullOrEmpty(suffix) ? null : suffix;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _affixBytes = Encoding.UTF8.GetByteCount(_prefix ?? "") + Encoding.UTF8.GetByteCount(_suffix ?? "");

        int maxId = vocab.Count == 0 ? -1 : vocab.Values.Max();
        _idToToken = new string?[maxId + 1];
        foreach (var (token, id) in vocab) _idToToken[id] ??= token;

        _smallCharIds = new int[SmallCharLimit];
        Array.Fill(_smallCharIds, -1);
        for (int c = 0; c < SmallCharLimit; c++)
            if (vocab.TryGetValue(((char)c).ToString(), out int id)) _smallCharIds[c] = id;

        _byteFallbackIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteFallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
    }

    public int MaxId => _idToToken.Length - 1;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public static BpeModel FromJson(JsonElement json, string path)
    {
        if (JsonFields.TryGet(json, "dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new TokenizerException($"{path}.dropout: BPE dropout makes encoding random; only dropout null or 0 is supported");

        var vocabJson = JsonFields.RequireObject(json, "vocab", path);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabJson.EnumerateObject())
        {
            // Paths are formatted only on error: large vocabs have hundreds of thousands of entries.
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new TokenizerException($"{path}.vocab[\"{entry.Name}\"]: expected a non-negative 32-bit id but found {entry.Value.GetRawText()}");
            vocab[entry.Name] = id;
        }
        if (vocab.Count > 0 && vocab.Values.Max() > 4 * vocab.Count + 1_000_000)
            throw new TokenizerException($"{path}.vocab: ids go up to {vocab.Values.Max()} for only {vocab.Count} tokens");

        string? prefix = JsonFields.OptString(json, "continuing_subword_prefix", path);
        var mergesJson = JsonFields.RequireArray(json, "merges", path);
        var merges = new Dictionary<long, MergeTarget>(mergesJson.GetArrayLength());
        int rank = 0;
        int prefixLength = prefix?.Length ?? 0;
        foreach (var merge in mergesJson.EnumerateArray())
        {
            var (left, right) = ReadMerge(merge, path, rank);
            int leftId = vocab.TryGetValue(left, out int l) ? l : throw MergeError(path, rank, $"token '{left}' is not in the vocab");
            int rightId = vocab.TryGetValue(right, out int r) ? r : throw MergeError(path, rank, $"token '{right}' is not in the vocab");
            if (right.Length < prefixLength) throw MergeError(path, rank, $"token '{right}' is shorter than the continuing_subword_prefix");
            string merged = left + right[prefixLength..];
            int mergedId = vocab.TryGetValue(merged, out int m) ? m : throw MergeError(path, rank, $"merged token '{merged}' is not in the vocab");
            // A repeated pair keeps its last rank, as Hugging Face's map building does.
            merges[PairKey(leftId, rightId)] = new MergeTarget(rank, mergedId);
            rank++;
        }

        return new BpeModel(vocab, merges,
            JsonFields.OptString(json, "unk_token", path),
            JsonFields.OptBool(json, "fuse_unk", false, path),
            JsonFields.OptBool(json, "byte_fallback", false, path),
            JsonFields.OptBool(json, "ignore_merges", false, path),
            prefix,
            JsonFields.OptString(json, "end_of_word_suffix", path));
    }

    /// <summary>A merge is written "a b" (older files) or ["a", "b"].</summary>
    private static (string Left, string Right) ReadMerge(JsonElement merge, string path, int rank)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            var parts = merge.GetString()!.Split(' ');
            if (parts.Length != 2) throw MergeError(path, rank, $"merge \"{merge.GetString()}\" must be two tokens separated by one space");
            return (parts[0], parts[1]);
        }
        if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2 &&
            merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
            return (merge[0].GetString()!, merge[1].GetString()!);
        throw MergeError(path, rank, "a merge must be \"a b\" or [\"a\", \"b\"]");
    }

    private static TokenizerException MergeError(string path, int rank, string problem) => new($"{path}.merges[{rank}]: {problem}");

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Appends the ids of one pre-tokenized piece.</summary>
    public void Tokenize(ReadOnlySpan<char> word, List<int> output, BpeScratch scratch)
    {
        if (word.IsEmpty) return;
        if (_ignoreMerges && _vocabLookup.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (_cacheLookup.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int before = output.Count;
        MergeWord(word, output, scratch);
        // ConcurrentDictionary.Count takes every lock, so the size is tracked here instead.
        if (word.Length <= MaxCachedLength && Volatile.Read(ref _cacheCount) < CacheCapacity &&
            _cacheLookup.TryAdd(word, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)[before..].ToArray()))
            Interlocked.Increment(ref _cacheCount);
    }

    private void MergeWord(ReadOnlySpan<char> word, List<int> output, BpeScratch scratch)
    {
        // Byte fallback may turn one char, with its prefix or suffix, into several byte symbols.
        var symbols = scratch.Symbols(word.Length * (4 + _affixBytes) + 8);
        int count = 0;
        int unkId = -1, unkLength = 0;
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            bool isFirst = i == 0, isLast = i + width == word.Length;
            ReadOnlySpan<char> symbol = word.Slice(i, width);
            string? withAffixes = null;
            if ((_prefix is not null && !isFirst) || (_suffix is not null && isLast))
            {
                withAffixes = (_prefix is not null && !isFirst ? _prefix : "") + symbol.ToString() + (_suffix is not null && isLast ? _suffix : "");
                symbol = withAffixes;
            }
            i += width;

            int id = symbol.Length == 1 && symbol[0] < SmallCharLimit ? _smallCharIds[symbol[0]]
                : _vocabLookup.TryGetValue(symbol, out int found) ? found : -1;
            if (id >= 0)
            {
                if (unkId >= 0) { Add(unkId, unkLength); unkId = -1; }
                Add(id, width);
                continue;
            }
            if (_byteFallback && TryAddByteFallback(symbol)) continue;
            if (_unkToken is not null)
            {
                int unk = _vocab.TryGetValue(_unkToken, out int u) ? u
                    : throw new TokenizerException($"model.unk_token '{_unkToken}' is not in the vocab");
                if (unkId >= 0 && _fuseUnk) unkLength += width;
                else
                {
                    if (unkId >= 0) Add(unkId, unkLength);
                    unkId = unk;
                    unkLength = width;
                }
            }
            // Without unk_token or byte fallback, Hugging Face drops an unknown character.
        }
        if (unkId >= 0) Add(unkId, unkLength);

        if (count <= ShortWordLimit)
        {
            MergeShort(symbols, count, output);
            return;
        }
        MergeAll(symbols, count, scratch);
        for (int s = 0; s < count; s++)
            if (symbols[s].Length != 0) output.Add(symbols[s].Id);

        void Add(int id, int length)
        {
            symbols[count] = new BpeScratch.Symbol(id, count - 1, count + 1, length);
            count++;
        }

        bool TryAddByteFallback(ReadOnlySpan<char> text)
        {
            Span<byte> bytes = stackalloc byte[text.Length * 3];
            int n = Encoding.UTF8.GetBytes(text, bytes);
            for (int b = 0; b < n; b++)
                if (_byteFallbackIds[bytes[b]] < 0) return false;
            // A pending unk stays pending (it lands after these bytes), as in Hugging Face.
            for (int b = 0; b < n; b++) Add(_byteFallbackIds[bytes[b]], 1);
            return true;
        }
    }

    /// <summary>
    /// Short words: repeatedly merge the lowest-ranked adjacent pair, leftmost on ties, by scanning. This picks the
    /// same merges in the same order as the priority queue of <see cref="MergeAll"/> (whose stale entries can never
    /// pass its validity check), without the queue's overhead; quadratic, so only for short words.
    /// </summary>
    private void MergeShort(BpeScratch.Symbol[] symbols, int count, List<int> output)
    {
        Span<int> ids = stackalloc int[count];
        Span<long> pairs = stackalloc long[count]; // (rank << 32 | newId) of the pair starting at i, or long.MaxValue
        for (int i = 0; i < count; i++) ids[i] = symbols[i].Id;
        for (int i = 0; i + 1 < count; i++) pairs[i] = PairValue(ids[i], ids[i + 1]);
        int n = count;
        while (n > 1)
        {
            int best = 0;
            for (int i = 1; i < n - 1; i++)
                if (pairs[i] < pairs[best]) best = i; // strict: the leftmost of equal ranks wins
            if (pairs[best] == long.MaxValue) break;
            ids[best] = (int)(uint)pairs[best];
            ids.Slice(best + 2, n - best - 2).CopyTo(ids[(best + 1)..]);
            pairs.Slice(best + 2, n - best - 2).CopyTo(pairs[(best + 1)..]);
            n--;
            if (best > 0) pairs[best - 1] = PairValue(ids[best - 1], ids[best]);
            pairs[best] = best + 1 < n ? PairValue(ids[best], ids[best + 1]) : long.MaxValue;
        }
        for (int i = 0; i < n; i++) output.Add(ids[i]);
    }

    private long PairValue(int left, int right) =>
        _merges.TryGetValue(PairKey(left, right), out var target) ? ((long)target.Rank << 32) | (uint)target.NewId : long.MaxValue;

    private void MergeAll(BpeScratch.Symbol[] symbols, int count, BpeScratch scratch)
    {
        if (count < 2) return;
        symbols[count - 1].Next = -1;
        var queue = scratch.Queue;
        queue.Clear();
        for (int i = 0; i < count - 1; i++)
            if (_merges.TryGetValue(PairKey(symbols[i].Id, symbols[i + 1].Id), out var target))
                queue.Enqueue((i, target.NewId), Priority(target.Rank, i));

        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            ref var current = ref symbols[pos];
            if (current.Length == 0 || current.Next == -1) continue;
            int nextPos = current.Next;
            var right = symbols[nextPos];
            // Skip entries made stale by an earlier merge.
            if (!_merges.TryGetValue(PairKey(current.Id, right.Id), out var target) || target.NewId != top.NewId) continue;

            current.Id = top.NewId;
            current.Length += right.Length;
            current.Next = right.Next;
            symbols[nextPos].Length = 0;
            if (right.Next >= 0 && right.Next < count) symbols[right.Next].Prev = pos;

            if (current.Prev >= 0 && _merges.TryGetValue(PairKey(symbols[current.Prev].Id, current.Id), out var leftMerge))
                queue.Enqueue((current.Prev, leftMerge.NewId), Priority(leftMerge.Rank, current.Prev));
            if (current.Next >= 0 && _merges.TryGetValue(PairKey(current.Id, symbols[current.Next].Id), out var rightMerge))
                queue.Enqueue((pos, rightMerge.NewId), Priority(rightMerge.Rank, pos));
        }
    }

    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;
}

/// <summary>Per-thread working memory of the BPE merge loop.</summary>
internal sealed class BpeScratch
{
    public struct Symbol(int id, int prev, int next, int length)
    {
        public int Id = id, Prev = prev, Next = next, Length = length;
    }

    private Symbol[] _symbols = new Symbol[64];

    public PriorityQueue<(int Pos, int NewId), long> Queue { get; } = new();

    public Symbol[] Symbols(int capacity)
    {
        if (_symbols.Length < capacity) _symbols = new Symbol[Math.Max(capacity, _symbols.Length * 2)];
        return _symbols;
    }
}
