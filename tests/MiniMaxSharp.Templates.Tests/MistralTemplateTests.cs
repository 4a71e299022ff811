namespace MiniMaxSharp.Templates.Tests;

/// <summary>A Mistral-style [INST] template that enforces alternating roles with raise_exception.</summary>
public sealed class MistralTemplateTests
{
    internal const string Template = """
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content'] %}
            {%- set loop_messages = messages[1:] %}
        {%- else %}
            {%- set loop_messages = messages %}
        {%- endif %}
        {{- bos_token }}
        {%- for message in loop_messages %}
            {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
                {{- raise_exception('After an optional system message, roles must alternate user/assistant/user/assistant...') }}
            {%- endif %}
            {%- if message['role'] == 'user' %}
                {%- if loop.first and system_message is defined %}
                    {{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
                {%- else %}
                    {{- '[INST] ' + message['content'] + ' [/INST]' }}
                {%- endif %}
            {%- elif message['role'] == 'assistant' %}
                {{- ' ' + message['content'] + eos_token }}
            {%- else %}
                {{- raise_exception('Only user and assistant roles are supported after the system message.') }}
            {%- endif %}
        {%- endfor %}
        """;

    private static ChatTemplate Create() => new(Template, bosToken: "<s>", eosToken: "</s>");

    [Fact]
    public void RendersAlternatingTurnsWithEosAfterEachAnswer()
    {
        var messages = Conversations.Simple().Append(new ChatMessage("assistant", "4")).ToList();
        Assert.Equal(
            "<s>[INST] Hi there [/INST] Hello! How can I help?</s>[INST] What is 2+2? [/INST] 4</s>",
            Create().Render(new ChatTemplateContext(messages)));
    }

    [Fact]
    public void FoldsTheSystemMessageIntoTheFirstInstruction()
    {
        Assert.Equal(
            "<s>[INST] You are a pirate.\n\nHello [/INST]",
            Create().Render(new ChatTemplateContext(Conversations.WithSystem())));
    }

    [Fact]
    public void NonAlternatingRolesRaiseTheTemplatesMessage()
    {
        var messages = new List<ChatMessage> { new("user", "a"), new("user", "b") };
        var e = Assert.Throws<TemplateException>(() => Create().Render(new ChatTemplateContext(messages)));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("After an optional system message, roles must alternate user/assistant/user/assistant...", e.Message);
        Assert.Equal(10, e.Line); // the raise_exception call
    }

    [Fact]
    public void ContextTokensOverrideTheTemplateDefaults()
    {
        var context = new ChatTemplateContext([new ChatMessage("user", "x"), new ChatMessage("assistant", "y")]) { BosToken = "[BOS]", EosToken = "[EOS]" };
        Assert.Equal("[BOS][INST] x [/INST] y[EOS]", Create().Render(context));
    }

    [Fact]
    public void MissingEosTokenIsAnUndefinedError()
    {
        var template = new ChatTemplate(Template);
        var context = new ChatTemplateContext([new ChatMessage("user", "x"), new ChatMessage("assistant", "y")]);
        var e = Assert.Throws<TemplateException>(() => template.Render(context));
        Assert.Contains("'eos_token' is undefined", e.Message);
    }
}
