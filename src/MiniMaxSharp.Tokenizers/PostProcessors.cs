using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Adds the special tokens a model expects around a single sequence (BOS/EOS and the like).</summary>
internal abstract class PostProcessor
{
    /// <summary>Returns the final ids; only called when special tokens are wanted.</summary>
    public abstract List<int> Process(List<int> ids);

    /// <summary>How many ids <see cref="Process"/> adds to a single sequence (truncation leaves room for them).</summary>
    public abstract int AddedCount { get; }

    private const string Supported = "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence";

    public static PostProcessor FromJson(JsonElement json, string path)
    {
        string type = JsonFields.TypeOf(json, path);
        switch (type)
        {
            case "ByteLevel":
                return new WrapProcessor([], []); // only adjusts offsets, which this library does not report
            case "TemplateProcessing":
                return TemplateFromJson(json, path);
            case "BertProcessing":
            case "RobertaProcessing":
                return new WrapProcessor([ReadTokenPair(json, "cls", path)], [ReadTokenPair(json, "sep", path)]);
            case "Sequence":
            {
                var items = JsonFields.RequireArray(json, "processors", path);
                var children = new List<PostProcessor>();
                int index = 0;
                foreach (var item in items.EnumerateArray()) children.Add(FromJson(item, $"{path}.processors[{index++}]"));
                return new SequenceProcessor(children);
            }
            default:
                throw JsonFields.Unsupported(path, "post_processor", type, Supported);
        }
    }

    /// <summary>Reads ["[CLS]", 101].</summary>
    private static int ReadTokenPair(JsonElement json, string name, string path)
    {
        var pair = JsonFields.RequireArray(json, name, path);
        if (pair.GetArrayLength() != 2) throw new TokenizerException($"{path}.{name}: expected [token, id]");
        return JsonFields.AsInt(pair[1], $"{path}.{name}[1]");
    }

    private static PostProcessor TemplateFromJson(JsonElement json, string path)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (JsonFields.TryGet(json, "special_tokens", out var specialsJson))
        {
            foreach (var entry in specialsJson.EnumerateObject())
            {
                string entryPath = $"{path}.special_tokens.{entry.Name}";
                var idsJson = JsonFields.RequireArray(entry.Value, "ids", entryPath);
                var ids = new int[idsJson.GetArrayLength()];
                for (int i = 0; i < ids.Length; i++) ids[i] = JsonFields.AsInt(idsJson[i], $"{entryPath}.ids[{i}]");
                specials[entry.Name] = ids;
            }
        }

        var before = new List<int>();
        var after = new List<int>();
        bool seenSequence = false;
        var single = JsonFields.RequireArray(json, "single", path);
        int index = 0;
        foreach (var item in single.EnumerateArray())
        {
            string itemPath = $"{path}.single[{index++}]";
            if (JsonFields.TryGet(item, "Sequence", out var sequence))
            {
                string id = JsonFields.RequireString(sequence, "id", itemPath + ".Sequence");
                if (id != "A") throw new TokenizerException($"{itemPath}: the single-sequence template may only use sequence A, not '{id}'");
                if (seenSequence) throw new TokenizerException($"{itemPath}: sequence A appears twice in the template");
                seenSequence = true;
            }
            else if (JsonFields.TryGet(item, "SpecialToken", out var special))
            {
                string id = JsonFields.RequireString(special, "id", itemPath + ".SpecialToken");
                if (!specials.TryGetValue(id, out var ids))
                    throw new TokenizerException($"{itemPath}: special token '{id}' is missing from {path}.special_tokens");
                (seenSequence ? after : before).AddRange(ids);
            }
            else throw new TokenizerException($"{itemPath}: expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
        }
        if (!seenSequence) throw new TokenizerException($"{path}.single: the template has no sequence A");
        return new WrapProcessor(before.ToArray(), after.ToArray());
    }
}

/// <summary>Puts fixed ids before and after the sequence (templates, BERT's [CLS] A [SEP], RoBERTa's &lt;s&gt; A &lt;/s&gt;).</summary>
internal sealed class WrapProcessor(int[] before, int[] after) : PostProcessor
{
    public override int AddedCount => before.Length + after.Length;

    public override List<int> Process(List<int> ids)
    {
        if (AddedCount == 0) return ids;
        var result = new List<int>(ids.Count + AddedCount);
        result.AddRange(before);
        result.AddRange(ids);
        result.AddRange(after);
        return result;
    }
}

internal sealed class SequenceProcessor(IReadOnlyList<PostProcessor> children) : PostProcessor
{
    public override int AddedCount => children.Sum(c => c.AddedCount);

    public override List<int> Process(List<int> ids)
    {
        foreach (var child in children) ids = child.Process(ids);
        return ids;
    }
}
