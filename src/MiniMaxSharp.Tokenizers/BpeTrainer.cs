using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// Trains a GPT-2 style byte-level BPE: text is split with the GPT-2 regex, every word starts as its UTF-8 bytes
/// (the 256 byte symbols are the initial alphabet), and the most frequent adjacent pair is merged until the vocab
/// reaches the requested size. Pair counts are updated incrementally, only in the words a merge touches.
/// The result is a standard tokenizer.json that Hugging Face tokenizers and <see cref="Tokenizer"/> load.
/// </summary>
public sealed class BpeTrainer
{
    private readonly int _vocabSize;
    private readonly IReadOnlyList<string> _specialTokens;
    private readonly int _minFrequency;
    private readonly Dictionary<string, long> _wordCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> _wordLookup;
    private readonly AddedTokenMatcher _specialMatcher;

    /// <param name="vocabSize">Size of the final vocab, special tokens and the 256 byte symbols included.</param>
    /// <param name="specialTokens">Tokens given the first ids and never split (e.g. &lt;|endoftext|&gt;); they are also cut out of the training text.</param>
    /// <param name="minFrequency">Training stops when the best pair occurs fewer times than this.</param>
    public BpeTrainer(int vocabSize, IReadOnlyList<string>? specialTokens = null, int minFrequency = 0)
    {
        _specialTokens = (specialTokens ?? []).Distinct(StringComparer.Ordinal).ToArray();
        if (_specialTokens.Any(string.IsNullOrEmpty)) throw new ArgumentException("special tokens must not be empty", nameof(specialTokens));
        int minimum = _specialTokens.Count + 256;
        if (vocabSize < minimum)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"the vocab must hold at least the {minimum} special and byte tokens");
        _vocabSize = vocabSize;
        _minFrequency = minFrequency;
        _wordLookup = _wordCounts.GetAlternateLookup<ReadOnlySpan<char>>();
        _specialMatcher = new AddedTokenMatcher(_specialTokens.Select((t, i) =>
            (t, new AddedToken(i, t, false, false, false, false, true))));
    }

    /// <summary>Counts the words of <paramref name="text"/>; call as often as needed before <see cref="Train"/>.</summary>
    public void AddText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int unpaired = UnicodeClass.FindUnpairedSurrogate(text);
        if (unpaired >= 0) throw new TokenizerException($"training text has an unpaired UTF-16 surrogate at char offset {unpaired}");
        var segments = new List<Segment>();
        if (_specialMatcher.IsEmpty) segments.Add(new Segment(0, text.Length, -1));
        else _specialMatcher.Split(text, segments);
        foreach (var segment in segments)
        {
            if (!segment.IsText) continue;
            var span = text.AsSpan(segment.Start, segment.Length);
            for (int at = 0; at < span.Length;)
            {
                int length = Gpt2Splitter.MatchLength(span, at);
                var word = span.Slice(at, length);
                _wordLookup[word] = _wordLookup.TryGetValue(word, out long count) ? count + 1 : 1;
                at += length;
            }
        }
    }

    /// <summary>Adds a UTF-8 text file; invalid UTF-8 is reported with the file and byte offset.</summary>
    public void AddFile(string path)
    {
        AddText(Utf8Text.ReadFile(path));
    }

    /// <summary>Runs the merges and returns the text of the trained tokenizer.json.</summary>
    public string Train()
    {
        var (tokens, merges) = LearnMerges();
        return WriteJson(tokens, merges);
    }

    /// <summary>Trains and writes <c>directory/tokenizer.json</c> atomically; returns the file's path.</summary>
    public string TrainToDirectory(string directory)
    {
        string json = Train();
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, "tokenizer.json");
        string temp = Path.Combine(directory, $".tokenizer.json.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, json, new UTF8Encoding(false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return path;
    }

    private sealed class Word(int[] symbols, long count)
    {
        public int[] Symbols = symbols;
        public int Length = symbols.Length;
        public readonly long Count = count;
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private (List<string> Tokens, List<(int Left, int Right)> Merges) LearnMerges()
    {
        var tokens = new List<string>(_vocabSize);
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var special in _specialTokens) AddToken(special);
        var byteIds = new int[256];
        // The alphabet in code point order, as Hugging Face's trainer sorts it.
        foreach (char symbol in ByteLevelAlphabet.ByteToChar.Order())
            byteIds[ByteLevelAlphabet.CharToByte(symbol)] = AddToken(symbol.ToString());

        var words = new List<Word>(_wordCounts.Count);
        var utf8 = new byte[256];
        foreach (var (text, count) in _wordCounts)
        {
            int maxBytes = Encoding.UTF8.GetMaxByteCount(text.Length);
            if (utf8.Length < maxBytes) utf8 = new byte[maxBytes];
            int n = Encoding.UTF8.GetBytes(text, utf8);
            var symbols = new int[n];
            for (int i = 0; i < n; i++) symbols[i] = byteIds[utf8[i]];
            words.Add(new Word(symbols, count));
        }

        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            var word = words[w];
            for (int i = 0; i + 1 < word.Length; i++)
            {
                long key = PairKey(word.Symbols[i], word.Symbols[i + 1]);
                pairCounts[key] = pairCounts.GetValueOrDefault(key) + word.Count;
                Occurrences(key).Add(w);
            }
        }

        // Max count first, then the smaller pair of ids; entries go stale as counts change and are refreshed on pop.
        var queue = new PriorityQueue<long, (long NegativeCount, long Pair)>();
        foreach (var (pair, count) in pairCounts)
            if (count > 0) queue.Enqueue(pair, (-count, pair));

        var merges = new List<(int, int)>();
        var changed = new HashSet<long>();
        while (tokens.Count < _vocabSize && queue.TryDequeue(out long top, out var priority))
        {
            long current = pairCounts.GetValueOrDefault(top);
            if (current != -priority.NegativeCount)
            {
                if (current > 0) queue.Enqueue(top, (-current, top));
                continue;
            }
            if (current < Math.Max(1, _minFrequency)) break;

            int left = (int)(top >> 32), right = (int)(uint)top;
            string merged = tokens[left] + tokens[right];
            int newId = idOf.TryGetValue(merged, out int existing) ? existing : AddToken(merged);
            merges.Add((left, right));

            changed.Clear();
            foreach (int w in pairWords[top]) MergeInWord(words[w], w, left, right, newId);
            pairCounts.Remove(top);
            pairWords.Remove(top);
            foreach (long pair in changed)
            {
                long count = pairCounts.GetValueOrDefault(pair);
                if (count > 0) queue.Enqueue(pair, (-count, pair));
            }
        }
        return (tokens, merges);

        int AddToken(string token)
        {
            idOf[token] = tokens.Count;
            tokens.Add(token);
            return tokens.Count - 1;
        }

        HashSet<int> Occurrences(long key)
        {
            if (!pairWords.TryGetValue(key, out var set)) pairWords[key] = set = [];
            return set;
        }

        void Change(long pair, long delta, int wordIndex)
        {
            pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + delta;
            if (delta > 0)
            {
                Occurrences(pair).Add(wordIndex);
                changed.Add(pair);
            }
        }

        // Replaces each left-to-right occurrence of (left, right) and moves the counts of the neighbouring pairs.
        void MergeInWord(Word word, int wordIndex, int left, int right, int newId)
        {
            var s = word.Symbols;
            int length = word.Length, write = 0;
            for (int read = 0; read < length; read++)
            {
                if (read + 1 < length && s[read] == left && s[read + 1] == right)
                {
                    if (write > 0)
                    {
                        Change(PairKey(s[write - 1], left), -word.Count, wordIndex);
                        Change(PairKey(s[write - 1], newId), word.Count, wordIndex);
                    }
                    if (read + 2 < length)
                    {
                        Change(PairKey(right, s[read + 2]), -word.Count, wordIndex);
                        Change(PairKey(newId, s[read + 2]), word.Count, wordIndex);
                    }
                    s[write++] = newId;
                    read++;
                }
                else s[write++] = s[read];
            }
            word.Length = write;
        }
    }

    private string WriteJson(List<string> tokens, List<(int Left, int Right)> merges)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < _specialTokens.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", i);
                w.WriteString("content", _specialTokens[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            WriteByteLevel(w, "pre_tokenizer", addPrefixSpace: false, trimOffsets: true);
            WriteByteLevel(w, "post_processor", addPrefixSpace: true, trimOffsets: false);
            WriteByteLevel(w, "decoder", addPrefixSpace: true, trimOffsets: true);

            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            for (int id = 0; id < tokens.Count; id++) w.WriteNumber(tokens[id], id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (left, right) in merges)
            {
                w.WriteStartArray();
                w.WriteStringValue(tokens[left]);
                w.WriteStringValue(tokens[right]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteByteLevel(Utf8JsonWriter w, string name, bool addPrefixSpace, bool trimOffsets)
    {
        w.WriteStartObject(name);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", addPrefixSpace);
        w.WriteBoolean("trim_offsets", trimOffsets);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
    }
}
