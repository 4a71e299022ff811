namespace MiniMaxSharp.Templates;

/// <summary>
/// One chat message. Templates see it as a Python dict with the keys that are set:
/// role, content, name, tool_call_id, tool_calls and any <see cref="Extra"/> entries
/// (a null property is absent, as in the message dicts transformers passes).
/// </summary>
public sealed record ChatMessage(string Role, string? Content)
{
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    public string? Name { get; init; }

    public string? ToolCallId { get; init; }

    /// <summary>Further keys (e.g. "reasoning_content"); values as for template variables.</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    internal OrderedDictionary<string, object?> ToTemplateValue()
    {
        var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal) { ["role"] = Role };
        if (Content is not null)
            dict["content"] = Content;
        if (Name is not null)
            dict["name"] = Name;
        if (ToolCallId is not null)
            dict["tool_call_id"] = ToolCallId;
        if (ToolCalls is not null)
            dict["tool_calls"] = ToolCalls.Select(call => (object?)call.ToTemplateValue()).ToList();
        if (Extra is not null)
        {
            foreach (var (key, value) in Extra)
                dict[key] = value;
        }
        return dict;
    }
}

/// <summary>
/// A tool call made by the assistant, shown to templates in the OpenAI shape
/// {"id", "type": "function", "function": {"name", "arguments"}}.
/// </summary>
/// <param name="Arguments">A dict-like value (JSON object, dictionary) or a JSON string, as the template expects.</param>
public sealed record ToolCall(string Name, object? Arguments, string? Id = null)
{
    internal OrderedDictionary<string, object?> ToTemplateValue()
    {
        var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        if (Id is not null)
            dict["id"] = Id;
        dict["type"] = "function";
        dict["function"] = new OrderedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["name"] = Name,
            ["arguments"] = Arguments,
        };
        return dict;
    }
}
