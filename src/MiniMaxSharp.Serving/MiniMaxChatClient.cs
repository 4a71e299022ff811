using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using MiniMaxSharp.Generation;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AiFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using TemplateMessage = MiniMaxSharp.Templates.ChatMessage;

namespace MiniMaxSharp.Serving;

/// <summary>
/// <see cref="IChatClient"/> over a <see cref="ServingEngine"/>: the conversation is rendered with the model's chat
/// template and runs in the shared batch scheduler, so it is safe to use from many threads at once.
/// Without ChatOptions it decodes greedily; <see cref="DefaultMaxOutputTokens"/> applies when MaxOutputTokens is unset.
/// </summary>
public sealed class MiniMaxChatClient(ServingEngine engine) : IChatClient
{
    public const int DefaultMaxOutputTokens = 256;

    private readonly ChatClientMetadata _metadata = new("minimax-sharp", null, engine.ModelId);

    public ServingEngine Engine => engine;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var (prompt, request) = Prepare(messages, options);
        using var stream = engine.Start(prompt, request, cancellationToken);
        var text = new StringBuilder();
        TextChunk? last = null;
        await foreach (var chunk in stream.ReadAllAsync(cancellationToken))
        {
            text.Append(chunk.Text);
            last = chunk;
        }
        return new ChatResponse(new AiChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = engine.ModelId,
            ResponseId = NewId(),
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = MapFinish(last?.Finish),
            Usage = Usage(prompt.Count, last?.CompletionTokens ?? 0),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (prompt, request) = Prepare(messages, options);
        using var stream = engine.Start(prompt, request, cancellationToken);
        string id = NewId();
        await foreach (var chunk in stream.ReadAllAsync(cancellationToken))
        {
            var update = new ChatResponseUpdate(ChatRole.Assistant, chunk.Text)
            {
                ModelId = engine.ModelId,
                ResponseId = id,
                MessageId = id,
                CreatedAt = DateTimeOffset.UtcNow,
                FinishReason = MapFinish(chunk.Finish),
            };
            if (chunk.Finish is not null) update.Contents.Add(new UsageContent(Usage(prompt.Count, chunk.CompletionTokens)));
            yield return update;
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        object[] services = [this, engine, engine.Scheduler, engine.TextModel, engine.TextModel.Model, engine.TextModel.Tokenizer, engine.Metrics];
        return services.FirstOrDefault(serviceType.IsInstanceOfType);
    }

    /// <summary>The engine belongs to whoever created it; the client holds nothing of its own.</summary>
    public void Dispose() { }

    private (IReadOnlyList<int> Prompt, TextRequest Request) Prepare(IEnumerable<AiChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = messages.Select(m => new TemplateMessage(m.Role.Value, m.Text)).ToList();
        if (conversation.Count == 0) throw new InvalidRequestException("the conversation has no messages", "messages");
        if (options?.ModelId is string model && model != engine.ModelId)
            throw new InvalidRequestException($"this client serves model '{engine.ModelId}', not '{model}'", "model", "model_not_found");
        var request = ToRequest(options);
        return (engine.EncodeChat(conversation), request);
    }

    internal static TextRequest ToRequest(ChatOptions? options)
    {
        if (options?.Seed is > int.MaxValue or < int.MinValue)
            throw new InvalidRequestException($"seed {options.Seed} does not fit in 32 bits", "seed");
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? 0f,
            TopP = options?.TopP ?? 1f,
            TopK = options?.TopK ?? 0,
            FrequencyPenalty = options?.FrequencyPenalty ?? 0f,
            PresencePenalty = options?.PresencePenalty ?? 0f,
            Seed = options?.Seed is long s ? (int)s : null,
        };
        return new TextRequest
        {
            MaxTokens = options?.MaxOutputTokens ?? DefaultMaxOutputTokens,
            Sampling = sampling,
            StopSequences = options?.StopSequences?.ToArray() ?? [],
        };
    }

    private static AiFinishReason? MapFinish(FinishReason? reason) => reason switch
    {
        FinishReason.Stop => AiFinishReason.Stop,
        FinishReason.Length => AiFinishReason.Length,
        _ => null,
    };

    private static UsageDetails Usage(int prompt, int completion) =>
        new() { InputTokenCount = prompt, OutputTokenCount = completion, TotalTokenCount = prompt + completion };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");
}
