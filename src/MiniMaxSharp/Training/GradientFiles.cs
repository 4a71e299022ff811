using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>Reading a batch for the <c>gradients</c> command and writing gradients as safetensors.</summary>
public static class GradientFiles
{
    /// <summary>
    /// A JSON object with "input_ids" and "labels" (lists of equally long token lists, one list per row) and
    /// optionally "document_lengths" (per row, the lengths of the documents packed into it).
    /// </summary>
    public static TrainingExample[] ReadBatch(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object with \"input_ids\" and \"labels\"");
            var ids = IntRows(path, root, "input_ids", required: true)!;
            var labels = IntRows(path, root, "labels", required: true)!;
            var docs = IntRows(path, root, "document_lengths", required: false);
            if (ids.Length == 0) throw new InvalidDataException($"{path}: input_ids is empty");
            if (labels.Length != ids.Length) throw new InvalidDataException($"{path}: {ids.Length} input_ids rows but {labels.Length} labels rows");
            if (docs is not null && docs.Length != ids.Length) throw new InvalidDataException($"{path}: {ids.Length} input_ids rows but {docs.Length} document_lengths rows");
            for (int r = 0; r < ids.Length; r++)
            {
                if (ids[r].Length != ids[0].Length) throw new InvalidDataException($"{path}: input_ids[{r}] has {ids[r].Length} tokens, input_ids[0] has {ids[0].Length}");
                if (labels[r].Length != ids[r].Length) throw new InvalidDataException($"{path}: labels[{r}] has {labels[r].Length} values, input_ids[{r}] has {ids[r].Length}");
                if (ids[r].Length == 0) throw new InvalidDataException($"{path}: input_ids[{r}] is empty");
            }
            return ids.Select((row, r) => new TrainingExample(row, labels[r], docs?[r])).ToArray();
        }
    }

    private static int[][]? IntRows(string path, JsonElement root, string field, bool required)
    {
        if (!root.TryGetProperty(field, out var rows))
            return required ? throw new InvalidDataException($"{path}: the field \"{field}\" is missing") : null;
        if (rows.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{path}: \"{field}\" is not a list of lists");
        var result = new List<int[]>();
        foreach (var row in rows.EnumerateArray())
        {
            int r = result.Count;
            if (row.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{path}: {field}[{r}] is not a list");
            result.Add(row.EnumerateArray().Select((v, j) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int x) ? x
                : throw new InvalidDataException($"{path}: {field}[{r}][{j}] is not an integer")).ToArray());
        }
        return [.. result];
    }

    /// <summary>Writes every gradient of <paramref name="model"/> as float32 under its checkpoint name, atomically.</summary>
    public static void Write(string path, TrainingModel model, string namePrefix = "", IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = TrainableWeights.Named(model.Gradients, namePrefix).Select(p =>
        {
            var values = new float[p.Tensor.ElementCount];
            model.Backend.Download(p.Tensor, values);
            return SafeTensorToWrite.FromFloat32(p.Name, p.Tensor.Shape.Select(d => (long)d).ToArray(), values, DType.F32);
        }).ToList();
        SafeTensorsWriter.Write(path, tensors, metadata);
    }
}
