using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Tokenizers;

/// <summary>
/// Unicode normalization forms (UAX #15) from data generated out of the Unicode Character Database
/// (Data/UnicodeNormalization.txt), so NFC and friends work without ICU, also with InvariantGlobalization.
/// </summary>
internal static class UnicodeNormalization
{
    private const int HangulBase = 0xAC00, HangulCount = 11172, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Canonical = [];      // full canonical decomposition
        public readonly Dictionary<int, int[]> Compatibility = [];  // full compatibility decomposition
        public readonly Dictionary<int, byte> CombiningClass = [];
        public readonly Dictionary<long, int> Composition = [];     // (first, second) -> primary composite
    }

    private static readonly Lazy<Tables> Data = new(Load);

    public static string Normalize(string text, bool compose, bool compatibility)
    {
        // ASCII is unchanged by every form.
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', '\u007F')) return text;
        var tables = Data.Value;
        var decomposed = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, compatibility, tables, decomposed);
        SortCombiningMarks(decomposed, tables);
        if (compose) Compose(decomposed, tables);
        var sb = new StringBuilder(decomposed.Count + 8);
        foreach (int cp in decomposed) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static void Decompose(int cp, bool compatibility, Tables tables, List<int> output)
    {
        int s = cp - HangulBase;
        if ((uint)s < HangulCount)
        {
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        var map = compatibility ? tables.Compatibility : tables.Canonical;
        if (map.TryGetValue(cp, out var mapping)) output.AddRange(mapping);
        else output.Add(cp);
    }

    private static byte Ccc(int cp, Tables tables) => tables.CombiningClass.GetValueOrDefault(cp);

    /// <summary>Canonical ordering: each run of non-starters is stably sorted by combining class.</summary>
    private static void SortCombiningMarks(List<int> cps, Tables tables)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cp = cps[i];
            byte ccc = Ccc(cp, tables);
            if (ccc == 0) continue;
            int j = i;
            while (j > 0 && Ccc(cps[j - 1], tables) > ccc)
            {
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    /// <summary>Canonical composition: each mark joins the last starter unless a mark of equal or higher class stands between.</summary>
    private static void Compose(List<int> cps, Tables tables)
    {
        int starter = -1, write = 0;
        for (int read = 0; read < cps.Count; read++)
        {
            int cp = cps[read];
            byte ccc = Ccc(cp, tables);
            if (starter >= 0)
            {
                bool adjacent = write - 1 == starter;
                byte lastCcc = adjacent ? (byte)0 : Ccc(cps[write - 1], tables);
                if ((adjacent || (lastCcc != 0 && lastCcc < ccc)) && TryCompose(cps[starter], cp, tables, out int composite))
                {
                    cps[starter] = composite;
                    continue;
                }
            }
            if (ccc == 0) starter = write;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, Tables tables, out int composite)
    {
        int l = first - LBase, v = second - VBase;
        if ((uint)l < LCount && (uint)v < VCount)
        {
            composite = HangulBase + (l * VCount + v) * TCount;
            return true;
        }
        int s = first - HangulBase, t = second - TBase;
        if ((uint)s < HangulCount && s % TCount == 0 && t > 0 && t < TCount)
        {
            composite = first + t;
            return true;
        }
        return tables.Composition.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private static Tables Load()
    {
        using var stream = typeof(UnicodeNormalization).Assembly.GetManifestResourceStream("MiniMaxSharp.Tokenizers.UnicodeNormalization.txt")
            ?? throw new InvalidOperationException("embedded resource UnicodeNormalization.txt is missing");
        using var reader = new StreamReader(stream);
        var tables = new Tables();
        var canonicalOnce = new Dictionary<int, int[]>();
        var compatibilityOnce = new Dictionary<int, int[]>();
        var excluded = new HashSet<int>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split(' ');
            switch (f[0])
            {
                case "d":
                case "k":
                    var mapping = f.Skip(2).Select(Hex).ToArray();
                    (f[0] == "d" ? canonicalOnce : compatibilityOnce)[Hex(f[1])] = mapping;
                    break;
                case "c":
                    for (int cp = Hex(f[1]); cp <= Hex(f[2]); cp++) tables.CombiningClass[cp] = byte.Parse(f[3], CultureInfo.InvariantCulture);
                    break;
                case "x":
                    for (int cp = Hex(f[1]); cp <= Hex(f[2]); cp++) excluded.Add(cp);
                    break;
            }
        }

        foreach (var cp in canonicalOnce.Keys) tables.Canonical[cp] = Expand(cp, compatibility: false);
        foreach (var cp in canonicalOnce.Keys.Concat(compatibilityOnce.Keys)) tables.Compatibility[cp] = Expand(cp, compatibility: true);
        foreach (var (cp, mapping) in canonicalOnce)
            if (mapping.Length == 2 && !excluded.Contains(cp)) tables.Composition[((long)mapping[0] << 21) | (uint)mapping[1]] = cp;
        return tables;

        // Applies the one-level mappings recursively (Hangul syllables never appear inside them).
        int[] Expand(int cp, bool compatibility)
        {
            var result = new List<int>();
            void Walk(int c)
            {
                if (canonicalOnce.TryGetValue(c, out var m) || (compatibility && compatibilityOnce.TryGetValue(c, out m)))
                    foreach (int x in m) Walk(x);
                else result.Add(c);
            }
            Walk(cp);
            return result.ToArray();
        }

        static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }
}
