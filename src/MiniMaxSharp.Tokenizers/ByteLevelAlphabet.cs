namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// GPT-2's reversible byte-to-character table: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// get the code points from U+0100 upwards in byte order, so every byte sequence becomes visible text.
/// </summary>
internal static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = new char[256];
    private static readonly short[] CharToByteTable;

    static ByteLevelAlphabet()
    {
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            ByteToChar[b] = (char)(printable ? b : next++);
        }
        CharToByteTable = new short[next];
        Array.Fill(CharToByteTable, (short)-1);
        for (int b = 0; b < 256; b++) CharToByteTable[ByteToChar[b]] = (short)b;
    }

    /// <summary>The byte a mapped character stands for, or -1 if it is not one of the 256 symbols.</summary>
    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;

    /// <summary>Appends the byte-level form of <paramref name="text"/> (its UTF-8 bytes, each as its symbol).</summary>
    public static int Map(ReadOnlySpan<char> text, Span<char> destination)
    {
        int written = 0;
        for (int i = 0; i < text.Length; i++)
        {
            int c = text[i];
            if (c < 0x80) { destination[written++] = ByteToChar[c]; continue; }
            if (c < 0x800)
            {
                destination[written++] = ByteToChar[0xC0 | (c >> 6)];
                destination[written++] = ByteToChar[0x80 | (c & 0x3F)];
                continue;
            }
            if (char.IsHighSurrogate((char)c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32((char)c, text[++i]);
                destination[written++] = ByteToChar[0xF0 | (cp >> 18)];
                destination[written++] = ByteToChar[0x80 | ((cp >> 12) & 0x3F)];
                destination[written++] = ByteToChar[0x80 | ((cp >> 6) & 0x3F)];
                destination[written++] = ByteToChar[0x80 | (cp & 0x3F)];
                continue;
            }
            destination[written++] = ByteToChar[0xE0 | (c >> 12)];
            destination[written++] = ByteToChar[0x80 | ((c >> 6) & 0x3F)];
            destination[written++] = ByteToChar[0x80 | (c & 0x3F)];
        }
        return written;
    }
}
