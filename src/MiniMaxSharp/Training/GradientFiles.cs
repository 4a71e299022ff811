using System.Text.Json;
using MiniMaxSharp.Backends;
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

    /// <summary>
    /// Writes every gradient of <paramref name="model"/> as float32, atomically, under the tensor names of the checkpoint
    /// it was loaded from (<paramref name="checkpointNames"/>): the original layout (experts as w1/w2/w3), the
    /// <c>language_model.</c> prefix of VL checkpoints, and Hugging Face's fused experts where the checkpoint holds
    /// them (gate_up_proj [E, 2I, hidden] = w1 rows then w3 rows, down_proj [E, hidden, I], router mlp.gate).
    /// </summary>
    public static void Write(string path, TrainingModel model, IReadOnlyCollection<string> checkpointNames, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafeTensorsWriter.Write(path, GradientTensors(model, checkpointNames).ToList(), metadata);

    private static IEnumerable<SafeTensorToWrite> GradientTensors(TrainingModel model, IReadOnlyCollection<string> checkpointNames)
    {
        var names = checkpointNames as ISet<string> ?? new HashSet<string>(checkpointNames, StringComparer.Ordinal);
        string prefix = names.Contains("language_model.model.embed_tokens.weight") ? "language_model." : "";
        string? Present(params string[] candidates) => candidates.FirstOrDefault(names.Contains);
        float[] Values(DeviceTensor t)
        {
            var v = new float[t.ElementCount];
            model.Backend.Download(t, v);
            return v;
        }
        SafeTensorToWrite Tensor(string name, long[] shape, float[] values) => SafeTensorToWrite.FromFloat32(name, shape, values, DType.F32);

        var layers = model.Gradients.Layers;
        var fused = new Dictionary<string, (int Layer, string GateUp, string Down)>(StringComparer.Ordinal);
        for (int l = 0; l < layers.Count; l++)
        {
            string p = $"{prefix}model.layers.{l}.mlp.experts.";
            string? gateUp = Present(p + "gate_up_proj", p + "gate_up_proj.weight");
            if (gateUp is null) continue;
            string down = Present(p + "down_proj", p + "down_proj.weight") ?? p + "down_proj";
            fused[$"{prefix}model.layers.{l}.block_sparse_moe.gate.weight"] = (l, gateUp, down);
        }
        var fusedLayerPrefixes = fused.Values.Select(f => $"{prefix}model.layers.{f.Layer}.block_sparse_moe.").ToArray();

        foreach (var (name, t) in TrainableWeights.Named(model.Gradients, prefix))
        {
            if (fused.TryGetValue(name, out var f))
            {
                var layer = layers[f.Layer];
                int E = layer.Experts.Count, I = (int)layer.Experts[0].W1.Rows, H = layer.Experts[0].W1.Cols;
                yield return Tensor($"{prefix}model.layers.{f.Layer}.mlp.gate.weight", [E, H], Values(t));
                var gateUp = new float[(long)E * 2 * I * H];
                var down = new float[(long)E * H * I];
                for (int e = 0; e < E; e++)
                {
                    Values(layer.Experts[e].W1).CopyTo(gateUp, (long)e * 2 * I * H);
                    Values(layer.Experts[e].W3).CopyTo(gateUp, ((long)e * 2 + 1) * I * H);
                    Values(layer.Experts[e].W2).CopyTo(down, (long)e * H * I);
                }
                yield return Tensor(f.GateUp, [E, 2 * I, H], gateUp);
                yield return Tensor(f.Down, [E, H, I], down);
                continue;
            }
            if (fusedLayerPrefixes.Any(lp => name.StartsWith(lp, StringComparison.Ordinal))) continue;   // experts written fused above
            yield return Tensor(name, t.Shape.Select(d => (long)d).ToArray(), Values(t));
        }
    }
}
