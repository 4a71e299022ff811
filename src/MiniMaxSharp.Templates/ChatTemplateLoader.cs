using System.Text.Json;

namespace MiniMaxSharp.Templates;

/// <summary>Finds the chat template of a model directory, or uses an override file.</summary>
public static class ChatTemplateLoader
{
    /// <summary>
    /// Loads the chat template for <paramref name="modelDirectory"/>. An <paramref name="overrideFile"/>
    /// wins: a .json file is read like tokenizer_config.json (its chat_template field), any other
    /// file is the template text itself. Otherwise the template comes from chat_template.jinja,
    /// chat_template.json or tokenizer_config.json, in that order (newer transformers versions save
    /// it in the first two). BOS/EOS tokens always come from tokenizer_config.json when present.
    /// </summary>
    /// <exception cref="TemplateException">The model has no chat template and no override was given, or a file is invalid.</exception>
    public static ChatTemplate Load(string modelDirectory, string? overrideFile = null)
    {
        ArgumentNullException.ThrowIfNull(modelDirectory);
        if (!Directory.Exists(modelDirectory))
            throw new TemplateException($"Model directory not found: {modelDirectory}");
        string tokenizerConfig = Path.Combine(modelDirectory, "tokenizer_config.json");
        string? bos = null, eos = null, configTemplate = null;
        if (File.Exists(tokenizerConfig))
        {
            using var config = ChatTemplate.ReadJson(tokenizerConfig);
            var root = config.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new TemplateException($"{tokenizerConfig}: expected a JSON object at the top level");
            bos = ChatTemplate.SpecialToken(root, "bos_token", tokenizerConfig);
            eos = ChatTemplate.SpecialToken(root, "eos_token", tokenizerConfig);
            if (root.TryGetProperty("chat_template", out var template))
                configTemplate = ChatTemplate.SelectTemplate(template, tokenizerConfig, null);
        }

        string? source;
        if (overrideFile is not null)
        {
            if (!File.Exists(overrideFile))
                throw new TemplateException($"Chat template file not found: {overrideFile}");
            source = overrideFile.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? TemplateFromJsonFile(overrideFile)
                  ?? throw new TemplateException($"{overrideFile}: has no 'chat_template' field")
                : File.ReadAllText(overrideFile);
        }
        else
        {
            string jinjaFile = Path.Combine(modelDirectory, "chat_template.jinja");
            string jsonFile = Path.Combine(modelDirectory, "chat_template.json");
            source = File.Exists(jinjaFile) ? File.ReadAllText(jinjaFile)
                : File.Exists(jsonFile) ? TemplateFromJsonFile(jsonFile)
                : configTemplate;
            if (source is null)
                throw new TemplateException(
                    $"The model in '{modelDirectory}' has no chat template (looked for chat_template.jinja, chat_template.json " +
                    "and a 'chat_template' field in tokenizer_config.json). Pass a template file to use instead.");
        }
        try
        {
            return new ChatTemplate(source, bos, eos);
        }
        catch (TemplateException e)
        {
            throw new TemplateException($"Chat template of '{overrideFile ?? modelDirectory}' does not parse: {e.Message}", inner: e);
        }
    }

    private static string? TemplateFromJsonFile(string path)
    {
        using var document = ChatTemplate.ReadJson(path);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new TemplateException($"{path}: expected a JSON object at the top level");
        return document.RootElement.TryGetProperty("chat_template", out var template)
            ? ChatTemplate.SelectTemplate(template, path, null)
            : null;
    }
}
