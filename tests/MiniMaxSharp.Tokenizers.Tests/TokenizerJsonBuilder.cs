using System.Text.Json.Nodes;

namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>Writes small tokenizer.json documents for tests: the vocab is a token list, so a token's id is its index.</summary>
internal sealed class TokenizerJsonBuilder
{
    private readonly string[] _vocab;
    private readonly JsonArray _merges = [];
    private readonly JsonArray _added = [];
    private readonly JsonObject _model = new() { ["type"] = "BPE" };
    private string? _normalizer, _preTokenizer, _postProcessor, _decoder;

    public TokenizerJsonBuilder(params string[] vocab) => _vocab = vocab;

    public int Id(string token) => Array.IndexOf(_vocab, token) is var i && i >= 0 ? i : throw new ArgumentException(token);

    /// <summary>Merges in the ["a", "b"] spelling, or "a b" when <paramref name="legacySpelling"/>.</summary>
    public TokenizerJsonBuilder Merges(bool legacySpelling, params (string Left, string Right)[] merges)
    {
        foreach (var (left, right) in merges)
            _merges.Add(legacySpelling ? JsonValue.Create(left + " " + right) : new JsonArray(left, right));
        return this;
    }

    public TokenizerJsonBuilder Merges(params (string Left, string Right)[] merges) => Merges(false, merges);

    public TokenizerJsonBuilder Model(string field, JsonNode? value)
    {
        _model[field] = value;
        return this;
    }

    public TokenizerJsonBuilder Added(string content, bool special = true, bool lstrip = false, bool rstrip = false,
        bool singleWord = false, bool normalized = false)
    {
        _added.Add(new JsonObject
        {
            ["id"] = Id(content), ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = lstrip,
            ["rstrip"] = rstrip, ["normalized"] = normalized, ["special"] = special,
        });
        return this;
    }

    public TokenizerJsonBuilder Normalizer(string json) { _normalizer = json; return this; }
    public TokenizerJsonBuilder PreTokenizer(string json) { _preTokenizer = json; return this; }
    public TokenizerJsonBuilder PostProcessor(string json) { _postProcessor = json; return this; }
    public TokenizerJsonBuilder Decoder(string json) { _decoder = json; return this; }

    public string Json()
    {
        var vocab = new JsonObject();
        for (int i = 0; i < _vocab.Length; i++) vocab[_vocab[i]] = i;
        var model = (JsonObject)_model.DeepClone();
        model["vocab"] = vocab;
        model["merges"] = _merges.DeepClone();
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = _added.DeepClone(),
            ["normalizer"] = Parse(_normalizer),
            ["pre_tokenizer"] = Parse(_preTokenizer),
            ["post_processor"] = Parse(_postProcessor),
            ["decoder"] = Parse(_decoder),
            ["model"] = model,
        };
        return root.ToJsonString();
    }

    public Tokenizer Build() => Tokenizer.FromJson(Json());

    private static JsonNode? Parse(string? json) => json is null ? null : JsonNode.Parse(json);
}
