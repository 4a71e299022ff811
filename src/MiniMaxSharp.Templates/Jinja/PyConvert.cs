using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Converts .NET values (including System.Text.Json documents) into the template value model.</summary>
internal static class PyConvert
{
    public static object? FromClr(object? value, string path = "value") => value switch
    {
        null => null,
        string or bool or long or double or Undefined or PyDict or PyTuple or PyNamespace or PyCallable => value,
        int i => (long)i,
        short s => (long)s,
        sbyte sb => (long)sb,
        byte b => (long)b,
        ushort us => (long)us,
        uint ui => (long)ui,
        ulong ul => ul <= long.MaxValue ? (long)ul : throw new TemplateException($"{path}: {ul} does not fit in a 64-bit template integer"),
        float f => (double)f,
        decimal m => (double)m,
        char c => c.ToString(),
        JsonElement element => FromJsonElement(element, path),
        JsonNode node => FromJsonNode(node, path),
        IDictionary dictionary => FromDictionary(dictionary, path),
        IEnumerable<KeyValuePair<string, object?>> pairs => FromPairs(pairs, path),
        IEnumerable sequence => sequence.Cast<object?>().Select((item, i) => FromClr(item, $"{path}[{i}]")).ToList(),
        _ => throw new TemplateException($"{path}: values of type {value.GetType().Name} cannot be passed to a template"),
    };

    private static PyDict FromDictionary(IDictionary dictionary, string path)
    {
        var dict = new PyDict();
        foreach (DictionaryEntry entry in dictionary)
            dict.Set(FromClr(entry.Key, path), FromClr(entry.Value, $"{path}['{entry.Key}']"));
        return dict;
    }

    private static PyDict FromPairs(IEnumerable<KeyValuePair<string, object?>> pairs, string path)
    {
        var dict = new PyDict();
        foreach (var (key, item) in pairs)
            dict.Set(key, FromClr(item, $"{path}['{key}']"));
        return dict;
    }

    private static object? FromJsonElement(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined:
                return null;
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Number:
                // As Python's json module: integers without '.'/exponent are int, the rest float.
                if (element.TryGetInt64(out long l))
                    return l;
                string raw = element.GetRawText();
                if (raw.AsSpan().IndexOfAny(".eE") < 0)
                    throw new TemplateException($"{path}: {raw} does not fit in a 64-bit template integer");
                return element.GetDouble();
            case JsonValueKind.Array:
                return element.EnumerateArray().Select((item, i) => FromJsonElement(item, $"{path}[{i}]")).ToList();
            default:
                var dict = new PyDict();
                foreach (var property in element.EnumerateObject())
                    dict.Set(property.Name, FromJsonElement(property.Value, $"{path}['{property.Name}']"));
                return dict;
        }
    }

    private static object? FromJsonNode(JsonNode node, string path) => node switch
    {
        JsonObject obj => FromPairs(obj.Select(p => new KeyValuePair<string, object?>(p.Key, p.Value)), path),
        JsonArray array => array.Select((item, i) => item is null ? null : FromJsonNode(item, $"{path}[{i}]")).ToList(),
        // Parsed nodes wrap a JsonElement; nodes built in code (JsonValue.Create(5)) are re-read from their JSON text.
        JsonValue value when value.TryGetValue(out JsonElement element) => FromJsonElement(element, path),
        _ => FromJsonText(node.ToJsonString(), path),
    };

    private static object? FromJsonText(string json, string path)
    {
        using var document = JsonDocument.Parse(json);
        return FromJsonElement(document.RootElement, path);
    }
}
