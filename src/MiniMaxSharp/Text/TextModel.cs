using System.Runtime.CompilerServices;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Model;
using MiniMaxSharp.Templates;
using MiniMaxSharp.Tokenizers;

namespace MiniMaxSharp.Text;

/// <summary>
/// A model with its tokenizer and (optional) chat template: text and chat messages in, text out.
/// The CLI's generate/chat commands, the server and the IChatClient all go through this one type.
/// </summary>
public sealed class TextModel : IDisposable
{
    public TextModel(MiniMaxModel model, Tokenizer tokenizer, ChatTemplate? chatTemplate)
    {
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {model.Config.VocabSize}");
        Model = model;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        var stops = new HashSet<int>(model.Config.EosTokenIds);
        if (chatTemplate?.EosToken is string eos && tokenizer.TokenToId(eos) is int eosId) stops.Add(eosId);
        StopTokenIds = stops;
    }

    public MiniMaxModel Model { get; }
    public Tokenizer Tokenizer { get; }
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>End-of-sequence ids: the config's and the chat template's eos token.</summary>
    public IReadOnlyCollection<int> StopTokenIds { get; }

    /// <summary>Loads a model folder holding a tokenizer.json (and a chat template, when it has one).</summary>
    public static TextModel Load(string modelDir, IComputeBackend backend, string? chatTemplateFile = null)
    {
        if (!Directory.Exists(modelDir)) throw new DirectoryNotFoundException($"model folder not found: {modelDir}");
        var tokenizer = Tokenizer.FromFile(modelDir);
        ChatTemplate? template = chatTemplateFile is not null || HasTemplate(modelDir)
            ? ChatTemplateLoader.Load(modelDir, chatTemplateFile)
            : null;
        var model = ModelLoader.Load(modelDir, backend);
        try
        {
            return new TextModel(model, tokenizer, template);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static bool HasTemplate(string dir) =>
        File.Exists(Path.Combine(dir, "chat_template.jinja")) || File.Exists(Path.Combine(dir, "chat_template.json"))
        || (File.Exists(Path.Combine(dir, "tokenizer_config.json")) && File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")).Contains("\"chat_template\""));

    /// <summary>The prompt ids of a conversation rendered with the model's chat template.</summary>
    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyList<object>? tools = null)
    {
        if (ChatTemplate is null)
            throw new InvalidOperationException("this model has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); pass a template file");
        string text = ChatTemplate.Render(new ChatTemplateContext(messages)
        {
            AddGenerationPrompt = addGenerationPrompt,
            Tools = tools,
            BosToken = ChatTemplate.BosToken,
            EosToken = ChatTemplate.EosToken,
        });
        // The template writes the special tokens itself (as transformers' apply_chat_template does).
        return Tokenizer.Encode(text, addSpecialTokens: false);
    }

    /// <summary>Streams each generated token with the text it completes (cut only at whole characters;
    /// empty while a character is incomplete; the last element carries any remainder).</summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateTextAsync(IReadOnlyList<int> prompt, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var decoder = Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        options = options with { StopTokenIds = options.StopTokenIds.Count > 0 ? options.StopTokenIds : StopTokenIds };
        GeneratedToken? pending = null;
        await foreach (int id in TokenGenerator.GenerateAsync(Model, prompt, options, cancellationToken))
        {
            if (pending is not null) yield return pending;
            pending = new GeneratedToken(id, decoder.Push(id));
        }
        if (pending is not null) yield return pending with { Text = pending.Text + decoder.Flush() };
    }

    public void Dispose() => Model.Dispose();
}

/// <summary>One generated token and the text it completed.</summary>
public sealed record GeneratedToken(int Id, string Text);
