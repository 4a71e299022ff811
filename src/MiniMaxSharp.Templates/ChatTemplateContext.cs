namespace MiniMaxSharp.Templates;

/// <summary>What a chat template is rendered with (transformers' apply_chat_template arguments).</summary>
public sealed record ChatTemplateContext(IReadOnlyList<ChatMessage> Messages)
{
    /// <summary>Tool definitions as JSON-schema dicts (dictionaries, JsonElement or JsonNode); null renders tools=None.</summary>
    public IReadOnlyList<object>? Tools { get; init; }

    public bool AddGenerationPrompt { get; init; }

    /// <summary>Overrides the template's BOS token (from tokenizer_config.json); null keeps it.</summary>
    public string? BosToken { get; init; }

    /// <summary>Overrides the template's EOS token (from tokenizer_config.json); null keeps it.</summary>
    public string? EosToken { get; init; }

    /// <summary>Further template variables (e.g. "enable_thinking", "date_string"); they override the standard ones.</summary>
    public IReadOnlyDictionary<string, object?>? Variables { get; init; }

    /// <summary>Clock for strftime_now; null uses the local time.</summary>
    public DateTime? Now { get; init; }
}
