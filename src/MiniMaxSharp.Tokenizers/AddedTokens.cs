using System.Buffers;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>An entry of tokenizer.json's added_tokens: text matched as a whole before pre-tokenisation.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special)
{
    public static AddedToken FromJson(JsonElement json, string path) => new(
        JsonFields.RequireInt(json, "id", path),
        JsonFields.RequireString(json, "content", path),
        JsonFields.OptBool(json, "single_word", false, path),
        JsonFields.OptBool(json, "lstrip", false, path),
        JsonFields.OptBool(json, "rstrip", false, path),
        JsonFields.OptBool(json, "normalized", false, path),
        JsonFields.OptBool(json, "special", false, path));
}

/// <summary>A span of input text: either plain text (<see cref="TokenId"/> = -1) or one added token.</summary>
internal readonly record struct Segment(int Start, int Length, int TokenId)
{
    public bool IsText => TokenId < 0;
}

/// <summary>
/// Finds added tokens in text the way Hugging Face's AddedVocabulary does: leftmost-longest matches, with the
/// single_word, lstrip and rstrip rules applied to each match.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<string, AddedToken> _byPattern = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AddedToken>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int[] _lengthsDescending;
    private readonly SearchValues<char> _firstChars;

    public bool IsEmpty => _byPattern.Count == 0;

    /// <summary>Each token is matched by its pattern (its content, or its normalized content).</summary>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> entries)
    {
        foreach (var (pattern, token) in entries)
            if (pattern.Length > 0) _byPattern.TryAdd(pattern, token);
        _lookup = _byPattern.GetAlternateLookup<ReadOnlySpan<char>>();
        _lengthsDescending = _byPattern.Keys.Select(k => k.Length).Distinct().OrderDescending().ToArray();
        _firstChars = SearchValues.Create(_byPattern.Keys.Select(k => k[0]).Distinct().ToArray());
    }

    public void Split(ReadOnlySpan<char> text, List<Segment> output)
    {
        int startOffset = 0, searchFrom = 0;
        while (searchFrom < text.Length)
        {
            int found = text[searchFrom..].IndexOfAny(_firstChars);
            if (found < 0) break;
            int at = searchFrom + found;
            AddedToken? token = null;
            int length = 0;
            foreach (int candidate in _lengthsDescending)
            {
                if (at + candidate <= text.Length && _lookup.TryGetValue(text.Slice(at, candidate), out token))
                {
                    length = candidate;
                    break;
                }
            }
            if (token is null) { searchFrom = at + 1; continue; }

            int start = at, stop = at + length;
            searchFrom = stop;
            if (token.SingleWord)
            {
                bool wordBefore = start > 0 && UnicodeClass.IsWordChar(CodePointBefore(text, start));
                bool wordAfter = stop < text.Length && UnicodeClass.IsWordChar(UnicodeClass.CodePointAt(text, stop));
                if (wordBefore || wordAfter) continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && UnicodeClass.IsWhiteSpace(text[newStart - 1])) newStart--;
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < text.Length && UnicodeClass.IsWhiteSpace(text[stop])) stop++;
                searchFrom = stop;
            }
            if (startOffset < start) output.Add(new Segment(startOffset, start - startOffset, -1));
            output.Add(new Segment(start, stop - start, token.Id));
            startOffset = stop;
        }
        if (startOffset < text.Length) output.Add(new Segment(startOffset, text.Length - startOffset, -1));
    }

    private static int CodePointBefore(ReadOnlySpan<char> text, int index)
    {
        char c = text[index - 1];
        if (char.IsLowSurrogate(c) && index >= 2 && char.IsHighSurrogate(text[index - 2]))
            return char.ConvertToUtf32(text[index - 2], c);
        return c;
    }
}
