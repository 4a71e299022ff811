namespace MiniMaxSharp.Tokenizers.Tests;

public class NormalizerTests
{
    [Fact]
    public void LowercaseRunsBeforeTheModel()
    {
        var t = new TokenizerJsonBuilder("a", "b", "ab").Merges(("a", "b")).Normalizer("""{"type":"Lowercase"}""").Build();
        Assert.Equal([2], t.Encode("AB"));
        Assert.Equal([2, 0], t.Encode("AbA"));
    }

    [Fact]
    public void UnicodeNormalForms()
    {
        var fi = new TokenizerJsonBuilder("f", "i", "fi").Merges(("f", "i"));
        Assert.Equal([2], fi.Normalizer("""{"type":"NFKC"}""").Build().Encode("\uFB01")); // the ﬁ ligature
        Assert.Equal([2], fi.Normalizer("""{"type":"NFKD"}""").Build().Encode("\uFB01"));

        var accents = new TokenizerJsonBuilder("\u00E9", "e", "\u0301");
        Assert.Equal([0], accents.Normalizer("""{"type":"NFC"}""").Build().Encode("e\u0301"));
        Assert.Equal([1, 2], accents.Normalizer("""{"type":"NFD"}""").Build().Encode("\u00E9"));
        Assert.Equal([1], accents.Normalizer("""{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"}]}""").Build().Encode("\u00E9"));
        // StripAccents removes every combining mark, spacing ones (U+093E, category Mc) included.
        Assert.Equal([1], accents.Normalizer("""{"type":"StripAccents"}""").Build().Encode("e\u093E\u0301"));
    }

    [Fact]
    public void StripPrependReplaceSequenceAsInLlama2()
    {
        // "  ab cd " -> "ab cd" -> "▁ab cd" -> "▁ab▁cd", one word: ▁a, ▁ab, then ▁c, ▁cd.
        var t = new TokenizerJsonBuilder("\u2581", "a", "b", "c", "d", "\u2581a", "\u2581ab", "ab", "\u2581c", "\u2581cd", "cd")
            .Merges(("\u2581", "a"), ("\u2581a", "b"), ("a", "b"), ("\u2581", "c"), ("\u2581c", "d"), ("c", "d"))
            .Normalizer("""
                {"type":"Sequence","normalizers":[
                  {"type":"Strip","strip_left":true,"strip_right":true},
                  {"type":"Prepend","prepend":"▁"},
                  {"type":"Replace","pattern":{"String":" "},"content":"▁"}]}
                """)
            .Decoder("""
                {"type":"Sequence","decoders":[
                  {"type":"Replace","pattern":{"String":"▁"},"content":" "},
                  {"type":"ByteFallback"},{"type":"Fuse"},
                  {"type":"Strip","content":" ","start":1,"stop":0}]}
                """)
            .Build();
        Assert.Equal([6, 9], t.Encode("  ab cd "));
        Assert.Equal("ab cd", t.Decode([6, 9]));
    }

    [Fact]
    public void RegexReplace()
    {
        var t = new TokenizerJsonBuilder("a", "#").Normalizer("""{"type":"Replace","pattern":{"Regex":"\\d+"},"content":"#"}""").Build();
        Assert.Equal([0, 1, 0, 1], t.Encode("a123a4"));
    }
}

/// <summary>Added tokens. ids: a0 b1 c2 space3 &lt;m&gt;4 ab5; no merges, no pre-tokenizer.</summary>
public class AddedTokenTests
{
    private static TokenizerJsonBuilder Vocab() => new("a", "b", "c", " ", "<m>", "ab");

    [Theory]
    [InlineData(true, new[] { 0, 4, 1 })]
    [InlineData(false, new[] { 0, 3, 4, 1 })]
    public void LStripEatsWhitespaceOnTheLeft(bool lstrip, int[] expected)
    {
        Assert.Equal(expected, Vocab().Added("<m>", lstrip: lstrip).Build().Encode("a <m>b"));
    }

    [Theory]
    [InlineData(true, new[] { 0, 4, 1 })]
    [InlineData(false, new[] { 0, 4, 3, 1 })]
    public void RStripEatsWhitespaceOnTheRight(bool rstrip, int[] expected)
    {
        Assert.Equal(expected, Vocab().Added("<m>", rstrip: rstrip).Build().Encode("a<m> b"));
    }

