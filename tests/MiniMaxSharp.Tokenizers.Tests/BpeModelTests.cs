using System.Text.Json.Nodes;

namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>The BPE model on tiny vocabularies whose expected ids follow by hand from the merge ranks.</summary>
public class BpeModelTests
{
    // Ranks: (b,c)=0, (a,b)=1, (a,bc)=2.
    private static Tokenizer Abc(bool legacySpelling) =>
        new TokenizerJsonBuilder("a", "b", "c", "ab", "bc", "abc")
            .Merges(legacySpelling, ("b", "c"), ("a", "b"), ("a", "bc"))
            .Build();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LowestRankMergesFirstInBothMergeSpellings(bool legacySpelling)
    {
        var t = Abc(legacySpelling);
        Assert.Equal([5], t.Encode("abc"));          // b+c (rank 0), then a+bc
        Assert.Equal([5, 3], t.Encode("abcab"));     // b+c, then the second a+b, then a+bc
        Assert.Equal([2, 3], t.Encode("cab"));
        Assert.Equal([0], t.Encode("a"));
        Assert.Empty(t.Encode(""));
    }

    [Fact]
    public void UnknownCharacterIsDroppedWithoutUnkToken()
    {
        // The 'x' vanishes, after which a and b are neighbours and merge.
        Assert.Equal([3], Abc(false).Encode("axb"));
    }

    [Theory]
    [InlineData(true, new[] { 0, 6, 1 })]
    [InlineData(false, new[] { 0, 6, 6, 1 })]
    public void UnknownCharactersBecomeUnkFusedOrNot(bool fuse, int[] expected)
    {
        var t = new TokenizerJsonBuilder("a", "b", "c", "ab", "bc", "abc", "<unk>")
            .Merges(("b", "c"))
            .Model("unk_token", "<unk>").Model("fuse_unk", fuse)
            .Build();
        Assert.Equal(expected, t.Encode("axxb"));
    }

    [Fact]
    public void ByteFallbackSpellsUnknownCharactersAsBytes()
    {
        var t = new TokenizerJsonBuilder("a", "<0xC3>", "<0xA9>", "<unk>")
            .Model("byte_fallback", true).Model("unk_token", "<unk>")
            .Decoder("""{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}""")
            .Build();
        Assert.Equal([0, 1, 2], t.Encode("aé"));      // é = C3 A9
        Assert.Equal([0, 3], t.Encode("aè"));         // è = C3 A8, and <0xA8> is missing: unk instead
        Assert.Equal([0, 1, 2, 3, 0], t.Encode("aèéa")); // the pending unk of è lands after é's fallback bytes
        Assert.Equal("aé", t.Decode([0, 1, 2]));
        Assert.Equal("\uFFFDa", t.Decode([1, 0]));   // a lone lead byte
    }

    [Theory]
    [InlineData(true, new[] { 4 })]
    [InlineData(false, new[] { 3, 2 })]
    public void IgnoreMergesTakesWholeWordsFromTheVocab(bool ignoreMerges, int[] expected)
    {
        var t = new TokenizerJsonBuilder("a", "b", "c", "ab", "abc").Merges(("a", "b")).Model("ignore_merges", ignoreMerges).Build();
        Assert.Equal(expected, t.Encode("abc"));
    }

    [Fact]
    public void ContinuingSubwordPrefixMarksNonInitialSymbols()
    {
        var t = new TokenizerJsonBuilder("a", "##b", "##c", "ab", "abc")
            .Merges(("a", "##b"), ("ab", "##c"))
            .Model("continuing_subword_prefix", "##")
            .Build();
        Assert.Equal([4], t.Encode("abc"));
        Assert.Equal([3], t.Encode("ab"));
        Assert.Equal([0, 2], t.Encode("ac"));
    }

    [Fact]
    public void ByteFallbackSpellsThePrefixedSymbol()
    {
        // Non-initial symbols are looked up as "##日", so their fallback bytes include the two '#' (0x23).
        var t = new TokenizerJsonBuilder("<0x23>", "<0xE6>", "<0x97>", "<0xA5>", "a")
            .Model("continuing_subword_prefix", "##").Model("byte_fallback", true)
            .Build();
        Assert.Equal([4, 0, 0, 1, 2, 3], t.Encode("a日"));
        Assert.Equal([1, 2, 3], t.Encode("日a")); // "##a" has no token and no byte 0x61: dropped
        var many = t.Encode(new string('日', 20));
        Assert.Equal(3 + 19 * 5, many.Count);
        Assert.Equal([0, 0, 1, 2, 3], many.Skip(many.Count - 5));
    }

    [Fact]
    public void EndOfWordSuffixMarksTheLastSymbol()
    {
        var t = new TokenizerJsonBuilder("a", "b", "b</w>", "ab</w>", "a</w>")
            .Merges(("a", "b</w>"))
            .Model("end_of_word_suffix", "</w>")
            .PreTokenizer("""{"type":"WhitespaceSplit"}""")
            .Decoder("""{"type":"BPEDecoder","suffix":"</w>"}""")
            .Build();
        Assert.Equal([3, 1, 4], t.Encode("ab ba"));
        Assert.Equal("ab ba", t.Decode([3, 1, 4]));
    }

    [Fact]
    public void NoDecoderJoinsTokensWithSpaces()
    {
        Assert.Equal("ab c", new TokenizerJsonBuilder("a", "b", "c", "ab").Build().Decode([3, 2]));
    }

    [Fact]
    public void ModelWithoutTypeButWithMergesIsBpe()
    {
        var json = new TokenizerJsonBuilder("a", "b", "ab").Merges(("a", "b")).Json();
        var root = JsonNode.Parse(json)!;
        root["model"]!.AsObject().Remove("type");
        Assert.Equal([2], Tokenizer.FromJson(root.ToJsonString()).Encode("ab"));
    }
}
