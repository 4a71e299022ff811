using System.Collections.Frozen;
using System.Text;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer: added tokens, normalizer, pre-tokenizer, BPE model,
/// post-processor and decoder, giving the same ids and text as the Rust <c>tokenizers</c> library.
/// Thread-safe: one instance may encode and decode from many threads.
/// </summary>
public sealed class Tokenizer
{
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly BpeModel _model;
    private readonly PostProcessor? _postProcessor;
    private readonly Decoder? _decoder;
    private readonly AddedTokenMatcher _rawAddedTokens, _normalizedAddedTokens;
    private readonly Dictionary<int, AddedToken> _addedById = [];
    private readonly Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    private readonly FrozenSet<int> _specialIds;
    private readonly TruncationSettings? _truncation;
    private readonly PaddingSettings? _padding;

    private sealed record TruncationSettings(int MaxLength, bool FromLeft);
    private sealed record PaddingSettings(int? FixedLength, int MultipleOf, int PadId, bool OnLeft);

    private Tokenizer(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new TokenizerException($"{source}: expected a JSON object at the top level");

        var modelJson = JsonFields.RequireObject(root, "model", source);
        string modelType = JsonFields.OptString(modelJson, "type", source + ".model")
            ?? (modelJson.TryGetProperty("merges", out _) ? "BPE" : "(none)");
        if (modelType != "BPE") throw JsonFields.Unsupported(source + ".model", "model", modelType, "BPE");
        _model = BpeModel.FromJson(modelJson, source + ".model");

        if (JsonFields.TryGet(root, "normalizer", out var normalizer))
            _normalizer = Normalizer.FromJson(normalizer, source + ".normalizer");
        if (JsonFields.TryGet(root, "pre_tokenizer", out var preTokenizer))
            _preTokenizer = PreTokenizer.FromJson(preTokenizer, source + ".pre_tokenizer");
        if (JsonFields.TryGet(root, "post_processor", out var postProcessor))
            _postProcessor = PostProcessor.FromJson(postProcessor, source + ".post_processor");
        if (JsonFields.TryGet(root, "decoder", out var decoder))
            _decoder = Decoder.FromJson(decoder, source + ".decoder");

        var added = ReadAddedTokens(root, source, _model);
        foreach (var token in added)
        {
            _addedById[token.Id] = token;
            _addedByContent[token.Content] = token;
        }
        _specialIds = added.Where(t => t.Special).Select(t => t.Id).ToFrozenSet();
        // Special tokens take precedence when two share a pattern, as in Hugging Face's matcher.
        added = added.OrderBy(t => !t.Special).ToList();
        _rawAddedTokens = new AddedTokenMatcher(added.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedAddedTokens = new AddedTokenMatcher(added.Where(t => t.Normalized)
            .Select(t => (_normalizer?.Normalize(t.Content) ?? t.Content, t)));

        VocabSize = Math.Max(_model.MaxId, added.Count == 0 ? -1 : added.Max(t => t.Id)) + 1;
        _truncation = ReadTruncation(root, source);
        _padding = ReadPadding(root, source);
    }

    /// <summary>
    /// Reads added_tokens and gives them ids the way Hugging Face does when loading: a token already in the model
    /// vocab keeps that id, any other gets the next id after the vocab (the "id" written in the file is only a hint
    /// there, so a file whose ids disagree loads with Hugging Face's ids). Empty tokens are ignored, as there.
    /// </summary>
    private static List<AddedToken> ReadAddedTokens(JsonElement root, string source, BpeModel model)
    {
        var tokens = new List<AddedToken>();
        if (!JsonFields.TryGet(root, "added_tokens", out var addedJson)) return tokens;
        if (addedJson.ValueKind != JsonValueKind.Array) throw new TokenizerException($"{source}.added_tokens: expected an array");
        var idByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        int modelVocabCount = model.Vocab.Count;
        int maxId = -1;
        int index = 0;
        foreach (var item in addedJson.EnumerateArray())
        {
            var token = AddedToken.FromJson(item, $"{source}.added_tokens[{index++}]");
            if (token.Content.Length == 0) continue;
            if (!idByContent.TryGetValue(token.Content, out int id))
            {
                id = model.TokenToId(token.Content)
                    ?? (maxId < 0 ? modelVocabCount : maxId >= modelVocabCount || modelVocabCount == 0 ? maxId + 1 : modelVocabCount);
                idByContent[token.Content] = id;
            }
            maxId = Math.Max(maxId, id);
            tokens.Add(token with { Id = id });
        }
        return tokens;
    }

    /// <summary>Loads a tokenizer.json file, or the tokenizer.json inside a directory.</summary>
    public static Tokenizer FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(file)) throw new TokenizerException($"{file}: tokenizer file not found");
        return Load(Utf8Text.ReadFile(file), file);
    }

    /// <summary>Loads a tokenizer from the text of a tokenizer.json.</summary>
    public static Tokenizer FromJson(string json) => Load(json, "tokenizer.json");

    private static Tokenizer Load(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{source}: malformed JSON at line {(e.LineNumber ?? 0) + 1}, byte {e.BytePositionInLine ?? 0}: {e.Message}", e);
        }
        using (document) return new Tokenizer(document.RootElement, source);
    }

    /// <summary>Number of ids: the highest id of the vocab and the added tokens, plus one.</summary>
    public int VocabSize { get; }

    /// <summary>Ids of the added tokens marked special (skipped by decoding with skipSpecialTokens).</summary>
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;

    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedByContent.TryGetValue(token, out var added) ? added.Id : _model.TokenToId(token);
    }

    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var added) ? added.Content : _model.IdToToken(id);

    /// <summary>Encodes text; <paramref name="addSpecialTokens"/> runs the post-processor (BOS/EOS and the like).</summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        int unpaired = UnicodeClass.FindUnpairedSurrogate(text);
        if (unpaired >= 0)
            throw new TokenizerException($"input text has an unpaired UTF-16 surrogate at char offset {unpaired}, so it is not valid Unicode");

        var scratch = EncodeScratch.ForCurrentThread();
        var ids = new List<int>();
        var segments = scratch.Segments;
        segments.Clear();
        if (_rawAddedTokens.IsEmpty) segments.Add(new Segment(0, text.Length, -1));
        else _rawAddedTokens.Split(text, segments);
        foreach (var segment in segments)
        {
            if (segment.IsText) EncodeSegment(text.AsSpan(segment.Start, segment.Length), segment.Start == 0, ids, scratch);
            else ids.Add(segment.TokenId);
        }
        return Finish(ids, addSpecialTokens);
    }

    /// <summary>Encodes UTF-8 bytes; invalid UTF-8 gets a <see cref="TokenizerException"/> naming the byte offset.</summary>
    public IReadOnlyList<int> Encode(ReadOnlySpan<byte> utf8, bool addSpecialTokens = true) =>
        Encode(Utf8Text.Decode(utf8, "input text"), addSpecialTokens);

    private void EncodeSegment(ReadOnlySpan<char> text, bool atOriginalStart, List<int> ids, EncodeScratch scratch)
    {
        if (_normalizer is not null) text = _normalizer.Normalize(text.ToString());
        if (_normalizedAddedTokens.IsEmpty)
        {
            PreTokenizeAndModel(text, atOriginalStart, ids, scratch);
            return;
        }
        var segments = scratch.NormalizedSegments;
        segments.Clear();
        _normalizedAddedTokens.Split(text, segments);
        foreach (var segment in segments)
        {
            if (segment.IsText) PreTokenizeAndModel(text.Slice(segment.Start, segment.Length), atOriginalStart && segment.Start == 0, ids, scratch);
            else ids.Add(segment.TokenId);
        }
    }

    private void PreTokenizeAndModel(ReadOnlySpan<char> text, bool atOriginalStart, List<int> ids, EncodeScratch scratch)
    {
        if (text.IsEmpty) return;
        if (_preTokenizer is null)
        {
            _model.Tokenize(text, ids, scratch.Bpe);
            return;
        }
        var input = scratch.RentPieces();
        var output = scratch.RentPieces();
        input.Add(text, atOriginalStart);
        _preTokenizer.Apply(input, output, scratch);
        for (int i = 0; i < output.Count; i++) _model.Tokenize(output.TextOf(i), ids, scratch.Bpe);
        scratch.ReturnPieces(input);
        scratch.ReturnPieces(output);
    }

    /// <summary>Truncation, post-processing and padding, in Hugging Face's order.</summary>
    private List<int> Finish(List<int> ids, bool addSpecialTokens)
    {
        if (_truncation is not null)
        {
            int added = addSpecialTokens && _postProcessor is not null ? _postProcessor.AddedCount : 0;
            int keep = Math.Max(0, _truncation.MaxLength - added);
            if (ids.Count > keep)
            {
                if (_truncation.FromLeft) ids.RemoveRange(0, ids.Count - keep);
                else ids.RemoveRange(keep, ids.Count - keep);
            }
        }
        if (addSpecialTokens && _postProcessor is not null) ids = _postProcessor.Process(ids);
        if (_padding is not null)
        {
            int target = _padding.FixedLength ?? ids.Count;
            if (_padding.MultipleOf > 0 && target % _padding.MultipleOf != 0) target += _padding.MultipleOf - target % _padding.MultipleOf;
            if (ids.Count < target)
            {
                var pads = Enumerable.Repeat(_padding.PadId, target - ids.Count);
                if (_padding.OnLeft) ids.InsertRange(0, pads);
                else ids.AddRange(pads);
            }
        }
        return ids;
    }

    /// <summary>
    /// Decodes ids to text. An id outside the vocabulary is an error (Hugging Face would drop it silently).
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            string token = IdToToken(id) ?? throw new TokenizerException($"id {id} is not in the vocabulary (size {VocabSize})");
            if (!skipSpecialTokens || !_specialIds.Contains(id)) tokens.Add(token);
        }
        return DecodeTokens(tokens);
    }

    internal string DecodeTokens(List<string> tokens) =>
        _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));

    /// <summary>A decoder for ids that arrive one at a time, emitting text only at whole characters.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    private static TruncationSettings? ReadTruncation(JsonElement root, string source)
    {
        if (!JsonFields.TryGet(root, "truncation", out var json)) return null;
        string path = source + ".truncation";
        int maxLength = JsonFields.RequireInt(json, "max_length", path);
        string direction = JsonFields.OptString(json, "direction", path) ?? "Right";
        if (direction is not ("Right" or "Left")) throw new TokenizerException($"{path}.direction: expected Right or Left but found '{direction}'");
        return new TruncationSettings(maxLength, direction == "Left");
    }

    private static PaddingSettings? ReadPadding(JsonElement root, string source)
    {
        if (!JsonFields.TryGet(root, "padding", out var json)) return null;
        string path = source + ".padding";
        int? fixedLength = null;
        var strategy = JsonFields.Require(json, "strategy", path);
        if (strategy.ValueKind == JsonValueKind.Object && JsonFields.TryGet(strategy, "Fixed", out var fixedJson))
            fixedLength = JsonFields.AsInt(fixedJson, path + ".strategy.Fixed");
        else if (!(strategy.ValueKind == JsonValueKind.String && strategy.GetString() == "BatchLongest"))
            throw new TokenizerException($"{path}.strategy: expected \"BatchLongest\" or {{\"Fixed\": n}}");
        string direction = JsonFields.OptString(json, "direction", path) ?? "Right";
        if (direction is not ("Right" or "Left")) throw new TokenizerException($"{path}.direction: expected Right or Left but found '{direction}'");
        return new PaddingSettings(fixedLength, JsonFields.OptInt(json, "pad_to_multiple_of", 0, path),
            JsonFields.OptInt(json, "pad_id", 0, path), direction == "Left");
    }
}
