using System.Text;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Strict UTF-8 decoding: invalid bytes are an error naming where they are, never silently replaced.</summary>
public static class Utf8Text
{
    /// <summary>Decodes <paramref name="utf8"/>; <paramref name="source"/> names the input in error messages.</summary>
    public static string Decode(ReadOnlySpan<byte> utf8, string source)
    {
        int offset = 0;
        while (offset < utf8.Length)
        {
            var status = Rune.DecodeFromUtf8(utf8[offset..], out _, out int consumed);
            if (status != System.Buffers.OperationStatus.Done)
                throw new TokenizerException($"{source}: invalid UTF-8 at byte offset {offset}");
            offset += consumed;
        }
        return Encoding.UTF8.GetString(utf8);
    }

    /// <summary>Reads a UTF-8 text file (a leading byte order mark is skipped).</summary>
    public static string ReadFile(string path)
    {
        if (!File.Exists(path)) throw new TokenizerException($"{path}: file not found");
        ReadOnlySpan<byte> content = File.ReadAllBytes(path);
        if (content.StartsWith("\uFEFF"u8)) content = content[3..];
        return Decode(content, path);
    }
}
