using System.Globalization;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Character classes with the meanings Rust and Oniguruma give them, per code point (not per UTF-16 unit).</summary>
internal static class UnicodeClass
{
    public const byte Other = 0, Letter = 1, Number = 2, Space = 3;

    // Class of every BMP code unit, so the hot loops do one table read per char.
    private static readonly byte[] BmpClass = BuildBmpTable();

    private static byte[] BuildBmpTable()
    {
        var table = new byte[65536];
        for (int c = 0; c < 65536; c++)
            table[c] = char.IsSurrogate((char)c) ? Other : Classify(c);
        return table;
    }

    private static byte Classify(int codePoint)
    {
        if (IsWhiteSpace(codePoint)) return Space;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
            _ => Other,
        };
    }

    /// <summary>Class of the code point at <paramref name="index"/>; <paramref name="width"/> is its UTF-16 length.</summary>
    public static byte ClassAt(ReadOnlySpan<char> text, int index, out int width)
    {
        char c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            width = 2;
            return Classify(char.ConvertToUtf32(c, text[index + 1]));
        }
        width = 1;
        return BmpClass[c];
    }

    /// <summary>The code point at <paramref name="index"/>, joining a surrogate pair when there is one.</summary>
    public static int CodePointAt(ReadOnlySpan<char> text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1])
            ? char.ConvertToUtf32(text[index], text[index + 1])
            : text[index];

    /// <summary>Rust's char::is_whitespace (the Unicode White_Space property).</summary>
    public static bool IsWhiteSpace(int codePoint) => codePoint switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        >= 0x2000 and <= 0x200A => true,
        _ => false,
    };

    /// <summary>Rust's char::is_numeric: general categories Nd, Nl, No.</summary>
    public static bool IsNumeric(int codePoint) => codePoint < 65536 ? BmpClass[codePoint] == Number : Classify(codePoint) == Number;

    /// <summary>The Unicode \w of the Rust regex crate: Alphabetic, marks, decimal digits, connector punctuation, joiners.</summary>
    public static bool IsWordChar(int codePoint)
    {
        if (codePoint < 128)
            return (uint)(codePoint - 'a') < 26 || (uint)(codePoint - 'A') < 26 || (uint)(codePoint - '0') < 10 || codePoint == '_';
        if (codePoint is 0x200C or 0x200D) return true;
        // Other_Alphabetic symbols (circled and squared letters) count as alphabetic.
        if (codePoint is >= 0x24B6 and <= 0x24E9 or >= 0x1F130 and <= 0x1F149 or >= 0x1F150 and <= 0x1F169 or >= 0x1F170 and <= 0x1F189)
            return true;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }

    /// <summary>Rust's char::is_ascii_punctuation || char::is_punctuation (general categories P*).</summary>
    public static bool IsPunctuation(int codePoint)
    {
        if (codePoint < 128)
            return codePoint is >= 0x21 and <= 0x2F or >= 0x3A and <= 0x40 or >= 0x5B and <= 0x60 or >= 0x7B and <= 0x7E;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => true,
            _ => false,
        };
    }

    /// <summary>Index of the first unpaired surrogate, or -1: such text has no UTF-8 form, so it cannot be tokenized.</summary>
    public static int FindUnpairedSurrogate(ReadOnlySpan<char> text)
    {
        int i = text.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0) return -1;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            return i;
        }
        return -1;
    }
}
