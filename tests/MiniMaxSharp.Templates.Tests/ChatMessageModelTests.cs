using System.Text.Json;
using System.Text.Json.Nodes;

namespace MiniMaxSharp.Templates.Tests;

/// <summary>How messages, tool calls, tools and extra variables look from inside a template.</summary>
public sealed class ChatMessageModelTests
{
    private static string Render(string template, ChatTemplateContext context) => new ChatTemplate(template).Render(context);

    [Fact]
    public void MessageIsADictWithOnlyTheKeysThatAreSet()
    {
        var context = new ChatTemplateContext([new ChatMessage("tool", "42") { Name = "calc", ToolCallId = "call_9" }, new ChatMessage("assistant", null)]);
        Assert.Equal(
            "{'role': 'tool', 'content': '42', 'name': 'calc', 'tool_call_id': 'call_9'}|{'role': 'assistant'}|False|42",
            Render("{{ messages[0] }}|{{ messages[1] }}|{{ messages[1].content is defined }}|{{ messages[0]['content'] }}", context));
    }

    [Fact]
    public void ToolCallsUseTheOpenAiShape()
    {
        var call = new ToolCall("search", JsonNode.Parse("""{"q": "x", "n": 2, "exact": true, "score": 0.5}"""), Id: "c1");
        var context = new ChatTemplateContext([new ChatMessage("assistant", null) { ToolCalls = [call] }]);
        Assert.Equal(
            """{"id": "c1", "type": "function", "function": {"name": "search", "arguments": {"q": "x", "n": 2, "exact": true, "score": 0.5}}}""",
            Render("{{ messages[0].tool_calls[0] | tojson }}", context));
    }

    [Fact]
    public void StringArgumentsStayStrings()
    {
        var context = new ChatTemplateContext([new ChatMessage("assistant", null) { ToolCalls = [new ToolCall("f", "{\"a\": 1}")] }]);
        Assert.Equal("""string:"{\"a\": 1}" """.TrimEnd(), Render("{% set a = messages[0].tool_calls[0].function.arguments %}{{ 'string' if a is string }}:{{ a | tojson }}", context));
    }

    [Fact]
    public void ToolsAcceptJsonElementJsonNodeAndDictionaries()
    {
        var context = new ChatTemplateContext([new ChatMessage("user", "x")])
        {
            Tools =
            [
                JsonDocument.Parse("""{"name": "a", "n": 1.0}""").RootElement,
                JsonNode.Parse("""{"name": "b", "n": 1}""")!,
                new Dictionary<string, object?> { ["name"] = "c", ["n"] = 1.5f },
            ],
        };
        Assert.Equal("a:1.0 b:1 c:1.5 ", Render("{% for t in tools %}{{ t.name }}:{{ t.n }} {% endfor %}", context));
    }

    [Fact]
    public void NoToolsRendersAsNoneAndIsDefined()
    {
        var context = new ChatTemplateContext([new ChatMessage("user", "x")]);
        Assert.Equal("True|True|None", Render("{{ tools is defined }}|{{ tools is none }}|{{ tools }}", context));
    }

    [Fact]
    public void ExtraVariablesAndGenerationFlagAreVisible()
    {
        var context = new ChatTemplateContext([new ChatMessage("user", "x")])
        {
            AddGenerationPrompt = true,
            Variables = new Dictionary<string, object?> { ["enable_thinking"] = false, ["budget"] = 128L, ["tags"] = new[] { "a", "b" } },
        };
        Assert.Equal("True|False|128|a+b|False", Render(
            "{{ add_generation_prompt }}|{{ enable_thinking }}|{{ budget }}|{{ tags | join('+') }}|{{ bos_token is defined }}", context));
    }

    [Fact]
    public void UnsupportedVariableTypeIsNamed()
    {
        var context = new ChatTemplateContext([new ChatMessage("user", "x")])
        {
            Variables = new Dictionary<string, object?> { ["when"] = new DateTime(2024, 1, 1) },
        };
        var e = Assert.Throws<TemplateException>(() => Render("{{ when }}", context));
        Assert.Equal("when: values of type DateTime cannot be passed to a template", e.Message);
    }
}
