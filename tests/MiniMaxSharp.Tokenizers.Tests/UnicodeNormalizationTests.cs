using System.Text;

namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>
/// The library's own NFC/NFD/NFKC/NFKD against ICU's (this test project runs with ICU; both use Unicode 15.0 data).
/// </summary>
public class UnicodeNormalizationTests
{
    public static TheoryData<string> Forms => new() { "NFC", "NFD", "NFKC", "NFKD" };

    private static (bool Compose, bool Compatibility, NormalizationForm Icu) Form(string name) => name switch
    {
        "NFC" => (true, false, NormalizationForm.FormC),
        "NFD" => (false, false, NormalizationForm.FormD),
        "NFKC" => (true, true, NormalizationForm.FormKC),
        _ => (false, true, NormalizationForm.FormKD),
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public void EveryCodePointAloneMatchesIcu(string name)
    {
        var (compose, compatibility, icu) = Form(name);
        Assert.Equal(2, "\u00E9".Normalize(NormalizationForm.FormD).Length); // ICU really is in use
        var mismatches = new List<string>();
        for (int cp = 0x80; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) continue;
            // .NET refuses to normalize noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF); they have no mappings.
            bool nonCharacter = cp is >= 0xFDD0 and <= 0xFDEF || (cp & 0xFFFE) == 0xFFFE;
            string text = char.ConvertFromUtf32(cp);
            string expected = nonCharacter ? text : text.Normalize(icu);
            if (UnicodeNormalization.Normalize(text, compose, compatibility) != expected) mismatches.Add($"U+{cp:X4}");
        }
        Assert.Empty(mismatches);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void MarkSequencesMatchIcu(string name)
    {
        var (compose, compatibility, icu) = Form(name);
        // Bases, marks of several combining classes, Hangul jamo and syllables, and characters with decompositions.
        string[] pool =
        [
            "a", "e", "o", "u", "A", "E", "O", "s", "i", "\u0391", "\u03B9", "\u0418", "\u05D0", "\u0627", "\u0915", "\u0B47", "\u0B3E",
            "\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030C", "\u0323", "\u0327", "\u0328", "\u0345", "\u0313", "\u0342",
            "\u05B0", "\u05BC", "\u0651", "\u0650", "\u093C", "\u094D", "\u0B56", "\u0B57", "\u1100", "\u1161", "\u11A8", "\uAC00", "\uD55C",
            "\u00C5", "\u212B", "\u1E9B", "\uFB01", "\u2126", "\u0344", "\u0F73", "\u0F75", "\u0F81", "\u1D15E", "\U0001D160", "\u3200",
            "\uFF76\uFF9E", "\u2460", "\u00BD", "\u01C4", "\u1E0A", "\u1E0C", "\u0114", "\u2000", " ",
        ];
        var random = new Random(1234);
        for (int n = 0; n < 20000; n++)
        {
            var sb = new StringBuilder();
            int length = random.Next(1, 8);
            for (int k = 0; k < length; k++) sb.Append(pool[random.Next(pool.Length)]);
            string text = sb.ToString();
            Assert.Equal(text.Normalize(icu), UnicodeNormalization.Normalize(text, compose, compatibility));
        }
    }

    [Fact]
    public void NormalizerComponentsUseIt()
    {
        var fi = new TokenizerJsonBuilder("f", "i", "fi").Merges(("f", "i"));
        Assert.Equal([2], fi.Normalizer("""{"type":"NFKC"}""").Build().Encode("\uFB01"));
    }
}
