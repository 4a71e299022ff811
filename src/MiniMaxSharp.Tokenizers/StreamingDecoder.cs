namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// Decodes ids as a model produces them. Each <see cref="Push"/> returns the text that became complete; a
/// character whose UTF-8 bytes are spread over several tokens is held back until its last byte arrives.
/// Like Hugging Face's DecodeStream, it re-decodes a short window of recent ids so that decoders which look at
/// neighbouring tokens (Metaspace, Strip) behave as in a full decode.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<string> _window = [];
    private string _prefix = "";
    private int _prefixTokens;

    internal StreamingDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one id and returns the newly completed text (possibly empty).</summary>
    public string Push(int id)
    {
        string token = _tokenizer.IdToToken(id) ?? throw new TokenizerException($"id {id} is not in the vocabulary (size {_tokenizer.VocabSize})");
        if (_skipSpecialTokens && _tokenizer.SpecialTokenIds.Contains(id)) return "";
        _window.Add(token);
        string text = _tokenizer.DecodeTokens([.. _window]);
        // A trailing U+FFFD means the last character's bytes are still incomplete.
        if (text.Length <= _prefix.Length || text[^1] == '\uFFFD') return "";
        if (!text.StartsWith(_prefix, StringComparison.Ordinal))
            throw new TokenizerException("streaming decode: the decoder rewrote text it had already emitted");
        string fresh = text[_prefix.Length..];
        // Keep the ids since the previous emission as context for the next step.
        _window.RemoveRange(0, _prefixTokens);
        _prefix = _tokenizer.DecodeTokens([.. _window]);
        _prefixTokens = _window.Count;
        return fresh;
    }

    /// <summary>Returns whatever is still held back (incomplete bytes come out as U+FFFD) and resets the stream.</summary>
    public string Flush()
    {
        string text = _window.Count == 0 ? "" : _tokenizer.DecodeTokens([.. _window]);
        string rest = text.Length > _prefix.Length && text.StartsWith(_prefix, StringComparison.Ordinal) ? text[_prefix.Length..] : "";
        _window.Clear();
        _prefix = "";
        _prefixTokens = 0;
        return rest;
    }
}
