namespace MiniMaxSharp.Tokenizers.Tests;

public class OnigRegexTests
{
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static List<string> Pieces(OnigRegex regex, string text)
    {
        var spans = new List<PatternSpan>();
        regex.FindMatches(text, spans);
        return spans.Select(s => (s.IsMatch ? "+" : "-") + text[s.Start..s.End]).ToList();
    }

    [Theory]
    [InlineData("a?+b", "(?>a?)b")]
    [InlineData("[^x]++y", "(?>[^x]+)y")]
    [InlineData(@"(ab)*+\p{L}", @"(?>(ab)*)\p{L}")]
    [InlineData(@"\p{N}{1,3}+", @"(?:\p{N}{1,3})+")]  // Ruby syntax: not possessive
    [InlineData(@"\x{41}\h", @"\u0041[0-9a-fA-F]")]
    [InlineData("(?m:.)", "(?s:.)")]
    [InlineData("a+?b", "a+?b")]
    public void TranslatesOnigurumaSyntax(string onig, string dotnet)
    {
        Assert.Equal(dotnet, OnigRegex.TranslatePattern(onig, "test"));
    }

    [Fact]
    public void Llama3SplitPattern()
    {
        const string llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        var regex = OnigRegex.FromOnigPattern(llama3, "test");
        Assert.Equal(["+I", "+'M", "+ you", "+'RE", "+ ", "+123", "+45", "+!!\n\n", "+ ", "+ x"],
            Pieces(regex, "I'M you'RE 12345!!\n\n  x"));
    }

    [Fact]
    public void WordClassIncludesSpacingMarks()
    {
        // U+0903 (Devanagari visarga) is a spacing mark: part of a word for Oniguruma, not for .NET's own \w.
        Assert.Equal(["+x\u0903y", "- ", "+z"], Pieces(OnigRegex.FromOnigPattern(@"\w+", "test"), "x\u0903y z"));
        Assert.Equal(["+x\u0903y", "- ", "+z"], Pieces(OnigRegex.FromOnigPattern(@"[\w]+", "test"), "x\u0903y z"));
        Assert.Equal(["-x\u0903y", "+ ", "-z"], Pieces(OnigRegex.FromOnigPattern(@"\W+", "test"), "x\u0903y z"));
    }

    [Fact]
    public void LettersAboveTheBmpAreLetters()
    {
        // U+20000 and U+1D49C are letters; .NET alone would see surrogates and split the run.
        var letters = OnigRegex.FromOnigPattern(@"\p{L}+", "test");
        Assert.Equal(["+x\U00020000y\U0001D49C", "- ", "+z"], Pieces(letters, "x\U00020000y\U0001D49C z"));
        var symbols = OnigRegex.FromOnigPattern(@"[^\s\p{L}\p{N}]+", "test");
        Assert.Equal(["-a", "+😀🚀", "-\U00020000"], Pieces(symbols, "a😀🚀\U00020000"));
    }

    [Theory]
    [InlineData("Hello world! I'm   here\n\n  x\t\ty 123 4.5")]
    [InlineData("  leading spaces and   multiple   gaps \u00A0nbsp\u2003em\u3000")]
    [InlineData("don't 'S 're'll 'x ''s 💯 𝒜𝒝 \U00020000abc ٣٤ Ⅻ ½ e\u0301 \r\n\r\n")]
    [InlineData(" ")]
    [InlineData("a  ")]
    [InlineData("\n a")]
    public void HandWrittenGpt2SplitterAgreesWithTheRegex(string text)
    {
        var regex = OnigRegex.FromOnigPattern(Gpt2Pattern, "test");
        var expected = Pieces(regex, text);
        var actual = new List<string>();
        for (int at = 0; at < text.Length;)
        {
            int length = Gpt2Splitter.MatchLength(text, at);
            actual.Add("+" + text.Substring(at, length));
            at += length;
        }
        Assert.Equal(expected, actual);
    }
}
