namespace MiniMaxSharp.Tokenizers.Tests;

public class ErrorTests
{
    private static string Valid => new TokenizerJsonBuilder("a", "b", "ab").Merges(("a", "b")).Json();

    [Fact]
    public void MalformedJson()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromJson("{\"model\": {\"type\": \"BPE\", "));
        Assert.Contains("malformed JSON", e.Message);
    }

    [Theory]
    [InlineData("\"model\":{\"type\":\"BPE\"", "\"model\":{\"type\":\"WordPiece\"", "'WordPiece'")]
    [InlineData("\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"FancySplit\"}", "'FancySplit'")]
    [InlineData("\"normalizer\":null", "\"normalizer\":{\"type\":\"Precompiled\"}", "'Precompiled'")]
    [InlineData("\"decoder\":null", "\"decoder\":{\"type\":\"CTC\"}", "'CTC'")]
    [InlineData("\"post_processor\":null", "\"post_processor\":{\"type\":\"Mystery\"}", "'Mystery'")]
    public void UnknownComponentTypeIsNamed(string from, string to, string expected)
    {
        string json = Valid.Replace(from, to);
        Assert.NotEqual(Valid, json);
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromJson(json));
        Assert.Contains(expected, e.Message);
        Assert.Contains("unsupported", e.Message);
    }

    [Fact]
    public void MergeWithTokenMissingFromVocab()
    {
        var e = Assert.Throws<TokenizerException>(() => new TokenizerJsonBuilder("a", "b").Merges(("a", "b")).Build());
        Assert.Contains("merges[0]", e.Message);
        Assert.Contains("'ab'", e.Message);
    }

    [Fact]
    public void RegexTheDotNetEngineCannotRunIsNamed()
    {
        var e = Assert.Throws<TokenizerException>(() => new TokenizerJsonBuilder("a")
            .PreTokenizer("""{"type":"Split","pattern":{"Regex":"\\p{Han}+"},"behavior":"Isolated","invert":false}""").Build());
        Assert.Contains("\\p{Han}+", e.Message);
    }

    [Fact]
    public void InvalidUtf8Input()
    {
        var t = Tokenizer.FromJson(Valid);
        var e = Assert.Throws<TokenizerException>(() => t.Encode([0x61, 0x62, 0x61, 0xC3, 0x28]));
        Assert.Contains("invalid UTF-8 at byte offset 3", e.Message);
        Assert.Equal([2, 0], t.Encode("aba"u8));
    }

    [Fact]
    public void UnpairedSurrogateInput()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromJson(Valid).Encode("ab\uD83Dx"));
        Assert.Contains("char offset 2", e.Message);
    }

    [Fact]
    public void UnknownIdInDecode()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromJson(Valid).Decode([0, 99]));
        Assert.Contains("id 99", e.Message);
        Assert.Throws<TokenizerException>(() => Tokenizer.FromJson(Valid).CreateStreamingDecoder().Push(-1));
    }

    [Fact]
    public void MissingFile()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromFile("/nonexistent/dir/tokenizer.json"));
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void WrongFieldTypeNamesThePath()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.FromJson(Valid.Replace("\"a\":0", "\"a\":\"zero\"")));
        Assert.Contains("model.vocab", e.Message);
    }
}

public class Utf8TextTests
{
    [Fact]
    public void ReadFileSkipsByteOrderMarkAndReportsInvalidBytes()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, [0xEF, 0xBB, 0xBF, 0x68, 0x69]);
            Assert.Equal("hi", Utf8Text.ReadFile(file));
            File.WriteAllBytes(file, [0x68, 0xE6, 0x97]); // a truncated three-byte character
            var e = Assert.Throws<TokenizerException>(() => Utf8Text.ReadFile(file));
            Assert.Contains(file, e.Message);
            Assert.Contains("byte offset 1", e.Message);
        }
        finally { File.Delete(file); }
    }
}
