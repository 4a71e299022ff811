using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Rewrites the text of each span between added tokens before pre-tokenisation.</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);

    private const string Supported = "NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, StripAccents, Sequence";

    public static Normalizer FromJson(JsonElement json, string path)
    {
        string type = JsonFields.TypeOf(json, path);
        switch (type)
        {
            case "NFC": return new UnicodeFormNormalizer(compose: true, compatibility: false);
            case "NFD": return new UnicodeFormNormalizer(compose: false, compatibility: false);
            case "NFKC": return new UnicodeFormNormalizer(compose: true, compatibility: true);
            case "NFKD": return new UnicodeFormNormalizer(compose: false, compatibility: true);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "Replace":
                return new ReplaceNormalizer(OnigRegex.FromJson(JsonFields.RequireObject(json, "pattern", path), path + ".pattern"),
                    JsonFields.RequireString(json, "content", path));
            case "Prepend":
                return new PrependNormalizer(JsonFields.RequireString(json, "prepend", path));
            case "Strip":
                return new StripNormalizer(JsonFields.OptBool(json, "strip_left", true, path), JsonFields.OptBool(json, "strip_right", true, path));
            case "Sequence":
            {
                var items = JsonFields.RequireArray(json, "normalizers", path);
                var children = new List<Normalizer>();
                int index = 0;
                foreach (var item in items.EnumerateArray())
                    children.Add(FromJson(item, $"{path}.normalizers[{index++}]"));
                return new SequenceNormalizer(children);
            }
            default:
                throw JsonFields.Unsupported(path, "normalizer", type, Supported);
        }

    }
}

/// <summary>NFC, NFD, NFKC or NFKD, computed by this library (string.Normalize needs ICU, absent in invariant mode).</summary>
internal sealed class UnicodeFormNormalizer(bool compose, bool compatibility) : Normalizer
{
    public override string Normalize(string text) => UnicodeNormalization.Normalize(text, compose, compatibility);
}

/// <summary>Rust's char::to_lowercase per code point: full mappings, no context rules (so no final sigma).</summary>
internal sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            // The only unconditional one-to-many lowercase mapping in Unicode.
            if (rune.Value == 0x130) sb.Append("i\u0307");
            else sb.Append(Rune.ToLowerInvariant(rune).ToString());
        }
        return sb.ToString();
    }
}

/// <summary>Removes combining marks (categories Mn, Mc and Me), as Hugging Face's StripAccents does.</summary>
internal sealed class StripAccentsNormalizer : Normalizer
{
    public override string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                or UnicodeCategory.EnclosingMark))
                sb.Append(rune.ToString());
        }
        return sb.ToString();
    }
}

internal sealed class ReplaceNormalizer(OnigRegex pattern, string content) : Normalizer
{
    public override string Normalize(string text) => pattern.Replace(text, content);
}

internal sealed class PrependNormalizer(string prefix) : Normalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text)
    {
        int start = 0, end = text.Length;
        // White_Space code points are all in the BMP, so UTF-16 units suffice.
        if (left) while (start < end && UnicodeClass.IsWhiteSpace(text[start])) start++;
        if (right) while (end > start && UnicodeClass.IsWhiteSpace(text[end - 1])) end--;
        return text[start..end];
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> children) : Normalizer
{
    public override string Normalize(string text)
    {
        foreach (var child in children) text = child.Normalize(text);
        return text;
    }
}
