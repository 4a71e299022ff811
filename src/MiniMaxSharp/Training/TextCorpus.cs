using System.Text.RegularExpressions;
using MiniMaxSharp.Tokenizers;

namespace MiniMaxSharp.Training;

/// <summary>Plain-text corpora turned into token documents, and the deterministic held-out split.</summary>
public static partial class TextCorpus
{
    /// <summary>
    /// Tokenises UTF-8 text files into documents: each file is one document, or with <paramref name="paragraphs"/>
    /// each run of text between blank lines is. Special tokens are not added by the post-processor;
    /// <paramref name="endOfTextId"/> (when given) ends every document, so the model learns where documents end.
    /// </summary>
    public static List<int[]> ReadDocuments(Tokenizer tokenizer, IEnumerable<string> files, bool paragraphs, int? endOfTextId)
    {
        var docs = new List<int[]>();
        foreach (var file in files)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"text file not found: {file}", file);
            string text = File.ReadAllText(file).Replace("\r\n", "\n");
            var pieces = paragraphs ? BlankLines().Split(text) : [text];
            foreach (var piece in pieces)
            {
                string trimmed = piece.Trim('\n');
                if (trimmed.Trim().Length == 0) continue;
                var ids = tokenizer.Encode(trimmed, addSpecialTokens: false);
                docs.Add(endOfTextId is int eot ? [.. ids, eot] : [.. ids]);
            }
        }
        if (docs.Count == 0) throw new InvalidDataException($"the text files ({string.Join(", ", files)}) hold no text");
        return docs;
    }

    /// <summary>
    /// Splits documents deterministically: every <paramref name="everyNth"/>-th document (indices n-1, 2n-1, ...)
    /// goes to the held-out set, the others to training. Needs at least two documents per held-out one.
    /// </summary>
    public static (List<int[]> Train, List<int[]> HeldOut) Split(IReadOnlyList<int[]> documents, int everyNth)
    {
        if (everyNth < 2) throw new ArgumentOutOfRangeException(nameof(everyNth), everyNth, "hold out every n-th document with n >= 2");
        if (documents.Count < everyNth)
            throw new InvalidDataException($"{documents.Count} documents are too few to hold out every {everyNth}th for evaluation (split files into paragraphs, or lower the interval)");
        var train = new List<int[]>();
        var heldOut = new List<int[]>();
        for (int i = 0; i < documents.Count; i++) (i % everyNth == everyNth - 1 ? heldOut : train).Add(documents[i]);
        return (train, heldOut);
    }

    [GeneratedRegex(@"\n[ \t]*\n(?:[ \t]*\n)*")]
    private static partial Regex BlankLines();
}