    [Theory]
    [InlineData(true, new[] { 5, 3, 2, 0, 1, 3, 5 })]   // the "ab" inside "cab" is not a word of its own
    [InlineData(false, new[] { 5, 3, 2, 5, 3, 5 })]
    public void SingleWordOnlyMatchesWholeWords(bool singleWord, int[] expected)
    {
        Assert.Equal(expected, Vocab().Added("ab", special: false, singleWord: singleWord).Build().Encode("ab cab ab"));
    }

    [Theory]
    [InlineData(true, new[] { 5 })]
    [InlineData(false, new[] { 0, 1 })]
    public void NormalizedTokensMatchTheNormalizedText(bool normalized, int[] expected)
    {
        var t = Vocab().Added("ab", special: false, normalized: normalized).Normalizer("""{"type":"Lowercase"}""").Build();
        Assert.Equal(expected, t.Encode("AB"));
    }

    [Fact]
    public void LongestAddedTokenWinsAtTheSamePosition()
    {
        var t = new TokenizerJsonBuilder("a", "<", ">", "<a", "<a>").Added("<a").Added("<a>").Build();
        Assert.Equal([4, 0], t.Encode("<a>a"));
        Assert.Equal([3, 0], t.Encode("<aa"));
    }

    [Fact]
    public void AddedTokenOutsideTheModelVocabGetsTheNextId()
    {
        // As in Hugging Face: a token missing from the model vocab gets the first id after it, whatever the file says.
        string json = new TokenizerJsonBuilder("a", "b").Json().Replace("\"added_tokens\":[]",
            "\"added_tokens\":[{\"id\":7,\"content\":\"<x>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]");
        var t = Tokenizer.FromJson(json);
        Assert.Equal([0, 2, 1], t.Encode("a<x>b"));
        Assert.Equal(3, t.VocabSize);
        Assert.Equal("<x>", t.IdToToken(2));
    }

    [Fact]
    public void SkipSpecialTokensKeepsNonSpecialAddedTokens()
    {
        var t = Vocab().Added("<m>").Added("ab", special: false).Decoder("""{"type":"Fuse"}""").Build();
        Assert.Equal("ab<m>c", t.Decode([5, 4, 2]));
        Assert.Equal("abc", t.Decode([5, 4, 2], skipSpecialTokens: true));
        Assert.Equal(new HashSet<int> { 4 }, t.SpecialTokenIds.ToHashSet());
    }
}

/// <summary>Post-processors. ids: &lt;s&gt;0 &lt;/s&gt;1 a2 b3 ab4.</summary>
public class PostProcessorTests
{
    private static Tokenizer With(string postProcessor) =>
        new TokenizerJsonBuilder("<s>", "</s>", "a", "b", "ab").Merges(("a", "b")).Added("<s>").Added("</s>").PostProcessor(postProcessor).Build();

    private const string Template = """
        {"type":"TemplateProcessing",
         "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],
         "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
         "special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[1],"tokens":["</s>"]}}}
        """;

    [Theory]
    [InlineData(Template)]
    [InlineData("""{"type":"RobertaProcessing","sep":["</s>",1],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":false}""")]
    [InlineData("""{"type":"BertProcessing","sep":["</s>",1],"cls":["<s>",0]}""")]
    [InlineData("""{"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},{"type":"BertProcessing","sep":["</s>",1],"cls":["<s>",0]}]}""")]
    public void AddsBosAndEosOnlyWhenAsked(string postProcessor)
    {
        var t = With(postProcessor);
        Assert.Equal([0, 4, 2, 1], t.Encode("aba"));
        Assert.Equal([4, 2], t.Encode("aba", addSpecialTokens: false));
        Assert.Equal("<s> ab a </s>", t.Decode([0, 4, 2, 1]));
        Assert.Equal("ab a", t.Decode([0, 4, 2, 1], skipSpecialTokens: true));
    }

    [Fact]
    public void TemplateNamingAnUnknownSpecialTokenIsAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => With(Template.Replace("\"</s>\":{\"id\":\"</s>\",\"ids\":[1],\"tokens\":[\"</s>\"]}", "\"x\":{\"id\":\"x\",\"ids\":[1],\"tokens\":[\"x\"]}")));
        Assert.Contains("'</s>'", e.Message);
    }
}
