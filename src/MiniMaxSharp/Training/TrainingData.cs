using System.Text.Json;

namespace MiniMaxSharp.Training;

/// <summary>Documents of token ids, and their packing into rows.</summary>
public static class TrainingData
{
    /// <summary>
    /// Reads documents from a JSON Lines file: one document per non-empty line, either a list of token ids or an
    /// object with "input_ids".
    /// </summary>
    public static List<int[]> ReadDocuments(string path)
    {
        var docs = new List<int[]>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: not valid JSON ({e.Message})");
            }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("input_ids", out var ids)) root = ids;
                if (root.ValueKind != JsonValueKind.Array)
                    throw new InvalidDataException($"{path}, line {lineNumber}: expected a list of token ids or an object with \"input_ids\"");
                var tokens = root.EnumerateArray().Select((v, j) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id) && id >= 0 ? id
                    : throw new InvalidDataException($"{path}, line {lineNumber}: token {j} is not a non-negative integer")).ToArray();
                if (tokens.Length > 0) docs.Add(tokens);
            }
        }
        if (docs.Count == 0) throw new InvalidDataException($"{path} holds no documents");
        return docs;
    }

    /// <summary>
    /// Packs documents one after another into rows of <paramref name="rowLength"/> tokens without padding. A document
    /// that does not fit is cut at the row's end and goes on, as a document of its own, in the next row; every row
    /// records its document lengths. The last row holds what is left (it may be shorter).
    /// </summary>
    public static List<TrainingExample> Pack(IEnumerable<int[]> documents, int rowLength)
    {
        if (rowLength < 2) throw new ArgumentOutOfRangeException(nameof(rowLength), rowLength, "rows need at least 2 tokens");
        var rows = new List<TrainingExample>();
        var ids = new List<int>(rowLength);
        var lengths = new List<int>();
        void Flush()
        {
            if (ids.Count == 0) return;
            rows.Add(TrainingExample.FromIds([.. ids], [.. lengths]));
            ids.Clear();
            lengths.Clear();
        }
        foreach (var doc in documents)
        {
            for (int at = 0; at < doc.Length;)
            {
                int n = Math.Min(doc.Length - at, rowLength - ids.Count);
                ids.AddRange(doc.AsSpan(at, n));
                lengths.Add(n);
                at += n;
                if (ids.Count == rowLength) Flush();
            }
        }
        Flush();
        return rows;
    }
}
