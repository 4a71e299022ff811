using System.Text.Json;

namespace MiniMaxSharp.Serving;

/// <summary>Typed reads of optional JSON request fields; a field of the wrong type is an <see cref="InvalidRequestException"/> naming it.
/// JSON null counts as absent (as OpenAI's API treats it).</summary>
internal static class RequestJson
{
    public static bool TryGet(JsonElement obj, string name, out JsonElement value)
    {
        if (obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null) return true;
        value = default;
        return false;
    }

    public static string? String(JsonElement obj, string name) =>
        !TryGet(obj, name, out var v) ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw WrongType(name, "a string", v);

    public static bool? Bool(JsonElement obj, string name) =>
        !TryGet(obj, name, out var v) ? null
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : throw WrongType(name, "a boolean", v);

    public static double? Number(JsonElement obj, string name)
    {
        if (!TryGet(obj, name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d)) throw WrongType(name, "a number", v);
        return d;
    }

    public static long? Integer(JsonElement obj, string name)
    {
        if (!TryGet(obj, name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number) throw WrongType(name, "an integer", v);
        if (v.TryGetInt64(out long l)) return l;
        // 3.0 is an integer too; 3.5 or 1e30 are not.
        if (v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        throw new InvalidRequestException($"'{name}' must be an integer, got {v.GetRawText()}", name);
    }

    public static InvalidRequestException WrongType(string name, string expected, JsonElement got) =>
        new($"'{name}' must be {expected}, got {Describe(got)}", name);

    private static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => v.ValueKind.ToString().ToLowerInvariant(),
    };
}
