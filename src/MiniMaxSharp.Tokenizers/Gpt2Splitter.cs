namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// A hand-written matcher for GPT-2's pre-tokenizer regex
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>,
/// giving the same pieces as the regex (per code point) at a fraction of the cost.
/// </summary>
internal static class Gpt2Splitter
{
    /// <summary>Length in chars of the regex match that starts at <paramref name="start"/>.</summary>
    public static int MatchLength(ReadOnlySpan<char> s, int start)
    {
        int n = s.Length;
        char c = s[start];
        if (c == '\'' && start + 1 < n)
        {
            char d = s[start + 1];
            if (d is 's' or 't' or 'm' or 'd') return 2;
            if (start + 2 < n && ((d is 'r' or 'v' && s[start + 2] == 'e') || (d == 'l' && s[start + 2] == 'l'))) return 3;
        }

        int i = start;
        byte cls = UnicodeClass.ClassAt(s, i, out int width);
        if (c == ' ' && i + 1 < n)
        {
            // " ?X+": a single space may lead a run of letters, numbers or other symbols.
            byte next = UnicodeClass.ClassAt(s, i + 1, out int nextWidth);
            if (next != UnicodeClass.Space)
            {
                cls = next;
                i += 1 + nextWidth;
                return RunEnd(s, i, cls) - start;
            }
        }
        if (cls != UnicodeClass.Space) return RunEnd(s, i + width, cls) - start;

        // Whitespace (always one UTF-16 unit): "\s+(?!\S)" leaves the last space of a run for the next word,
        // otherwise "\s+" takes the run.
        int end = i + 1;
        while (end < n && UnicodeClass.ClassAt(s, end, out _) == UnicodeClass.Space) end++;
        if (end < n && end - start >= 2) end--;
        return end - start;
    }

    private static int RunEnd(ReadOnlySpan<char> s, int i, byte cls)
    {
        while (i < s.Length)
        {
            if (UnicodeClass.ClassAt(s, i, out int w) != cls) break;
            i += w;
        }
        return i;
    }
}
