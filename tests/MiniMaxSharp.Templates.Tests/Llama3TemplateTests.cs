namespace MiniMaxSharp.Templates.Tests;

/// <summary>
/// A Llama 3.1-style template: bos_token, strftime_now date with a date_string override, tools in the first
/// user turn or in the system turn, tool calls as JSON, tool results under the ipython role.
/// </summary>
public sealed class Llama3TemplateTests
{
    internal const string Template = """
        {{- bos_token }}
        {%- if custom_tools is defined %}
            {%- set tools = custom_tools %}
        {%- endif %}
        {%- if not tools_in_user_message is defined %}
            {%- set tools_in_user_message = true %}
        {%- endif %}
        {%- if not date_string is defined %}
            {%- set date_string = strftime_now("%d %b %Y") %}
        {%- endif %}
        {%- if not tools is defined %}
            {%- set tools = none %}
        {%- endif %}

        {#- The system turn carries the dates and, optionally, the tools. #}
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content'] | trim %}
            {%- set messages = messages[1:] %}
        {%- else %}
            {%- set system_message = "" %}
        {%- endif %}
        {{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
        {%- if tools is not none %}
            {{- "Environment: ipython\n" }}
        {%- endif %}
        {{- "Knowledge cutoff: December 2023\n" }}
        {{- "Current date: " + date_string + "\n\n" }}
        {%- if tools is not none and not tools_in_user_message %}
            {{- "You can call these functions. Reply with JSON {\"name\": function name, \"parameters\": arguments}.\n\n" }}
            {%- for t in tools %}
                {{- t | tojson(indent=4) }}
                {{- "\n\n" }}
            {%- endfor %}
        {%- endif %}
        {{- system_message }}
        {{- "<|eot_id|>" }}

        {#- Otherwise the tools go into the first user turn. #}
        {%- if tools_in_user_message and tools is not none %}
            {%- if messages | length != 0 %}
                {%- set first_user_message = messages[0]['content'] | trim %}
                {%- set messages = messages[1:] %}
            {%- else %}
                {{- raise_exception("Tools need a first user message to go into.") }}
            {%- endif %}
            {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
            {{- "Answer with a function call if one helps. Functions:\n\n" }}
            {%- for t in tools %}
                {{- t | tojson(indent=4) }}
                {{- "\n\n" }}
            {%- endfor %}
            {{- first_user_message + "<|eot_id|>"}}
        {%- endif %}

        {%- for message in messages %}
            {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
                {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
            {%- elif 'tool_calls' in message %}
                {%- if not message.tool_calls|length == 1 %}
                    {{- raise_exception("Only one tool call per message is supported.") }}
                {%- endif %}
                {%- set tool_call = message.tool_calls[0].function %}
                {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
                {{- '{"name": "' + tool_call.name + '", "parameters": ' + tool_call.arguments | tojson + "}" }}
                {{- "<|eot_id|>" }}
            {%- elif message.role == "tool" or message.role == "ipython" %}
                {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
                {%- if message.content is mapping or message.content is iterable %}
                    {{- message.content | tojson }}
                {%- else %}
                    {{- message.content }}
                {%- endif %}
                {{- "<|eot_id|>" }}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- endif %}
        """;

    private static ChatTemplate Create() => new(Template, bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>");

    [Fact]
    public void PlainConversationUsesTodaysDate()
    {
        var context = new ChatTemplateContext(Conversations.Simple()) { AddGenerationPrompt = true, Now = Conversations.FixedNow };
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nKnowledge cutoff: December 2023\nCurrent date: 05 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Create().Render(context));
    }

    [Fact]
    public void ToolsGoIntoTheFirstUserMessageAndToolResultsAreJsonQuoted()
    {
        var messages = new List<ChatMessage>
        {
            new("system", "Answer briefly.  "),
            new("user", "What's the weather in Paris?"),
            new("assistant", null) { ToolCalls = [new ToolCall("get_weather", System.Text.Json.Nodes.JsonNode.Parse("""{"city": "Paris"}"""))] },
            new("tool", "22°C, sunny"),
        };
        var context = new ChatTemplateContext(messages)
        {
            Tools = [Conversations.WeatherToolNode()],
            AddGenerationPrompt = true,
            Now = Conversations.FixedNow,
        };
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nKnowledge cutoff: December 2023\nCurrent date: 05 Jul 2024\n\nAnswer briefly.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnswer with a function call if one helps. Functions:\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the current weather for a city\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\",\n                    \"description\": \"City name, e.g. Paris\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"celsius\",\n                        \"fahrenheit\"\n                    ]\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\nWhat's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"22°C, sunny\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Create().Render(context));
    }

    [Fact]
    public void ToolsInSystemMessageWithExplicitDate()
    {
        var messages = new List<ChatMessage> { new("system", "Answer briefly.  "), new("user", "What's the weather in Paris?") };
        var context = new ChatTemplateContext(messages)
        {
            Tools = [Conversations.WeatherToolNode()],
            AddGenerationPrompt = true,
            Variables = new Dictionary<string, object?> { ["tools_in_user_message"] = false, ["date_string"] = "26 Jul 2024" },
        };
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nKnowledge cutoff: December 2023\nCurrent date: 26 Jul 2024\n\nYou can call these functions. Reply with JSON {\"name\": function name, \"parameters\": arguments}.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the current weather for a city\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\",\n                    \"description\": \"City name, e.g. Paris\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"celsius\",\n                        \"fahrenheit\"\n                    ]\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\nAnswer briefly.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Create().Render(context));
    }

    [Fact]
    public void RejectsParallelToolCalls()
    {
        var context = new ChatTemplateContext(Conversations.ParallelToolCalls()) { Tools = [Conversations.WeatherToolNode()], Now = Conversations.FixedNow };
        var e = Assert.Throws<TemplateException>(() => Create().Render(context));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("Only one tool call per message is supported.", e.Message);
    }
}
