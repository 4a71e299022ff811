using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Python str behaviour over .NET strings: Python counts and indexes code points, not UTF-16 units.</summary>
internal static class PyString
{
    private static bool HasSurrogates(string s)
    {
        foreach (char c in s)
        {
            if (char.IsSurrogate(c))
                return true;
        }
        return false;
    }

    /// <summary>The characters (code points) of the string, each as a string.</summary>
    public static List<string> Characters(string s)
    {
        var result = new List<string>(s.Length);
        if (!HasSurrogates(s))
        {
            foreach (char c in s)
                result.Add(c.ToString());
            return result;
        }
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }
        return result;
    }

    public static long Length(string s) => HasSurrogates(s) ? Characters(s).Count : s.Length;

    public static int CompareCodePoints(string a, string b)
    {
        if (!HasSurrogates(a) && !HasSurrogates(b))
            return Math.Sign(string.CompareOrdinal(a, b));
        var ca = Characters(a);
        var cb = Characters(b);
        for (int i = 0; i < Math.Min(ca.Count, cb.Count); i++)
        {
            int x = char.ConvertToUtf32(ca[i], 0), y = char.ConvertToUtf32(cb[i], 0);
            if (x != y)
                return x < y ? -1 : 1;
        }
        return ca.Count.CompareTo(cb.Count);
    }

    /// <summary>Python's str.isspace() for one character.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is '\x1c' or '\x1d' or '\x1e' or '\x1f';

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? IsSpace : c => chars.Contains(c);
        int start = 0, end = s.Length;
        if (left)
        {
            while (start < end && strip(s[start]))
                start++;
        }
        if (right)
        {
            while (end > start && strip(s[end - 1]))
                end--;
        }
        return s[start..end];
    }

    /// <summary>Python's str.split(sep=None, maxsplit=-1).</summary>
    public static List<object?> Split(string s, string? separator, long maxSplit)
    {
        var parts = new List<object?>();
        if (separator is null)
        {
            // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i]))
                    i++;
                if (i >= s.Length)
                    break;
                if (maxSplit >= 0 && parts.Count == maxSplit)
                {
                    parts.Add(s[i..]); // the remainder keeps its trailing whitespace
                    break;
                }
                int start = i;
                while (i < s.Length && !IsSpace(s[i]))
                    i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        if (separator.Length == 0)
            throw new TemplateException("split(): empty separator");
        int position = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int next = s.IndexOf(separator, position, StringComparison.Ordinal);
            if (next < 0)
                break;
            parts.Add(s[position..next]);
            position = next + separator.Length;
        }
        parts.Add(s[position..]);
        return parts;
    }

    /// <summary>Python's str.splitlines() (without keepends).</summary>
    public static List<string> SplitLines(string s)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                lines.Add(s[start..i]);
                if (c == '\r' && i + 1 < s.Length && s[i + 1] == '\n')
                    i++;
                start = i + 1;
            }
        }
        if (start < s.Length)
            lines.Add(s[start..]);
        return lines;
    }

    /// <summary>Python's str.title(): a letter after a non-letter is upper-cased, the others lower-cased.</summary>
    public static string PythonTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousIsLetter = false;
        foreach (char c in s)
        {
            sb.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }

    /// <summary>Python's str.capitalize(): first character upper-cased, the rest lower-cased.</summary>
    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's str.replace(old, new, count=-1).</summary>
    public static string Replace(string s, string old, string replacement, long count)
    {
        if (old.Length == 0)
            throw new TemplateException("replace(): an empty search string is not supported");
        if (count < 0)
            return s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int position = 0;
        for (long done = 0; done < count; done++)
        {
            int next = s.IndexOf(old, position, StringComparison.Ordinal);
            if (next < 0)
                break;
            sb.Append(s, position, next - position).Append(replacement);
            position = next + old.Length;
        }
        sb.Append(s, position, s.Length - position);
        return sb.ToString();
    }
}
