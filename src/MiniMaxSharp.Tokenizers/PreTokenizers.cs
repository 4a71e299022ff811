using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Splits (and for some kinds rewrites) the pieces of one stage into the next stage's pieces.</summary>
internal abstract class PreTokenizer
{
    public abstract void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch);

    private const string Supported = "ByteLevel, Split, Sequence, Digits, Whitespace, WhitespaceSplit, Metaspace, Punctuation, BertPreTokenizer, CharDelimiterSplit";

    public static PreTokenizer FromJson(JsonElement json, string path)
    {
        string type = JsonFields.TypeOf(json, path);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(
                    JsonFields.OptBool(json, "add_prefix_space", true, path),
                    JsonFields.OptBool(json, "use_regex", true, path));
            case "Split":
                return new SplitPreTokenizer(
                    OnigRegex.FromJson(JsonFields.RequireObject(json, "pattern", path), path + ".pattern"),
                    SplitBehaviors.Parse(JsonFields.RequireString(json, "behavior", path), path + ".behavior"),
                    JsonFields.OptBool(json, "invert", false, path));
            case "Sequence":
            {
                var items = JsonFields.RequireArray(json, "pretokenizers", path);
                var children = new List<PreTokenizer>();
                int index = 0;
                foreach (var item in items.EnumerateArray()) children.Add(FromJson(item, $"{path}.pretokenizers[{index++}]"));
                return new SequencePreTokenizer(children);
            }
            case "Digits":
                return new CharPredicatePreTokenizer(UnicodeClass.IsNumeric,
                    JsonFields.OptBool(json, "individual_digits", false, path) ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
            case "Whitespace":
                return new WhitespacePreTokenizer();
            case "WhitespaceSplit":
                return new CharPredicatePreTokenizer(UnicodeClass.IsWhiteSpace, SplitBehavior.Removed);
            case "Punctuation":
            {
                string? behavior = JsonFields.OptString(json, "behavior", path);
                return new CharPredicatePreTokenizer(UnicodeClass.IsPunctuation,
                    behavior is null ? SplitBehavior.Isolated : SplitBehaviors.Parse(behavior, path + ".behavior"));
            }
            case "BertPreTokenizer":
                return new SequencePreTokenizer([
                    new CharPredicatePreTokenizer(UnicodeClass.IsWhiteSpace, SplitBehavior.Removed),
                    new CharPredicatePreTokenizer(UnicodeClass.IsPunctuation, SplitBehavior.Isolated)]);
            case "CharDelimiterSplit":
            {
                int delimiter = SingleChar(JsonFields.RequireString(json, "delimiter", path), path + ".delimiter");
                return new CharPredicatePreTokenizer(cp => cp == delimiter, SplitBehavior.Removed);
            }
            case "Metaspace":
                return MetaspacePreTokenizer.Create(json, path);
            default:
                throw JsonFields.Unsupported(path, "pre_tokenizer", type, Supported);
        }
    }

    /// <summary>A JSON string that must hold exactly one code point (Rust's char).</summary>
    public static int SingleChar(string value, string path)
    {
        var runes = value.EnumerateRunes();
        int count = 0, cp = 0;
        foreach (var r in runes) { cp = r.Value; count++; }
        if (count != 1) throw new TokenizerException($"{path}: expected exactly one character but found \"{value}\"");
        return cp;
    }
}

internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> children) : PreTokenizer
{
    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        if (children.Count == 0)
        {
            for (int i = 0; i < input.Count; i++) output.Add(input.TextOf(i), input[i].AtOriginalStart);
            return;
        }
        var current = input;
        for (int c = 0; c < children.Count - 1; c++)
        {
            var next = scratch.RentPieces();
            children[c].Apply(current, next, scratch);
            if (current != input) scratch.ReturnPieces(current);
            current = next;
        }
        children[^1].Apply(current, output, scratch);
        if (current != input) scratch.ReturnPieces(current);
    }
}

/// <summary>GPT-2 style: optional leading space, the GPT-2 regex split, then every byte as a visible symbol.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        for (int p = 0; p < input.Count; p++)
        {
            var piece = input[p];
            ReadOnlySpan<char> text = input.TextOf(piece);
            if (addPrefixSpace && text[0] != ' ') text = scratch.Prepend(' ', text);
            if (!useRegex)
            {
                MapInto(output, text, piece.AtOriginalStart);
                continue;
            }
            for (int at = 0; at < text.Length;)
            {
                int length = Gpt2Splitter.MatchLength(text, at);
                MapInto(output, text.Slice(at, length), piece.AtOriginalStart && at == 0);
                at += length;
            }
        }
    }

    private static void MapInto(PieceBuffer output, ReadOnlySpan<char> text, bool atOriginalStart)
    {
        var destination = output.BeginPiece(text.Length * 3);
        output.CommitPiece(ByteLevelAlphabet.Map(text, destination), atOriginalStart);
    }
}

