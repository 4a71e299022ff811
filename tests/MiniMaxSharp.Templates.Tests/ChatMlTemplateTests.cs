namespace MiniMaxSharp.Templates.Tests;

/// <summary>A ChatML template in the style of Qwen 2.5: default system prompt, tools block, tool calls and grouped tool responses.</summary>
public sealed class ChatMlTemplateTests
{
    internal const string Template = """
        {%- set default_system = "You are a concise assistant." %}
        {%- if tools %}
            {{- '<|im_start|>system\n' }}
            {{- messages[0].content if messages[0].role == 'system' else default_system }}
            {{- '\n\n# Available tools\n\nCall a tool by replying with a JSON object inside <tool_call></tool_call> tags. Tool signatures:\n<tools>' }}
            {%- for tool in tools %}
                {{- '\n' ~ (tool | tojson) }}
            {%- endfor %}
            {{- '\n</tools><|im_end|>\n' }}
        {%- elif messages[0].role == 'system' %}
            {{- '<|im_start|>system\n' ~ messages[0].content ~ '<|im_end|>\n' }}
        {%- else %}
            {{- '<|im_start|>system\n' ~ default_system ~ '<|im_end|>\n' }}
        {%- endif %}
        {%- for message in messages %}
            {%- if message.role == 'system' and loop.first %}
                {#- rendered above, together with the tools #}
            {%- elif message.role in ['user', 'system'] or (message.role == 'assistant' and not message.tool_calls) %}
                {{- '<|im_start|>' ~ message.role ~ '\n' ~ message.content ~ '<|im_end|>\n' }}
            {%- elif message.role == 'assistant' %}
                {{- '<|im_start|>assistant' }}
                {%- if message.content %}
                    {{- '\n' ~ message.content }}
                {%- endif %}
                {%- for call in message.tool_calls %}
                    {%- set fn = call.function if call.function is defined else call %}
                    {{- '\n<tool_call>\n{"name": "' ~ fn.name ~ '", "arguments": ' ~ (fn.arguments | tojson) ~ '}\n</tool_call>' }}
                {%- endfor %}
                {{- '<|im_end|>\n' }}
            {%- elif message.role == 'tool' %}
                {%- if loop.first or loop.previtem.role != 'tool' %}
                    {{- '<|im_start|>user' }}
                {%- endif %}
                {{- '\n<tool_response>\n' ~ message.content ~ '\n</tool_response>' }}
                {%- if loop.last or loop.nextitem.role != 'tool' %}
                    {{- '<|im_end|>\n' }}
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|im_start|>assistant\n' }}
        {%- endif %}
        """;

    [Fact]
    public void AddsDefaultSystemPromptAndGenerationPrompt()
    {
        var context = new ChatTemplateContext(Conversations.Simple()) { AddGenerationPrompt = true };
        Assert.Equal(
            "<|im_start|>system\nYou are a concise assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            new ChatTemplate(Template).Render(context));
    }

    [Fact]
    public void UsesTheGivenSystemMessage()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n",
            new ChatTemplate(Template).Render(new ChatTemplateContext(Conversations.WithSystem())));
    }

    [Fact]
    public void RendersToolsToolCallsAndGroupedToolResponses()
    {
        var context = new ChatTemplateContext(Conversations.ParallelToolCalls()) { Tools = [Conversations.WeatherToolElement()] };
        Assert.Equal(
            "<|im_start|>system\nYou are a concise assistant.\n\n# Available tools\n\nCall a tool by replying with a JSON object inside <tool_call></tool_call> tags. Tool signatures:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name, e.g. Paris\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"city\"]}}}\n</tools><|im_end|>\n<|im_start|>user\nWhat's the weather in Paris and Zürich?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", \"unit\": \"celsius\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n22°C, sunny\n</tool_response>\n<tool_response>\n18°C, cloudy\n</tool_response><|im_end|>\n<|im_start|>assistant\nParis: 22°C and sunny; Zürich: 18°C and cloudy.<|im_end|>\n",
            new ChatTemplate(Template).Render(context));
    }

    [Fact]
    public void EmptyToolListIsTheSameAsNoTools()
    {
        var withEmptyTools = new ChatTemplateContext(Conversations.WithSystem()) { Tools = [] };
        var withoutTools = new ChatTemplateContext(Conversations.WithSystem());
        var template = new ChatTemplate(Template);
        Assert.Equal(template.Render(withoutTools), template.Render(withEmptyTools));
    }
}
