namespace MiniMaxSharp.Templates.Tests;

/// <summary>Reading templates and special tokens from tokenizer_config.json, chat_template.jinja/.json and override files.</summary>
public sealed class ChatTemplateLoadingTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "minimax-templates-" + Guid.NewGuid().ToString("N"));

    public ChatTemplateLoadingTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static readonly ChatTemplateContext OneTurn = new([new ChatMessage("user", "hi"), new ChatMessage("assistant", "yo")]);

    [Fact]
    public void ReadsStringTemplateAndStringTokens()
    {
        string path = Write("tokenizer_config.json", """
            {"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}"}
            """);
        var template = ChatTemplate.FromTokenizerConfig(path);
        Assert.NotNull(template);
        Assert.Equal("<s>", template.BosToken);
        Assert.Equal("</s>", template.EosToken);
        Assert.Equal("<s>user:hi</s>assistant:yo</s>", template.Render(OneTurn));
    }

    [Fact]
    public void ReadsAddedTokenDictsAndNamedTemplateList()
    {
        string path = Write("tokenizer_config.json", """
            {
              "bos_token": {"__type": "AddedToken", "content": "<|begin|>", "lstrip": false},
              "eos_token": {"content": "<|end|>", "special": true},
              "chat_template": [
                {"name": "tool_use", "template": "TOOLS {{ messages | length }}"},
                {"name": "default", "template": "{{ bos_token }}DEFAULT {{ messages | length }}{{ eos_token }}"}
              ]
            }
            """);
        var template = ChatTemplate.FromTokenizerConfig(path)!;
        Assert.Equal("<|begin|>DEFAULT 2<|end|>", template.Render(OneTurn));
        Assert.Equal("TOOLS 2", ChatTemplate.FromTokenizerConfig(path, "tool_use")!.Render(OneTurn));

        var e = Assert.Throws<TemplateException>(() => ChatTemplate.FromTokenizerConfig(path, "rag"));
        Assert.Contains("no chat template named 'rag' (available: tool_use, default)", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ListWithoutDefaultNamesTheAvailableTemplates()
    {
        string path = Write("tokenizer_config.json", """{"chat_template": [{"name": "a", "template": "x"}]}""");
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.FromTokenizerConfig(path));
        Assert.Contains("no chat template named 'default' (available: a)", e.Message);
    }

    [Fact]
    public void MissingTemplateGivesNull()
    {
        string path = Write("tokenizer_config.json", """{"bos_token": "<s>"}""");
        Assert.Null(ChatTemplate.FromTokenizerConfig(path));
    }

    [Theory]
    [InlineData("""{"chat_template": 5}""", "chat_template must be a string or a list of {name, template} objects, not Number")]
    [InlineData("""{"chat_template": [{"name": "default"}]}""", "each chat_template list entry needs string fields 'name' and 'template'")]
    [InlineData("""{"chat_template": "x", "bos_token": 3}""", "'bos_token' must be a string or an object with a string 'content'")]
    [InlineData("""{"chat_template": "{% if %}"}""", "Unexpected end of statement block")]
    [InlineData("""{"chat_template": """, "invalid JSON")]
    [InlineData("""[1, 2]""", "expected a JSON object at the top level")]
    public void BadConfigsAreReportedClearly(string json, string expected)
    {
        string path = Write("tokenizer_config.json", json);
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.FromTokenizerConfig(path));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void LoaderPrefersChatTemplateJinjaAndKeepsConfigTokens()
    {
        Write("tokenizer_config.json", """{"bos_token": "<s>", "chat_template": "from config"}""");
        Write("chat_template.jinja", "{{ bos_token }}from jinja file\n");
        Assert.Equal("<s>from jinja file", ChatTemplateLoader.Load(_directory).Render(OneTurn));
    }

    [Fact]
    public void LoaderReadsChatTemplateJsonThenTokenizerConfig()
    {
        Write("tokenizer_config.json", """{"eos_token": "</s>", "chat_template": "from config{{ eos_token }}"}""");
        Assert.Equal("from config</s>", ChatTemplateLoader.Load(_directory).Render(OneTurn));
        Write("chat_template.json", """{"chat_template": "from json{{ eos_token }}"}""");
        Assert.Equal("from json</s>", ChatTemplateLoader.Load(_directory).Render(OneTurn));
    }

    [Fact]
    public void OverrideFileWins()
    {
        Write("tokenizer_config.json", """{"chat_template": "from config"}""");
        string jinja = Write("custom.jinja", "custom {{ messages[0].content }}");
        Assert.Equal("custom hi", ChatTemplateLoader.Load(_directory, jinja).Render(OneTurn));
        string json = Write("custom.json", """{"chat_template": "json override"}""");
        Assert.Equal("json override", ChatTemplateLoader.Load(_directory, json).Render(OneTurn));
    }

    [Fact]
    public void ModelWithoutTemplateAndNoOverrideIsAClearError()
    {
        Write("tokenizer_config.json", """{"bos_token": "<s>"}""");
        var e = Assert.Throws<TemplateException>(() => ChatTemplateLoader.Load(_directory));
        Assert.Contains($"The model in '{_directory}' has no chat template", e.Message);
        Assert.Contains("Pass a template file", e.Message);
    }

    [Fact]
    public void MissingOverrideFileIsNamed()
    {
        string missing = Path.Combine(_directory, "nope.jinja");
        var e = Assert.Throws<TemplateException>(() => ChatTemplateLoader.Load(_directory, missing));
        Assert.Equal($"Chat template file not found: {missing}", e.Message);
    }

    [Fact]
    public void TemplateSyntaxErrorNamesTheSource()
    {
        Write("chat_template.jinja", "ok\n{% for %}");
        var e = Assert.Throws<TemplateException>(() => ChatTemplateLoader.Load(_directory));
        Assert.Contains($"Chat template of '{_directory}' does not parse", e.Message);
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void MissingFilesAndDirectoriesAreNamed()
    {
        string config = Path.Combine(_directory, "tokenizer_config.json");
        Assert.Equal($"File not found: {config}", Assert.Throws<TemplateException>(() => ChatTemplate.FromTokenizerConfig(config)).Message);
        string model = Path.Combine(_directory, "no-such-model");
        Assert.Equal($"Model directory not found: {model}", Assert.Throws<TemplateException>(() => ChatTemplateLoader.Load(model)).Message);
    }
}
