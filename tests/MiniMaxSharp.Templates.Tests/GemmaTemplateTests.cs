namespace MiniMaxSharp.Templates.Tests;

/// <summary>A Gemma-style template: "model" role, system text folded into the first user turn, trim filter.</summary>
public sealed class GemmaTemplateTests
{
    internal const string Template = """
        {{ bos_token }}
        {%- if messages[0]['role'] == 'system' -%}
            {%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}
            {%- set loop_messages = messages[1:] -%}
        {%- else -%}
            {%- set first_user_prefix = "" -%}
            {%- set loop_messages = messages -%}
        {%- endif -%}
        {%- for message in loop_messages -%}
            {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
                {{ raise_exception("Conversation roles must alternate user/model/user/model/...") }}
            {%- endif -%}
            {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
            {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
            {{- message['content'] | trim }}
            {{- '<end_of_turn>\n' }}
        {%- endfor -%}
        {%- if add_generation_prompt -%}
            {{ '<start_of_turn>model\n' }}
        {%- endif -%}
        """;

    /// <summary>The same logic written with indentation and no "-" markers: trim_blocks/lstrip_blocks only act on block tags.</summary>
    internal const string IndentedTemplate = """
        {{ bos_token }}
        {% if messages[0]['role'] == 'system' %}
            {% set first_user_prefix = messages[0]['content'] | trim + '\n\n' %}
            {% set loop_messages = messages[1:] %}
        {% else %}
            {% set first_user_prefix = "" %}
            {% set loop_messages = messages %}
        {% endif %}
        {% for message in loop_messages %}
            {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
                {{ raise_exception("Conversation roles must alternate user/model/user/model/...") }}
            {% endif %}
            {% set role = 'model' if message['role'] == 'assistant' else message['role'] %}
            {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
            {{ message['content'] | trim }}
            {{ '<end_of_turn>\n' }}
        {% endfor %}
        {% if add_generation_prompt %}
            {{ '<start_of_turn>model\n' }}
        {% endif %}
        """;

    [Fact]
    public void RendersTurnsWithModelRole()
    {
        var context = new ChatTemplateContext(Conversations.Simple()) { AddGenerationPrompt = true, BosToken = "<bos>" };
        Assert.Equal(
            "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello! How can I help?<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
            new ChatTemplate(Template).Render(context));
    }

    [Fact]
    public void FoldsTrimmedSystemTextIntoFirstUserTurn()
    {
        var messages = new List<ChatMessage> { new("system", "Be terse. "), new("user", "Hi there"), new("assistant", "Hello! How can I help?") };
        Assert.Equal(
            "<bos><start_of_turn>user\nBe terse.\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello! How can I help?<end_of_turn>\n",
            new ChatTemplate(Template).Render(new ChatTemplateContext(messages) { BosToken = "<bos>" }));
    }

    [Fact]
    public void IndentedPrintStatementsKeepTheirWhitespace()
    {
        var messages = Conversations.Simple().Take(2).ToList();
        var context = new ChatTemplateContext(messages) { AddGenerationPrompt = true, BosToken = "<bos>" };
        Assert.Equal(
            "<bos>\n    <start_of_turn>user\n\n    Hi there\n    <end_of_turn>\n\n    <start_of_turn>model\n\n    Hello! How can I help?\n    <end_of_turn>\n\n    <start_of_turn>model\n\n",
            new ChatTemplate(IndentedTemplate).Render(context));
    }

    [Fact]
    public void ConversationStartingWithTheModelIsRejected()
    {
        var context = new ChatTemplateContext([new ChatMessage("assistant", "a")]) { BosToken = "<bos>" };
        var e = Assert.Throws<TemplateException>(() => new ChatTemplate(Template).Render(context));
        Assert.Equal("Conversation roles must alternate user/model/user/model/...", e.Message);
    }
}
