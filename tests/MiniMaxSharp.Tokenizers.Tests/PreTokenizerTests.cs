namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>
/// Pre-tokenizers, observed through merges that can only form inside one piece. Ranks: (a,b)=0, (c,d)=1,
/// (ab,-)=2, (-,cd)=3, (-,-)=4; ids: a0 b1 c2 d3 -4 ab5 cd6 ab-7 -cd8 --9.
/// </summary>
public class PreTokenizerTests
{
    private static TokenizerJsonBuilder Dashes() =>
        new TokenizerJsonBuilder("a", "b", "c", "d", "-", "ab", "cd", "ab-", "-cd", "--")
            .Merges(("a", "b"), ("c", "d"), ("ab", "-"), ("-", "cd"), ("-", "-"));

    private static Tokenizer Split(string pattern, string behavior, bool invert = false) =>
        Dashes().PreTokenizer($$"""{"type":"Split","pattern":{{pattern}},"behavior":"{{behavior}}","invert":{{(invert ? "true" : "false")}}}""").Build();

    [Theory]
    [InlineData("Removed", new[] { 5, 6 })]                 // ab | cd
    [InlineData("Isolated", new[] { 5, 4, 4, 6 })]          // ab | - | - | cd
    [InlineData("MergedWithPrevious", new[] { 7, 4, 6 })]   // ab- | - | cd
    [InlineData("MergedWithNext", new[] { 5, 4, 8 })]       // ab | - | -cd
    [InlineData("Contiguous", new[] { 5, 9, 6 })]           // ab | -- | cd
    public void SplitBehaviorsOnAStringPattern(string behavior, int[] expected)
    {
        Assert.Equal(expected, Split("""{"String":"-"}""", behavior).Encode("ab--cd"));
    }

    [Fact]
    public void InvertedSplitRemovesTheNonMatches()
    {
        Assert.Equal([4, 4], Split("""{"String":"-"}""", "Removed", invert: true).Encode("ab--cd"));
        Assert.Equal([5, 4, 4, 6], Split("""{"String":"-"}""", "Isolated", invert: true).Encode("ab--cd"));
    }

    [Fact]
    public void RegexPatternSplits()
    {
        Assert.Equal([5, 9, 6], Split("""{"Regex":"-+"}""", "Isolated").Encode("ab--cd"));
    }

    [Fact]
    public void PossessiveQuantifierDoesNotGiveBack()
    {
        // "-?+-" cannot match a single '-': the possessive '-?+' keeps it. So "ab-cd" stays whole: ab- then cd.
        Assert.Equal([7, 6], Split("""{"Regex":"-?+-"}""", "Isolated").Encode("ab-cd"));
        // The greedy form gives the dash back and isolates it.
        Assert.Equal([5, 4, 6], Split("""{"Regex":"-?-"}""", "Isolated").Encode("ab-cd"));
    }

    [Fact]
    public void SequenceRunsEachStageOnThePreviousPieces()
    {
        var t = Dashes().PreTokenizer("""
            {"type":"Sequence","pretokenizers":[
              {"type":"Split","pattern":{"String":"--"},"behavior":"MergedWithNext","invert":false},
              {"type":"Split","pattern":{"String":"b"},"behavior":"MergedWithPrevious","invert":false}]}
            """).Build();
        // "ab--cd" -> "ab" | "--cd" -> "ab" | "--cd"; then "--cd" (no b) stays: - - c d -> (c,d) -> (-,cd) -> - -cd
        Assert.Equal([5, 4, 8], t.Encode("ab--cd"));
    }

    private static TokenizerJsonBuilder Digits() =>
        new TokenizerJsonBuilder("a", "1", "2", "3", "12", "123", "a1").Merges(("1", "2"), ("12", "3"), ("a", "1"));

    [Theory]
    [InlineData(true, new[] { 0, 1, 2, 3 })]
    [InlineData(false, new[] { 0, 5 })]
    public void DigitsSplitAlone(bool individual, int[] expected)
    {
        var t = Digits().PreTokenizer($$"""{"type":"Digits","individual_digits":{{(individual ? "true" : "false")}}}""").Build();
        Assert.Equal(expected, t.Encode("a123"));
    }

