using System.Text.Json;

namespace MiniMaxSharp.Tokenizers;

/// <summary>Typed reads from tokenizer.json whose errors name the JSON path of the offending field.</summary>
internal static class JsonFields
{
    public static bool TryGet(JsonElement obj, string name, out JsonElement value)
    {
        if (obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null)
            return true;
        value = default;
        return false;
    }

    public static JsonElement Require(JsonElement obj, string name, string path)
    {
        if (!TryGet(obj, name, out var value))
            throw new TokenizerException($"{path}: required field '{name}' is missing");
        return value;
    }

    public static string RequireString(JsonElement obj, string name, string path)
    {
        var value = Require(obj, name, path);
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw WrongKind(path, name, "a string", value);
    }

    public static string? OptString(JsonElement obj, string name, string path)
    {
        if (!TryGet(obj, name, out var value)) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw WrongKind(path, name, "a string", value);
    }

    public static bool OptBool(JsonElement obj, string name, bool fallback, string path)
    {
        if (!TryGet(obj, name, out var value)) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongKind(path, name, "true or false", value),
        };
    }

    public static int RequireInt(JsonElement obj, string name, string path) => AsInt(Require(obj, name, path), $"{path}.{name}");

    public static int OptInt(JsonElement obj, string name, int fallback, string path) =>
        TryGet(obj, name, out var value) ? AsInt(value, $"{path}.{name}") : fallback;

    public static int AsInt(JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result))
            throw new TokenizerException($"{path}: expected a 32-bit integer but found {Describe(value)}");
        return result;
    }

    public static JsonElement RequireArray(JsonElement obj, string name, string path)
    {
        var value = Require(obj, name, path);
        return value.ValueKind == JsonValueKind.Array ? value : throw WrongKind(path, name, "an array", value);
    }

    public static JsonElement RequireObject(JsonElement obj, string name, string path)
    {
        var value = Require(obj, name, path);
        return value.ValueKind == JsonValueKind.Object ? value : throw WrongKind(path, name, "an object", value);
    }

    /// <summary>The "type" tag of a component object.</summary>
    public static string TypeOf(JsonElement component, string path)
    {
        if (component.ValueKind != JsonValueKind.Object)
            throw new TokenizerException($"{path}: expected a component object but found {Describe(component)}");
        return RequireString(component, "type", path);
    }

    public static TokenizerException Unsupported(string path, string kind, string type, string supported) =>
        new($"{path}: unsupported {kind} type '{type}' (supported: {supported})");

    private static TokenizerException WrongKind(string path, string name, string expected, JsonElement found) =>
        new($"{path}.{name}: expected {expected} but found {Describe(found)}");

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{value.GetString()}\"",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        _ => value.ValueKind.ToString().ToLowerInvariant(),
    };
}
