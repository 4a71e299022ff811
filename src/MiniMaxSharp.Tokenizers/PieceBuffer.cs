namespace MiniMaxSharp.Tokenizers;

/// <summary>A piece of text awaiting the model; <see cref="AtOriginalStart"/> says it begins at offset 0 of the input.</summary>
internal readonly record struct Piece(int Start, int Length, bool AtOriginalStart);

/// <summary>
/// The pieces of one stage of pre-tokenisation, stored back to back in one reusable char array so that splitting
/// text allocates nothing per piece.
/// </summary>
internal sealed class PieceBuffer
{
    private char[] _chars = new char[256];
    private Piece[] _pieces = new Piece[32];

    public int Count { get; private set; }

    private int _length;

    public void Clear()
    {
        Count = 0;
        _length = 0;
    }

    /// <summary>Drops storage grown by an unusually large input, so an idle thread does not keep it.</summary>
    public void ReleaseIfLarge()
    {
        const int keep = 1 << 20;
        if (_chars.Length > keep) _chars = new char[256];
        if (_pieces.Length > keep / 8) _pieces = new Piece[32];
    }

    public Piece this[int index] => _pieces[index];

    public ReadOnlySpan<char> TextOf(Piece piece) => _chars.AsSpan(piece.Start, piece.Length);

    public ReadOnlySpan<char> TextOf(int index) => TextOf(_pieces[index]);

    public void Add(ReadOnlySpan<char> text, bool atOriginalStart)
    {
        if (text.IsEmpty) return; // Hugging Face drops empty splits.
        EnsureChars(text.Length);
        text.CopyTo(_chars.AsSpan(_length));
        AddPiece(_length, text.Length, atOriginalStart);
        _length += text.Length;
    }

    /// <summary>Room for <paramref name="maxLength"/> chars of a new piece; finish it with <see cref="CommitPiece"/>.</summary>
    public Span<char> BeginPiece(int maxLength)
    {
        EnsureChars(maxLength);
        return _chars.AsSpan(_length, maxLength);
    }

    public void CommitPiece(int length, bool atOriginalStart)
    {
        if (length == 0) return;
        AddPiece(_length, length, atOriginalStart);
        _length += length;
    }

    private void AddPiece(int start, int length, bool atOriginalStart)
    {
        if (Count == _pieces.Length) Array.Resize(ref _pieces, _pieces.Length * 2);
        _pieces[Count++] = new Piece(start, length, atOriginalStart);
    }

    private void EnsureChars(int extra)
    {
        if (_length + extra <= _chars.Length) return;
        Array.Resize(ref _chars, Math.Max(_chars.Length * 2, _length + extra));
    }
}

/// <summary>What a split does with the delimiters it finds (Hugging Face's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>A span of a piece that a pattern either matched or skipped over.</summary>
internal readonly record struct PatternSpan(int Start, int End, bool IsMatch);

internal static class SplitBehaviors
{
    public static SplitBehavior Parse(string value, string path) => value switch
    {
        "Removed" or "removed" => SplitBehavior.Removed,
        "Isolated" or "isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" or "merged_with_previous" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" or "merged_with_next" => SplitBehavior.MergedWithNext,
        "Contiguous" or "contiguous" => SplitBehavior.Contiguous,
        _ => throw new TokenizerException($"{path}: unknown split behavior '{value}' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)"),
    };

    /// <summary>
    /// Turns the match list of one piece (covering it end to end) into output pieces, as NormalizedString::split does.
    /// </summary>
    public static void Emit(List<PatternSpan> spans, SplitBehavior behavior, ReadOnlySpan<char> text, bool atOriginalStart, PieceBuffer output)
    {
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in spans) Add(text, s.Start, s.End);
                return;
            case SplitBehavior.Removed:
                foreach (var s in spans)
                    if (!s.IsMatch) Add(text, s.Start, s.End);
                return;
            case SplitBehavior.Contiguous:
            case SplitBehavior.MergedWithPrevious:
            {
                int curStart = -1, curEnd = -1;
                bool previousMatch = false;
                foreach (var s in spans)
                {
                    bool extend = behavior == SplitBehavior.Contiguous ? s.IsMatch == previousMatch : s.IsMatch && !previousMatch;
                    if (extend && curStart >= 0) curEnd = s.End;
                    else
                    {
                        if (curStart >= 0) Add(text, curStart, curEnd);
                        curStart = s.Start;
                        curEnd = s.End;
                    }
                    previousMatch = s.IsMatch;
                }
                if (curStart >= 0) Add(text, curStart, curEnd);
                return;
            }
            case SplitBehavior.MergedWithNext:
            {
                // Walk backwards: a match glues onto the piece that follows it.
                var merged = new List<(int Start, int End)>();
                bool previousMatch = false;
                for (int i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.IsMatch && !previousMatch && merged.Count > 0) merged[^1] = (s.Start, merged[^1].End);
                    else merged.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                for (int i = merged.Count - 1; i >= 0; i--) Add(text, merged[i].Start, merged[i].End);
                return;
            }
        }

        void Add(ReadOnlySpan<char> source, int start, int end) => output.Add(source[start..end], atOriginalStart && start == 0);
    }

    /// <summary>Each code point that satisfies <paramref name="predicate"/> is a match of its own (Rust's Fn(char) pattern).</summary>
    public static void FindCharMatches(ReadOnlySpan<char> text, Func<int, bool> predicate, List<PatternSpan> spans)
    {
        spans.Clear();
        int last = 0;
        for (int i = 0; i < text.Length;)
        {
            int width = char.IsHighSurrogate(text[i]) && i + 1 < text.Length ? 2 : 1;
            int cp = width == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            if (predicate(cp))
            {
                if (last < i) spans.Add(new PatternSpan(last, i, false));
                spans.Add(new PatternSpan(i, i + width, true));
                last = i + width;
            }
            i += width;
        }
        if (last < text.Length) spans.Add(new PatternSpan(last, text.Length, false));
    }

    public static void Invert(List<PatternSpan> spans)
    {
        for (int i = 0; i < spans.Count; i++) spans[i] = spans[i] with { IsMatch = !spans[i].IsMatch };
    }
}