internal sealed class SplitPreTokenizer(OnigRegex pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        var spans = scratch.Spans;
        for (int p = 0; p < input.Count; p++)
        {
            var text = input.TextOf(p);
            pattern.FindMatches(text, spans);
            if (invert) SplitBehaviors.Invert(spans);
            SplitBehaviors.Emit(spans, behavior, text, input[p].AtOriginalStart, output);
        }
    }
}

/// <summary>Every code point satisfying a predicate is a delimiter (Digits, WhitespaceSplit, Punctuation...).</summary>
internal sealed class CharPredicatePreTokenizer(Func<int, bool> isDelimiter, SplitBehavior behavior) : PreTokenizer
{
    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        var spans = scratch.Spans;
        for (int p = 0; p < input.Count; p++)
        {
            var text = input.TextOf(p);
            SplitBehaviors.FindCharMatches(text, isDelimiter, spans);
            SplitBehaviors.Emit(spans, behavior, text, input[p].AtOriginalStart, output);
        }
    }
}

/// <summary>Keeps the matches of <c>\w+|[^\w\s]+</c> (Rust regex, Unicode classes) and drops the rest.</summary>
internal sealed class WhitespacePreTokenizer : PreTokenizer
{
    private enum Kind { Space, Word, Symbol }

    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        for (int p = 0; p < input.Count; p++)
        {
            var text = input.TextOf(p);
            int runStart = 0;
            Kind runKind = Kind.Space;
            int i = 0;
            while (i < text.Length)
            {
                int width = char.IsHighSurrogate(text[i]) && i + 1 < text.Length ? 2 : 1;
                int cp = width == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
                Kind kind = UnicodeClass.IsWordChar(cp) ? Kind.Word : UnicodeClass.IsWhiteSpace(cp) ? Kind.Space : Kind.Symbol;
                if (kind != runKind)
                {
                    if (runKind != Kind.Space) output.Add(text[runStart..i], input[p].AtOriginalStart && runStart == 0);
                    runStart = i;
                    runKind = kind;
                }
                i += width;
            }
            if (runKind != Kind.Space) output.Add(text[runStart..], input[p].AtOriginalStart && runStart == 0);
        }
    }
}

internal enum PrependScheme { Always, First, Never }

/// <summary>SentencePiece style: spaces become the replacement char (default '▁'), which then starts each piece.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, PrependScheme scheme, bool split) : PreTokenizer
{
    public static MetaspacePreTokenizer Create(JsonElement json, string path)
    {
        var (replacement, scheme, split) = ReadSettings(json, path);
        return new MetaspacePreTokenizer(replacement, scheme, split);
    }

    /// <summary>The settings shared by the Metaspace pre-tokenizer and decoder.</summary>
    public static (char Replacement, PrependScheme Scheme, bool Split) ReadSettings(JsonElement json, string path)
    {
        int replacement = SingleChar(JsonFields.OptString(json, "replacement", path) ?? "\u2581", path + ".replacement");
        if (replacement > 0xFFFF) throw new TokenizerException($"{path}.replacement: characters above U+FFFF are not supported");
        string? schemeName = JsonFields.OptString(json, "prepend_scheme", path);
        PrependScheme scheme = schemeName switch
        {
            null => JsonFields.OptBool(json, "add_prefix_space", true, path) ? PrependScheme.Always : PrependScheme.Never,
            "always" => PrependScheme.Always,
            "first" => PrependScheme.First,
            "never" => PrependScheme.Never,
            _ => throw new TokenizerException($"{path}.prepend_scheme: unknown value '{schemeName}' (expected always, first or never)"),
        };
        return ((char)replacement, scheme, JsonFields.OptBool(json, "split", true, path));
    }

    public override void Apply(PieceBuffer input, PieceBuffer output, EncodeScratch scratch)
    {
        var spans = scratch.Spans;
        for (int p = 0; p < input.Count; p++)
        {
            var source = input.TextOf(p);
            bool prepend = source[0] != ' ' && source[0] != replacement &&
                (scheme == PrependScheme.Always || (scheme == PrependScheme.First && input[p].AtOriginalStart));
            var text = scratch.TextBuffer(source.Length + 1);
            int length = 0;
            if (prepend) text[length++] = replacement;
            foreach (char c in source) text[length++] = c == ' ' ? replacement : c;
            ReadOnlySpan<char> replaced = text[..length];
            if (!split)
            {
                output.Add(replaced, input[p].AtOriginalStart);
                continue;
            }
            SplitBehaviors.FindCharMatches(replaced, cp => cp == replacement, spans);
            SplitBehaviors.Emit(spans, SplitBehavior.MergedWithNext, replaced, input[p].AtOriginalStart, output);
        }
    }
}
