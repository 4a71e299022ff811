namespace MiniMaxSharp.Templates.Tests;

/// <summary>
/// A MiniMax-style template with tools: macros, namespace, selectattr/map over content parts,
/// dict literals through tojson, reasoning shown only after the last user turn, generation blocks.
/// </summary>
public sealed class MiniMaxTemplateTests
{
    internal const string Template = """
        {#- MiniMax-style turns: <beginning_of_sentence>{role line}\n{text}<end_of_sentence>\n #}
        {%- set bos = '<beginning_of_sentence>' %}
        {%- set eos = '<end_of_sentence>' %}
        {%- macro text_of(content) -%}
            {%- if content is string -%}
                {{- content -}}
            {%- elif content is iterable -%}
                {{- content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\n') -}}
            {%- endif -%}
        {%- endmacro %}
        {%- macro render_tool(tool) -%}
            {%- set fn = tool.function if tool.function is defined else tool -%}
            {{- {'name': fn.name, 'description': fn.description | default(''), 'parameters': fn.parameters} | tojson -}}
        {%- endmacro %}
        {%- if messages[0].role == 'system' %}
            {%- set system_text = text_of(messages[0].content) %}
            {%- set conversation = messages[1:] %}
        {%- else %}
            {%- set system_text = 'You are MiniMax, a helpful assistant.' %}
            {%- set conversation = messages %}
        {%- endif %}
        {{- bos ~ 'system ai_setting=assistant\n' ~ system_text }}
        {%- if tools %}
            {{- '\n\n# Tools\nYou may call the functions below. Their signatures, one per line:\n<tools>\n' }}
            {%- for tool in tools %}
                {{- render_tool(tool) ~ '\n' }}
            {%- endfor %}
            {{- '</tools>\nTo call functions, answer with one JSON object per call inside <tool_calls></tool_calls>.' }}
        {%- endif %}
        {{- eos ~ '\n' }}
        {%- set ns = namespace(last_user=-1) %}
        {%- for message in conversation %}
            {%- if message.role == 'user' %}
                {%- set ns.last_user = loop.index0 %}
            {%- endif %}
        {%- endfor %}
        {%- for message in conversation %}
            {%- if message.role == 'user' %}
                {{- bos ~ 'user name=' ~ (message.name | default('user')) ~ '\n' ~ text_of(message.content) ~ eos ~ '\n' }}
            {%- elif message.role == 'assistant' %}
                {{- bos ~ 'ai name=assistant\n' }}
                {%- generation %}
                {%- if message.reasoning_content is defined and loop.index0 > ns.last_user %}
                    {{- '<think>\n' ~ message.reasoning_content | trim ~ '\n</think>\n' }}
                {%- endif %}
                {%- if message.content %}
                    {{- text_of(message.content) }}
                {%- endif %}
                {%- if message.tool_calls %}
                    {{- '\n' if message.content }}
                    {{- '<tool_calls>\n' }}
                    {%- for call in message.tool_calls %}
                        {%- set args = call.function.arguments %}
                        {{- {'name': call.function.name, 'arguments': (args if args is mapping else args | string)} | tojson }}
                        {{- '\n' }}
                    {%- endfor %}
                    {{- '</tool_calls>' }}
                {%- endif %}
                {{- eos ~ '\n' }}
                {%- endgeneration %}
            {%- elif message.role == 'tool' %}
                {%- if loop.first or loop.previtem.role != 'tool' %}
                    {{- bos ~ 'tool name=tools\n' }}
                {%- endif %}
                {{- 'tool result (' ~ (message.name | default('unknown')) ~ '): ' ~ text_of(message.content) ~ '\n' }}
                {%- if loop.last or loop.nextitem.role != 'tool' %}
                    {{- eos ~ '\n' }}
                {%- endif %}
            {%- else %}
                {{- raise_exception('Unsupported role: ' ~ message.role) }}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- bos ~ 'ai name=assistant\n' }}
        {%- endif %}
        """;

    [Fact]
    public void RendersToolsCallsResultsAndLatestReasoning()
    {
        var messages = new List<ChatMessage>
        {
            new("system", "You are a weather bot."),
            new("user", "Weather in Paris?") { Name = "alice" },
            new("assistant", "Let me check.")
            {
                ToolCalls = [new ToolCall("get_weather", System.Text.Json.Nodes.JsonNode.Parse("""{"city": "Paris"}"""), Id: "call_1")],
                Extra = new Dictionary<string, object?> { ["reasoning_content"] = "old thought" },
            },
            new("tool", "22°C, sunny") { Name = "get_weather" },
            new("assistant", "It is 22°C and sunny.") { Extra = new Dictionary<string, object?> { ["reasoning_content"] = "  The tool said 22°C.  " } },
            new("user", "Thanks!"),
            new("assistant", "You're welcome.") { Extra = new Dictionary<string, object?> { ["reasoning_content"] = "Be polite." } },
        };
        var timeTool = new Dictionary<string, object?>
        {
            ["name"] = "get_time",
            ["parameters"] = new Dictionary<string, object?> { ["type"] = "object", ["properties"] = new Dictionary<string, object?>() },
        };
        var context = new ChatTemplateContext(messages)
        {
            Tools = [Conversations.WeatherToolElement(), timeTool],
            AddGenerationPrompt = true,
        };
        Assert.Equal(
            "<beginning_of_sentence>system ai_setting=assistant\nYou are a weather bot.\n\n# Tools\nYou may call the functions below. Their signatures, one per line:\n<tools>\n{\"name\": \"get_weather\", \"description\": \"Get the current weather for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name, e.g. Paris\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"city\"]}}\n{\"name\": \"get_time\", \"description\": \"\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}\n</tools>\nTo call functions, answer with one JSON object per call inside <tool_calls></tool_calls>.<end_of_sentence>\n<beginning_of_sentence>user name=alice\nWeather in Paris?<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\nLet me check.\n<tool_calls>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_calls><end_of_sentence>\n<beginning_of_sentence>tool name=tools\ntool result (get_weather): 22°C, sunny\n<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\nIt is 22°C and sunny.<end_of_sentence>\n<beginning_of_sentence>user name=user\nThanks!<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\n<think>\nBe polite.\n</think>\nYou're welcome.<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\n",
            new ChatTemplate(Template).Render(context));
    }

    [Fact]
    public void PlainConversationGetsDefaultSystemPrompt()
    {
        Assert.Equal(
            "<beginning_of_sentence>system ai_setting=assistant\nYou are MiniMax, a helpful assistant.<end_of_sentence>\n<beginning_of_sentence>user name=user\nHi there<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\nHello! How can I help?<end_of_sentence>\n<beginning_of_sentence>user name=user\nWhat is 2+2?<end_of_sentence>\n",
            new ChatTemplate(Template).Render(new ChatTemplateContext(Conversations.Simple())));
    }

    [Fact]
    public void UnknownRoleIsRejected()
    {
        var e = Assert.Throws<TemplateException>(() =>
            new ChatTemplate(Template).Render(new ChatTemplateContext([new ChatMessage("critic", "a")])));
        Assert.Equal("Unsupported role: critic", e.Message);
    }
}
