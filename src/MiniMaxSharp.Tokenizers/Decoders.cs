using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Turns token strings back into text; a chain of decoders each maps the token list to a new list.</summary>
internal abstract class Decoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    private const string Supported = "ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence";

    public static Decoder FromJson(JsonElement json, string path)
    {
        string type = JsonFields.TypeOf(json, path);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Metaspace":
            {
                var (replacement, scheme, _) = MetaspacePreTokenizer.ReadSettings(json, path);
                return new MetaspaceDecoder(replacement, scheme);
            }
            case "Strip":
            {
                int content = PreTokenizer.SingleChar(JsonFields.RequireString(json, "content", path), path + ".content");
                return new StripDecoder(content, JsonFields.RequireInt(json, "start", path), JsonFields.RequireInt(json, "stop", path));
            }
            case "Replace":
                return new ReplaceDecoder(OnigRegex.FromJson(JsonFields.RequireObject(json, "pattern", path), path + ".pattern"),
                    JsonFields.RequireString(json, "content", path));
            case "BPEDecoder":
                return new BpeSuffixDecoder(JsonFields.OptString(json, "suffix", path) ?? "</w>");
            case "Sequence":
            {
                var items = JsonFields.RequireArray(json, "decoders", path);
                var children = new List<Decoder>();
                int index = 0;
                foreach (var item in items.EnumerateArray()) children.Add(FromJson(item, $"{path}.decoders[{index++}]"));
                return new SequenceDecoder(children);
            }
            default:
                throw JsonFields.Unsupported(path, "decoder", type, Supported);
        }
    }
}

/// <summary>Maps each symbol back to its byte and decodes the whole byte string as UTF-8 (invalid bytes become U+FFFD).</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            int mark = bytes.Count;
            bool allSymbols = true;
            foreach (char c in token)
            {
                int b = ByteLevelAlphabet.CharToByte(c);
                if (b < 0) { allSymbols = false; break; }
                bytes.Add((byte)b);
            }
            if (!allSymbols)
            {
                // A token that is not made of byte symbols (an added token, say) stands for its own UTF-8 bytes.
                bytes.RemoveRange(mark, bytes.Count - mark);
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
            }
        }
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

/// <summary>Runs of "&lt;0xHH&gt;" tokens become the text of their bytes, or one U+FFFD per byte if not valid UTF-8.</summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>' &&
                byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte value))
            {
                pending.Add(value);
                continue;
            }
            Flush();
            result.Add(token);
        }
        Flush();
        return result;

        void Flush()
        {
            if (pending.Count == 0) return;
            try { result.Add(StrictUtf8.GetString(pending.ToArray())); }
            catch (DecoderFallbackException)
            {
                for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD");
            }
            pending.Clear();
        }
    }
}

internal sealed class FuseDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>The replacement char becomes a space, except in the first token when a prefix was prepended.</summary>
internal sealed class MetaspaceDecoder(char replacement, PrependScheme scheme) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            bool dropReplacement = i == 0 && scheme != PrependScheme.Never;
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c != replacement) sb.Append(c);
                else if (!dropReplacement) sb.Append(' ');
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a char from each token.</summary>
internal sealed class StripDecoder(int content, int start, int stop) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            var chars = token.EnumerateRunes().ToArray();
            int startCut = 0;
            while (startCut < Math.Min(start, chars.Length) && chars[startCut].Value == content) startCut++;
            int stopCut = chars.Length;
            for (int i = 0; i < stop && stopCut > startCut && chars[stopCut - 1].Value == content; i++) stopCut--;
            var sb = new StringBuilder();
            for (int i = startCut; i < stopCut; i++) sb.Append(chars[i].ToString());
            result.Add(sb.ToString());
        }
        return result;
    }
}

internal sealed class ReplaceDecoder(OnigRegex pattern, string content) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(t => pattern.Replace(t, content));
}

/// <summary>The end-of-word suffix becomes a space, except on the last token.</summary>
internal sealed class BpeSuffixDecoder(string suffix) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
            result.Add(tokens[i].Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal));
        return result;
    }
}

internal sealed class SequenceDecoder(IReadOnlyList<Decoder> children) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var child in children) tokens = child.DecodeChain(tokens);
        return tokens;
    }
}
