using System.Text;

namespace MiniMaxSharp.Tokenizers.Tests;

public class StreamingDecoderTests
{
    [Fact]
    public void ByteFallbackEmojiIsHeldUntilItsLastByte()
    {
        // 😀 is F0 9F 98 80.
        var t = new TokenizerJsonBuilder("<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "a")
            .Model("byte_fallback", true)
            .Decoder("""{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}""")
            .Build();
        Assert.Equal([4, 0, 1, 2, 3, 4], t.Encode("a😀a"));
        var stream = t.CreateStreamingDecoder();
        Assert.Equal("a", stream.Push(4));
        Assert.Equal("", stream.Push(0));
        Assert.Equal("", stream.Push(1));
        Assert.Equal("", stream.Push(2));
        Assert.Equal("😀", stream.Push(3));
        Assert.Equal("a", stream.Push(4));
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void FlushReturnsIncompleteBytesAsReplacementCharacters()
    {
        var t = new TokenizerJsonBuilder("<0xF0>", "<0x9F>", "a").Model("byte_fallback", true)
            .Decoder("""{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}""").Build();
        var stream = t.CreateStreamingDecoder();
        Assert.Equal("a", stream.Push(2));
        Assert.Equal("", stream.Push(0));
        Assert.Equal("", stream.Push(1));
        Assert.Equal("\uFFFD\uFFFD", stream.Flush());
    }

    [Theory]
    [InlineData("日本語のテキスト😀")]
    [InlineData("emoji 👩‍👩‍👧‍👦 🇺🇸 done, 中文文本，还有标点。")]
    public void ByteLevelCharactersSplitAcrossTokensComeOutWhole(string text)
    {
        var t = Tokenizer.FromFile(FixturePaths.Gpt2TokenizerDir);
        var ids = t.Encode(text);
        var stream = t.CreateStreamingDecoder();
        var output = new StringBuilder();
        int heldBack = 0;
        foreach (int id in ids)
        {
            string piece = stream.Push(id);
            if (piece.Length == 0) heldBack++;
            Assert.DoesNotContain('\uFFFD', piece);
            Assert.False(piece.Length > 0 && char.IsLowSurrogate(piece[0]), "a piece starts inside a surrogate pair");
            Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]), "a piece ends inside a surrogate pair");
            output.Append(piece);
        }
        Assert.True(heldBack > 0, "these texts have characters spread over several byte tokens");
        output.Append(stream.Flush());
        Assert.Equal(text, output.ToString());
    }

    [Fact]
    public void MetaspaceStreamKeepsSpacesBetweenTokens()
    {
        var t = new TokenizerJsonBuilder("\u2581ab", "\u2581cd")
            .Decoder("""{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}""").Build();
        var stream = t.CreateStreamingDecoder();
        Assert.Equal("ab", stream.Push(0));
        Assert.Equal(" cd", stream.Push(1));
        Assert.Equal(" ab", stream.Push(0));
    }

    [Fact]
    public void SkipsSpecialTokensWhenAsked()
    {
        var t = Tokenizer.FromFile(FixturePaths.Gpt2TokenizerDir);
        var ids = t.Encode("<|im_start|>hi<|im_end|>");
        var stream = t.CreateStreamingDecoder(skipSpecialTokens: true);
        string text = string.Concat(ids.Select(stream.Push)) + stream.Flush();
        Assert.Equal("hi", text);
    }
}
