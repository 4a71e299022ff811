using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// A Hugging Face pattern (<c>{"String": ...}</c> or <c>{"Regex": ...}</c>) that finds matches the way the Rust
/// Oniguruma binding does. .NET's engine differs in two ways that matter here, both handled:
/// possessive quantifiers (rewritten as atomic groups), and code points above U+FFFF, which .NET sees as two
/// surrogates without the code point's category (matched against a same-category BMP stand-in instead).
/// </summary>
internal sealed class OnigRegex
{
    private readonly string? _literal;
    private readonly Regex? _regex;

    public string Source { get; }

    private OnigRegex(string source, string? literal, Regex? regex)
    {
        Source = source;
        _literal = literal;
        _regex = regex;
    }

    public static OnigRegex Literal(string text) => new(text, text, null);

    public static OnigRegex FromOnigPattern(string pattern, string path)
    {
        string translated = TranslatePattern(pattern, path);
        try
        {
            var regex = new Regex(translated, RegexOptions.Multiline | RegexOptions.CultureInvariant | RegexOptions.Compiled);
            return new OnigRegex(pattern, null, regex);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerException($"{path}: regex '{pattern}' is not supported by the .NET engine: {e.Message}", e);
        }
    }

    /// <summary>Reads <c>{"String": s}</c> or <c>{"Regex": r}</c>.</summary>
    public static OnigRegex FromJson(JsonElement pattern, string path)
    {
        if (JsonFields.TryGet(pattern, "String", out _))
            return Literal(JsonFields.RequireString(pattern, "String", path));
        if (JsonFields.TryGet(pattern, "Regex", out _))
            return FromOnigPattern(JsonFields.RequireString(pattern, "Regex", path), path + ".Regex");
        throw new TokenizerException($"{path}: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
    }

    /// <summary>Fills <paramref name="spans"/> with matched and unmatched spans covering <paramref name="text"/> in order.</summary>
    public void FindMatches(ReadOnlySpan<char> text, List<PatternSpan> spans)
    {
        spans.Clear();
        int previous = 0;
        if (_literal is not null)
        {
            int at = 0;
            while (_literal.Length > 0 && at < text.Length)
            {
                int found = text[at..].IndexOf(_literal.AsSpan(), StringComparison.Ordinal);
                if (found < 0) break;
                found += at;
                AddMatch(spans, ref previous, found, found + _literal.Length);
                at = found + _literal.Length;
            }
        }
        else if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in _regex!.EnumerateMatches(text)) AddMatch(spans, ref previous, m.Index, m.Index + m.Length);
        }
        else
        {
            // Replace each supplementary code point by one BMP char of the same category, then map offsets back.
            var (mapped, toOriginal) = MapSupplementary(text);
            foreach (var m in _regex!.EnumerateMatches(mapped))
                AddMatch(spans, ref previous, toOriginal[m.Index], toOriginal[m.Index + m.Length]);
        }
        if (previous < text.Length) spans.Add(new PatternSpan(previous, text.Length, false));
    }

    private static void AddMatch(List<PatternSpan> spans, ref int previous, int start, int end)
    {
        if (previous < start) spans.Add(new PatternSpan(previous, start, false));
        spans.Add(new PatternSpan(start, end, true));
        previous = end;
    }

    /// <summary>Replaces every match by <paramref name="content"/>.</summary>
    public string Replace(string text, string content)
    {
        var spans = new List<PatternSpan>();
        FindMatches(text, spans);
        var sb = new StringBuilder(text.Length);
        foreach (var s in spans)
        {
            if (s.IsMatch) sb.Append(content);
            else sb.Append(text.AsSpan(s.Start, s.End - s.Start));
        }
        return sb.ToString();
    }

    private static (string Mapped, int[] ToOriginal) MapSupplementary(ReadOnlySpan<char> text)
    {
        var sb = new StringBuilder(text.Length);
        var toOriginal = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
        {
            toOriginal.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                sb.Append(StandIns[(int)category]);
                i++;
            }
            else sb.Append(text[i]);
        }
        toOriginal.Add(text.Length);
        return (sb.ToString(), toOriginal.ToArray());
    }

    // One BMP char per general category, taken from the top of the BMP (away from the ranges patterns name),
    // skipping whitespace so \s keeps its meaning.
    private static readonly char[] StandIns = BuildStandIns();

    private static char[] BuildStandIns()
    {
        int categories = Enum.GetValues<UnicodeCategory>().Length;
        var standIns = new char[categories];
        int found = 0;
        for (int c = 0xFFEF; c >= 0x00A1 && found < categories; c--)
        {
            char ch = (char)c;
            if (char.IsSurrogate(ch) || UnicodeClass.IsWhiteSpace(c)) continue;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory(ch);
            if (standIns[category] != '\0') continue;
            standIns[category] = ch;
            found++;
        }
        // Categories with no BMP member cannot occur above U+FFFF either; keep a harmless unassigned char.
        for (int i = 0; i < categories; i++)
            if (standIns[i] == '\0') standIns[i] = '\uFFFE';
        return standIns;
    }

    /// <summary>
    /// Rewrites Oniguruma (Ruby syntax) constructs that .NET lacks: possessive <c>?+ *+ ++</c> become atomic groups,
    /// <c>{n,m}+</c> (greedy, then "one or more", in Ruby syntax) is wrapped in a group, <c>\x{HHHH}</c> becomes
    /// <c>\uHHHH</c>, <c>\h</c> becomes a hex-digit class, <c>\w</c> takes all marks as Oniguruma's does, and the flag <c>m</c> (Ruby's dot-all) becomes <c>s</c>.
    /// </summary>
    internal static string TranslatePattern(string pattern, string path)
    {
        int i = 0;
        var sb = new StringBuilder(pattern.Length + 16);
        TranslateSequence(pattern, ref i, sb, path, insideGroup: false);
        if (i != pattern.Length)
            throw new TokenizerException($"{path}: regex '{pattern}' has an unbalanced ')' at offset {i}");
        return sb.ToString();
    }

    private static void TranslateSequence(string p, ref int i, StringBuilder sb, string path, bool insideGroup)
    {
        int atomStart = -1;
        while (i < p.Length)
        {
            char c = p[i];
            if (c == ')') return; // the caller checks that it closes a group
            if (c == '|') { sb.Append(c); i++; atomStart = -1; continue; }
            if (c is '*' or '+' or '?' || (c == '{' && IsCountedQuantifier(p, i, out _)))
            {
                if (atomStart < 0) throw new TokenizerException($"{path}: regex '{p}' has a quantifier with nothing to repeat at offset {i}");
                if (c == '{')
                {
                    IsCountedQuantifier(p, i, out int end);
                    sb.Append(p, i, end - i);
                    i = end;
                }
                else { sb.Append(c); i++; }
                bool counted = c == '{';
                if (i < p.Length && p[i] == '?') { sb.Append('?'); i++; }
                else if (i < p.Length && p[i] == '+')
                {
                    i++;
                    string repeated = sb.ToString(atomStart, sb.Length - atomStart);
                    sb.Length = atomStart;
                    // Ruby syntax: only ?+ *+ ++ are possessive; {n,m}+ means "({n,m})+".
                    sb.Append(counted ? "(?:" : "(?>").Append(repeated).Append(counted ? ")+" : ")");
                }
                continue;
            }
            atomStart = sb.Length;
            if (c == '\\') TranslateEscape(p, ref i, sb, path);
            else if (c == '[') TranslateClass(p, ref i, sb, path);
            else if (c == '(')
            {
                if (TranslateGroup(p, ref i, sb, path) == false) atomStart = -1; // a bare flag group like (?i)
            }
            else { sb.Append(c); i++; }
        }
        if (insideGroup) throw new TokenizerException($"{path}: regex '{p}' has an unclosed '('");
    }

    /// <summary>Copies a group; returns false for a flag-only group such as <c>(?i)</c>, which is no atom.</summary>
    private static bool TranslateGroup(string p, ref int i, StringBuilder sb, string path)
    {
        sb.Append('(');
        i++;
        if (i < p.Length && p[i] == '?')
        {
            sb.Append('?');
            i++;
            if (i < p.Length && (char.IsAsciiLetter(p[i]) || p[i] == '-'))
            {
                // Inline flags (?imx-imx) or (?imx-imx:...).
                int flagStart = i;
                while (i < p.Length && (char.IsAsciiLetter(p[i]) || p[i] == '-')) i++;
                sb.Append(p.AsSpan(flagStart, i - flagStart).ToString().Replace('m', 's'));
                if (i < p.Length && p[i] == ')') { sb.Append(')'); i++; return false; }
                if (i >= p.Length || p[i] != ':') throw new TokenizerException($"{path}: regex '{p}' has an unsupported group at offset {flagStart - 2}");
                sb.Append(':');
                i++;
            }
            else if (i < p.Length && p[i] == '<' && i + 1 < p.Length && p[i + 1] is not ('=' or '!'))
            {
                int close = p.IndexOf('>', i);
                if (close < 0) throw new TokenizerException($"{path}: regex '{p}' has an unterminated group name");
                sb.Append(p, i, close - i + 1);
                i = close + 1;
            }
            else
            {
                // (?: (?= (?! (?<= (?<! (?>
                while (i < p.Length && p[i] is ':' or '=' or '!' or '<' or '>')
                {
                    sb.Append(p[i]);
                    i++;
                    if (sb[^1] is ':' or '=' or '!' or '>') break;
                }
            }
        }
        TranslateSequence(p, ref i, sb, path, insideGroup: true);
        sb.Append(')');
        i++;
        return true;
    }

    private static void TranslateEscape(string p, ref int i, StringBuilder sb, string path, bool insideClass = false)
    {
        if (i + 1 >= p.Length) throw new TokenizerException($"{path}: regex '{p}' ends with a lone backslash");
        char e = p[i + 1];
        if (e == 'x' && i + 2 < p.Length && p[i + 2] == '{')
        {
            int close = p.IndexOf('}', i + 3);
            if (close < 0 || !int.TryParse(p.AsSpan(i + 3, close - i - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp))
                throw new TokenizerException($"{path}: regex '{p}' has a malformed \\x{{...}} escape at offset {i}");
            if (cp > 0xFFFF)
                throw new TokenizerException($"{path}: regex '{p}' names code point U+{cp:X} above U+FFFF, which the .NET engine cannot match");
            sb.Append("\\u").Append(cp.ToString("X4", CultureInfo.InvariantCulture));
            i = close + 1;
            return;
        }
        if (e is 'p' or 'P' && i + 2 < p.Length && p[i + 2] == '{')
        {
            int close = p.IndexOf('}', i + 3);
            if (close < 0) throw new TokenizerException($"{path}: regex '{p}' has an unterminated \\p{{...}} at offset {i}");
            string name = p.Substring(i + 3, close - i - 3);
            bool negate = e == 'P';
            if (name.StartsWith('^')) { negate = !negate; name = name[1..]; }
            sb.Append(negate ? "\\P{" : "\\p{").Append(name).Append('}');
            i = close + 1;
            return;
        }
        if (e == 'w') { sb.Append(insideClass ? OnigWordClass : "[" + OnigWordClass + "]"); i += 2; return; }
        if (e == 'W' && !insideClass) { sb.Append("[^" + OnigWordClass + "]"); i += 2; return; }
        if (e == 'h') { sb.Append("[0-9a-fA-F]"); i += 2; return; }
        if (e == 'H') { sb.Append("[^0-9a-fA-F]"); i += 2; return; }
        sb.Append('\\').Append(e);
        i += 2;
    }

    // Oniguruma's Unicode \w takes every mark (.NET's only Mn).
    private const string OnigWordClass = @"\p{L}\p{M}\p{Nd}\p{Pc}";

    private static void TranslateClass(string p, ref int i, StringBuilder sb, string path)
    {
        int start = i;
        sb.Append('[');
        i++;
        if (i < p.Length && p[i] == '^') { sb.Append('^'); i++; }
        if (i < p.Length && p[i] == ']') { sb.Append("\\]"); i++; }
        while (i < p.Length && p[i] != ']')
        {
            char c = p[i];
            if (c == '\\')
            {
                if (i + 1 < p.Length && p[i + 1] == 'h') { sb.Append("0-9a-fA-F"); i += 2; continue; }
                TranslateEscape(p, ref i, sb, path, insideClass: true);
                continue;
            }
            if (c == '[')
            {
                if (i + 1 < p.Length && p[i + 1] == ':')
                    throw new TokenizerException($"{path}: regex '{p}' uses a POSIX bracket class at offset {i}, which the .NET engine lacks");
                throw new TokenizerException($"{path}: regex '{p}' nests a character class at offset {i}, which the .NET engine lacks");
            }
            if (c == '&' && i + 1 < p.Length && p[i + 1] == '&')
                throw new TokenizerException($"{path}: regex '{p}' intersects character classes (&&) at offset {i}, which the .NET engine lacks");
            sb.Append(c);
            i++;
        }
        if (i >= p.Length) throw new TokenizerException($"{path}: regex '{p}' has an unterminated character class starting at offset {start}");
        sb.Append(']');
        i++;
    }

    private static bool IsCountedQuantifier(string p, int i, out int end)
    {
        end = i;
        int j = i + 1;
        int digitsBefore = 0, digitsAfter = 0;
        while (j < p.Length && char.IsAsciiDigit(p[j])) { j++; digitsBefore++; }
        bool comma = j < p.Length && p[j] == ',';
        if (comma)
        {
            j++;
            while (j < p.Length && char.IsAsciiDigit(p[j])) { j++; digitsAfter++; }
        }
        if (j >= p.Length || p[j] != '}' || (digitsBefore == 0 && digitsAfter == 0)) return false;
        end = j + 1;
        return true;
    }
}