    [Fact]
    public void DigitsIncludeNonAsciiNumbers()
    {
        // U+0663 (Arabic-Indic three) is numeric: it is split from 'a', so the (a,1)-style merge cannot apply.
        var t = new TokenizerJsonBuilder("a", "\u0663", "a\u0663").Merges(("a", "\u0663"))
            .PreTokenizer("""{"type":"Digits","individual_digits":false}""").Build();
        Assert.Equal([0, 1], t.Encode("a\u0663"));
    }

    private static TokenizerJsonBuilder Punctuated() =>
        new TokenizerJsonBuilder("a", "b", "c", "d", ",", "ab", "cd", "b,").Merges(("b", ","), ("a", "b"), ("c", "d"));

    [Fact]
    public void WhitespaceSeparatesWordsFromPunctuation()
    {
        var t = Punctuated().PreTokenizer("""{"type":"Whitespace"}""").Build();
        Assert.Equal([5, 4, 6], t.Encode("ab,cd"));
        Assert.Equal([5, 4, 6], t.Encode("  ab ,\tcd "));
    }

    [Fact]
    public void WhitespaceSplitOnlyCutsAtWhitespace()
    {
        var t = Punctuated().PreTokenizer("""{"type":"WhitespaceSplit"}""").Build();
        Assert.Equal([0, 7, 6], t.Encode("ab,cd"));  // (b,",") has rank 0 and wins
        Assert.Equal([5, 6], t.Encode(" ab\u3000cd"));
    }

    // ids: ▁0 a1 b2 c3 d4 ▁a5 ▁ab6 ab7 ▁c8 ▁cd9 cd10 <s>11
    private static Tokenizer Metaspace(string scheme, bool split = true) =>
        new TokenizerJsonBuilder("\u2581", "a", "b", "c", "d", "\u2581a", "\u2581ab", "ab", "\u2581c", "\u2581cd", "cd", "<s>")
            .Merges(("\u2581", "a"), ("\u2581a", "b"), ("a", "b"), ("\u2581", "c"), ("\u2581c", "d"), ("c", "d"))
            .Added("<s>")
            .PreTokenizer($$"""{"type":"Metaspace","replacement":"▁","prepend_scheme":"{{scheme}}","split":{{(split ? "true" : "false")}}}""")
            .Decoder($$"""{"type":"Metaspace","replacement":"▁","prepend_scheme":"{{scheme}}","split":true}""")
            .Build();

    [Fact]
    public void MetaspacePrependSchemes()
    {
        Assert.Equal([6, 9], Metaspace("always").Encode("ab cd"));       // ▁ab | ▁cd
        Assert.Equal([7, 9], Metaspace("never").Encode("ab cd"));        // ab | ▁cd
        Assert.Equal([6, 9], Metaspace("first").Encode("ab cd"));
        Assert.Equal([11, 7, 9], Metaspace("first").Encode("<s>ab cd")); // not at the start of the input: no ▁
        Assert.Equal([11, 6, 9], Metaspace("always").Encode("<s>ab cd"));
    }

    [Fact]
    public void MetaspaceWithoutSplitKeepsOnePiece()
    {
        // "▁ab▁cd" as one word: ▁a, ▁ab, then ▁c, ▁cd; (▁ab,▁cd) has no merge.
        Assert.Equal([6, 9], Metaspace("always", split: false).Encode("ab cd"));
    }

    [Fact]
    public void MetaspaceDecoderTurnsReplacementIntoSpaces()
    {
        Assert.Equal("ab cd", Metaspace("always").Decode([6, 9]));
        Assert.Equal("ab cd", Metaspace("always").Decode([7, 9]));
        Assert.Equal(" ab cd", Metaspace("never").Decode([6, 9]));
    }

    [Fact]
    public void ByteLevelPrefixSpace()
    {
        // Byte-level symbols: space is Ġ. ids: a0 b1 Ġ2 Ġa3 Ġab4 ab5
        var builder = new TokenizerJsonBuilder("a", "b", "\u0120", "\u0120a", "\u0120ab", "ab")
            .Merges(("\u0120", "a"), ("\u0120a", "b"), ("a", "b"))
            .Decoder("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""");
        var withPrefix = builder.PreTokenizer("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""").Build();
        var without = builder.PreTokenizer("""{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}""").Build();
        Assert.Equal([4, 4], withPrefix.Encode("ab ab"));
        Assert.Equal([5, 4], without.Encode("ab ab"));
        Assert.Equal(" ab ab", withPrefix.Decode([4, 4]));
    }
}
