using System.Text.Json;
using MiniMaxSharp.Templates.Jinja;

namespace MiniMaxSharp.Templates;

/// <summary>A Hugging Face chat template: turns a conversation into the prompt text the model was trained on.</summary>
public sealed class ChatTemplate
{
    private readonly JinjaTemplate _template;

    /// <summary>Parses the template; a syntax error throws <see cref="TemplateException"/> with line and column.</summary>
    public ChatTemplate(string source, string? bosToken = null, string? eosToken = null)
    {
        _template = new JinjaTemplate(source);
        BosToken = bosToken;
        EosToken = eosToken;
    }

    public string Source => _template.Source;

    /// <summary>The BOS token given to the template as bos_token unless the context overrides it.</summary>
    public string? BosToken { get; }

    /// <summary>The EOS token given to the template as eos_token unless the context overrides it.</summary>
    public string? EosToken { get; }

    public string Render(ChatTemplateContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = context.Messages.Select(message => (object?)message.ToTemplateValue()).ToList(),
            ["tools"] = context.Tools,
            ["add_generation_prompt"] = context.AddGenerationPrompt,
        };
        if ((context.BosToken ?? BosToken) is { } bos)
            variables["bos_token"] = bos;
        if ((context.EosToken ?? EosToken) is { } eos)
            variables["eos_token"] = eos;
        if (context.Variables is not null)
        {
            foreach (var (name, value) in context.Variables)
                variables[name] = value;
        }
        return _template.Render(variables, context.Now is { } now ? () => now : null);
    }

    /// <summary>
    /// Reads the chat template and BOS/EOS tokens of a tokenizer_config.json. Returns null when the
    /// file has no chat_template. A list of named templates yields <paramref name="templateName"/>
    /// (default: "default").
    /// </summary>
    public static ChatTemplate? FromTokenizerConfig(string path, string? templateName = null)
    {
        using var document = ReadJson(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new TemplateException($"{path}: expected a JSON object at the top level");
        string? source = root.TryGetProperty("chat_template", out var template) ? SelectTemplate(template, path, templateName) : null;
        if (source is null)
            return null;
        return new ChatTemplate(source, SpecialToken(root, "bos_token", path), SpecialToken(root, "eos_token", path));
    }

    internal static JsonDocument ReadJson(string path)
    {
        if (!File.Exists(path))
            throw new TemplateException($"File not found: {path}");
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new TemplateException($"{path}: invalid JSON ({e.Message})", inner: e);
        }
    }

    /// <summary>chat_template is a string, or a list of {"name", "template"} objects.</summary>
    internal static string? SelectTemplate(JsonElement template, string path, string? templateName)
    {
        switch (template.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                if (templateName is not null && templateName != "default")
                    throw new TemplateException($"{path}: chat_template is a single template; there is no template named '{templateName}'");
                return template.GetString();
            case JsonValueKind.Array:
                var named = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var entry in template.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object
                        || !entry.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                        || !entry.TryGetProperty("template", out var text) || text.ValueKind != JsonValueKind.String)
                        throw new TemplateException($"{path}: each chat_template list entry needs string fields 'name' and 'template'");
                    named[name.GetString()!] = text.GetString()!;
                }
                string wanted = templateName ?? "default";
                return named.TryGetValue(wanted, out var chosen)
                    ? chosen
                    : throw new TemplateException($"{path}: no chat template named '{wanted}' (available: {string.Join(", ", named.Keys)})");
            default:
                throw new TemplateException($"{path}: chat_template must be a string or a list of {{name, template}} objects, not {template.ValueKind}");
        }
    }

    /// <summary>A special token given as a string or as an AddedToken dict {"content": ...}.</summary>
    internal static string? SpecialToken(JsonElement root, string field, string path)
    {
        if (!root.TryGetProperty(field, out var token))
            return null;
        return token.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => token.GetString(),
            JsonValueKind.Object when token.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                => content.GetString(),
            _ => throw new TemplateException($"{path}: '{field}' must be a string or an object with a string 'content'"),
        };
    }
}
