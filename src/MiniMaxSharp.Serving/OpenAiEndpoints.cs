using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using MiniMaxSharp.Generation;
using TemplateMessage = MiniMaxSharp.Templates.ChatMessage;

namespace MiniMaxSharp.Serving;

/// <summary>An error answered with OpenAI's error object and an HTTP status.</summary>
internal sealed class ApiException(int status, string message, string type, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
}

/// <summary>The request handlers of <see cref="OpenAiServer"/>.</summary>
internal sealed class OpenAiEndpoints(ServerOptions options, ServingMetrics metrics, ILogger logger)
{
    private static readonly byte[] DoneEvent = "data: [DONE]\n\n"u8.ToArray();
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public ServingMetrics Metrics => metrics;
    public volatile ServingEngine? Engine;
    public Task? Loading;

    public void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            await next(ctx);
            metrics.HttpResponse(ctx.Response.StatusCode);
        });
        app.MapGet("/health", Health);
        app.MapGet("/metrics", ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return ctx.Response.WriteAsync(metrics.Render(Engine?.Scheduler));
        });
        app.MapGet("/v1/models", ctx => Guarded(ctx, false, () => Models(ctx)));
        app.MapPost("/v1/chat/completions", ctx => Guarded(ctx, true, () => Completion(ctx, chat: true)));
        app.MapPost("/v1/completions", ctx => Guarded(ctx, true, () => Completion(ctx, chat: false)));
        app.MapPost("/tokenize", ctx => Guarded(ctx, true, () => Tokenize(ctx)));
        app.MapFallback(ctx => Guarded(ctx, false, () => throw new ApiException(404,
            $"no route {ctx.Request.Method} {ctx.Request.Path}", "invalid_request_error", null, "unknown_url")));
    }

    private Task Health(HttpContext ctx)
    {
        if (Engine is not null) return WriteJson(ctx, 200, w => { w.WriteString("status", "ok"); w.WriteString("model", options.ModelId); });
        string? failure = Loading is { IsFaulted: true } t ? t.Exception!.GetBaseException().Message : null;
        return WriteJson(ctx, 503, w =>
        {
            w.WriteString("status", failure is null ? "loading" : "failed");
            if (failure is not null) w.WriteString("error", failure);
        });
    }

    /// <summary>Checks the key, runs the handler, and turns exceptions into OpenAI error objects.</summary>
    private async Task Guarded(HttpContext ctx, bool needsModel, Func<Task> handler)
    {
        try
        {
            if (options.ApiKey is not null && (ctx.Request.Path.StartsWithSegments("/v1") || ctx.Request.Path.StartsWithSegments("/tokenize")))
                CheckKey(ctx);
            if (needsModel && Engine is null)
                throw new ApiException(503, Loading is { IsFaulted: true } ? "the model failed to load" : "the model is still loading; retry shortly",
                    "server_error", null, "model_not_ready");
            await handler();
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            var error = e switch
            {
                ApiException a => a,
                InvalidRequestException { Code: "model_not_found" } m => new ApiException(404, m.Message, "invalid_request_error", m.Param, m.Code),
                InvalidRequestException i => new ApiException(400, i.Message, "invalid_request_error", i.Param, i.Code),
                ServerBusyException b => new ApiException(429, b.Message, "rate_limit_error", null, "queue_full"),
                BadHttpRequestException { StatusCode: 413 } => new ApiException(413,
                    $"the request body is larger than {options.MaxRequestBodyBytes} bytes", "invalid_request_error", null, "request_too_large"),
                BadHttpRequestException h => new ApiException(h.StatusCode, h.Message, "invalid_request_error"),
                OperationCanceledException when ctx.RequestAborted.IsCancellationRequested => null,
                _ => null,
            };
            if (error is null)
            {
                if (ctx.RequestAborted.IsCancellationRequested) return;   // the client left; nobody to answer
                logger.LogError(e, "request {Path} failed", ctx.Request.Path);
                error = new ApiException(500, "internal server error", "server_error");
            }
            await WriteError(ctx, error);
        }
        catch (Exception e) when (e is OperationCanceledException || ctx.RequestAborted.IsCancellationRequested)
        {
            // mid-stream and the client left: the stream's disposal already cancelled the request
        }
    }

    private void CheckKey(HttpContext ctx)
    {
        string header = ctx.Request.Headers.Authorization.ToString();
        string given = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(options.ApiKey!)))
            throw new ApiException(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "invalid_request_error", null, "invalid_api_key");
    }

    private Task Models(HttpContext ctx) => WriteJson(ctx, 200, w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", options.ModelId);
        w.WriteString("object", "model");
        w.WriteNumber("created", _created);
        w.WriteString("owned_by", "minimax-sharp");
        w.WriteEndObject();
        w.WriteEndArray();
    });

    private static async Task<JsonDocument> ReadJson(HttpContext ctx)
    {
        using var buffer = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(buffer, ctx.RequestAborted);
        var bytes = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        // System.Text.Json checks UTF-8 only in strings it decodes; check the whole body up front.
        if (!Utf8.IsValid(bytes.Span)) throw new InvalidRequestException("the request body is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InvalidRequestException($"the request body is not valid JSON: {e.Message}");
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new InvalidRequestException("the request body must be a JSON object");
        }
        return doc;
    }

    private ServingEngine RequireEngine() => Engine ?? throw new ApiException(503, "the model is still loading", "server_error", null, "model_not_ready");

    private async Task Tokenize(HttpContext ctx)
    {
        var engine = RequireEngine();
        using var doc = await ReadJson(ctx);
        var root = doc.RootElement;
        CheckModel(root, required: false);
        IReadOnlyList<int> ids;
        if (RequestJson.TryGet(root, "messages", out var messages)) ids = engine.EncodeChat(ParseMessages(messages));
        else
        {
            string prompt = RequestJson.String(root, "prompt") ?? throw new InvalidRequestException("give 'prompt' (a string) or 'messages'", "prompt");
            ids = engine.TextModel.Tokenizer.Encode(prompt, RequestJson.Bool(root, "add_special_tokens") ?? true);
        }
        await WriteJson(ctx, 200, w =>
        {
            w.WriteStartArray("tokens");
            foreach (int id in ids) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteNumber("count", ids.Count);
            w.WriteNumber("max_model_len", engine.Scheduler.ContextLength);
        });
    }

    private void CheckModel(JsonElement root, bool required)
    {
        string? model = RequestJson.String(root, "model");
        if (model is null)
        {
            if (required) throw new InvalidRequestException("'model' is required", "model");
            return;
        }
        if (model != options.ModelId)
            throw new InvalidRequestException($"the model '{model}' does not exist; this server serves '{options.ModelId}'", "model", "model_not_found");
    }

    private static List<TemplateMessage> ParseMessages(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array) throw RequestJson.WrongType("messages", "an array", messages);
        var list = new List<TemplateMessage>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw RequestJson.WrongType(at, "an object", m);
            string role = RequestJson.String(m, "role") ?? throw new InvalidRequestException($"'{at}.role' is required", $"{at}.role");
            string? content = null;
            if (RequestJson.TryGet(m, "content", out var c))
            {
                if (c.ValueKind == JsonValueKind.String) content = c.GetString();
                else if (c.ValueKind == JsonValueKind.Array)
                {
                    // Content parts: only text parts are understood by a text model.
                    var text = new StringBuilder();
                    int p = 0;
                    foreach (var part in c.EnumerateArray())
                    {
                        string partAt = $"{at}.content[{p++}]";
                        if (part.ValueKind != JsonValueKind.Object) throw RequestJson.WrongType(partAt, "an object", part);
                        string type = RequestJson.String(part, "type") ?? "text";
                        if (type != "text") throw new InvalidRequestException($"'{partAt}' is a '{type}' part; this model reads text only", partAt);
                        text.Append(RequestJson.String(part, "text"));
                    }
                    content = text.ToString();
                }
                else throw RequestJson.WrongType($"{at}.content", "a string or an array of content parts", c);
            }
            list.Add(new TemplateMessage(role, content));
        }
        if (list.Count == 0) throw new InvalidRequestException("'messages' is empty", "messages");
        return list;
    }

    /// <summary>The sampling and length fields shared by both completion endpoints.</summary>
    private TextRequest ParseRequest(JsonElement root, int promptTokens, int contextLength)
    {
        if (RequestJson.Integer(root, "n") is long n && n != 1) throw new InvalidRequestException($"only n = 1 is supported, got {n}", "n");
        string maxField = RequestJson.TryGet(root, "max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens";
        long? maxTokens = RequestJson.Integer(root, maxField);
        if (maxTokens is < 1) throw new InvalidRequestException($"'{maxField}' must be at least 1, got {maxTokens}", maxField);
        if (maxTokens is > int.MaxValue) throw new InvalidRequestException($"'{maxField}' is too large: {maxTokens}", maxField);
        int max = (int)(maxTokens ?? Math.Max(1, Math.Min(options.DefaultMaxTokens, contextLength - promptTokens)));
        double temperature = RequestJson.Number(root, "temperature") ?? 1.0;
        if (temperature is < 0 or > 2) throw new InvalidRequestException($"'temperature' must be in [0, 2], got {temperature}", "temperature");
        double topP = RequestJson.Number(root, "top_p") ?? 1.0;
        if (topP is <= 0 or > 1) throw new InvalidRequestException($"'top_p' must be in (0, 1], got {topP}", "top_p");
        long topK = RequestJson.Integer(root, "top_k") ?? 0;
        if (topK is < 0 or > int.MaxValue) throw new InvalidRequestException($"'top_k' must be >= 0, got {topK}", "top_k");
        double frequency = RequestJson.Number(root, "frequency_penalty") ?? 0, presence = RequestJson.Number(root, "presence_penalty") ?? 0;
        if (frequency is < -2 or > 2) throw new InvalidRequestException($"'frequency_penalty' must be in [-2, 2], got {frequency}", "frequency_penalty");
        if (presence is < -2 or > 2) throw new InvalidRequestException($"'presence_penalty' must be in [-2, 2], got {presence}", "presence_penalty");
        long? seed = RequestJson.Integer(root, "seed");
        // Seeds are folded into 32 bits (OpenAI accepts 64-bit seeds).
        int? seed32 = seed is long s ? (int)(s ^ (s >> 32)) : null;
        return new TextRequest
        {
            MaxTokens = max,
            StopSequences = ParseStop(root),
            IgnoreEos = RequestJson.Bool(root, "ignore_eos") ?? false,
            Sampling = new SamplingOptions
            {
                Temperature = (float)temperature,
                TopP = (float)topP,
                TopK = (int)topK,
                FrequencyPenalty = (float)frequency,
                PresencePenalty = (float)presence,
                Seed = seed32,
            },
        };
    }

    private static string[] ParseStop(JsonElement root)
    {
        if (!RequestJson.TryGet(root, "stop", out var stop)) return [];
        if (stop.ValueKind == JsonValueKind.String) return [stop.GetString()!];
        if (stop.ValueKind != JsonValueKind.Array) throw RequestJson.WrongType("stop", "a string or an array of strings", stop);
        var list = new List<string>();
        foreach (var s in stop.EnumerateArray())
            list.Add(s.ValueKind == JsonValueKind.String ? s.GetString()! : throw RequestJson.WrongType("stop[]", "a string", s));
        if (list.Count > 4) throw new InvalidRequestException($"'stop' may hold at most 4 sequences, got {list.Count}", "stop");
        return [.. list];
    }

    private async Task Completion(HttpContext ctx, bool chat)
    {
        var engine = RequireEngine();
        using var doc = await ReadJson(ctx);
        var root = doc.RootElement;
        CheckModel(root, required: true);
        bool stream = RequestJson.Bool(root, "stream") ?? false;
        bool includeUsage = false;
        if (RequestJson.TryGet(root, "stream_options", out var so))
        {
            if (so.ValueKind != JsonValueKind.Object) throw RequestJson.WrongType("stream_options", "an object", so);
            includeUsage = RequestJson.Bool(so, "include_usage") ?? false;
        }
        IReadOnlyList<int> prompt = chat ? engine.EncodeChat(ParseMessages(RequestJson.TryGet(root, "messages", out var m) ? m
            : throw new InvalidRequestException("'messages' is required", "messages"))) : ParsePrompt(engine, root);
        var request = ParseRequest(root, prompt.Count, engine.Scheduler.ContextLength);
        using var text = engine.Start(prompt, request, ctx.RequestAborted);
        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (!stream)
        {
            var content = new StringBuilder();
            TextChunk? last = null;
            await foreach (var chunk in text.ReadAllAsync(ctx.RequestAborted))
            {
                content.Append(chunk.Text);
                last = chunk;
            }
            await WriteJson(ctx, 200, w =>
            {
                Header(w, id, chat ? "chat.completion" : "text_completion", created);
                w.WriteStartArray("choices");
                w.WriteStartObject();
                w.WriteNumber("index", 0);
                if (chat)
                {
                    w.WriteStartObject("message");
                    w.WriteString("role", "assistant");
                    w.WriteString("content", content.ToString());
                    w.WriteEndObject();
                }
                else w.WriteString("text", content.ToString());
                w.WriteNull("logprobs");
                w.WriteString("finish_reason", FinishName(last?.Finish));
                w.WriteEndObject();
                w.WriteEndArray();
                Usage(w, prompt.Count, last?.CompletionTokens ?? 0);
            });
            return;
        }

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        var body = ctx.Response.Body;
        if (chat) await WriteEvent(body, id, created, chat, includeUsage, w => w.WriteString("role", "assistant"), "", null, ctx.RequestAborted);
        int completion = 0;
        try
        {
            await foreach (var chunk in text.ReadAllAsync(ctx.RequestAborted))
            {
                completion = chunk.CompletionTokens;
                if (chunk.Text.Length > 0 || chunk.Finish is not null)
                    await WriteEvent(body, id, created, chat, includeUsage, null, chunk.Text, chunk.Finish, ctx.RequestAborted);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException && !ctx.RequestAborted.IsCancellationRequested)
        {
            // Headers are gone: report the failure as an error event, as OpenAI's streams do.
            logger.LogError(e, "stream {Id} failed", id);
            await WriteSse(body, w => ErrorObject(w, new ApiException(500, "internal server error", "server_error")), ctx.RequestAborted);
            await body.WriteAsync(DoneEvent, ctx.RequestAborted);
            return;
        }
        if (includeUsage)
            await WriteSse(body, w =>
            {
                Header(w, id, chat ? "chat.completion.chunk" : "text_completion", created);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                Usage(w, prompt.Count, completion);
            }, ctx.RequestAborted);
        await body.WriteAsync(DoneEvent, ctx.RequestAborted);
        await body.FlushAsync(ctx.RequestAborted);
    }

    private static IReadOnlyList<int> ParsePrompt(ServingEngine engine, JsonElement root)
    {
        if (!RequestJson.TryGet(root, "prompt", out var p)) throw new InvalidRequestException("'prompt' is required", "prompt");
        if (p.ValueKind == JsonValueKind.String) return engine.TextModel.Tokenizer.Encode(p.GetString()!);
        if (p.ValueKind != JsonValueKind.Array) throw RequestJson.WrongType("prompt", "a string or an array of token ids", p);
        var items = p.EnumerateArray().ToList();
        // One prompt only (n = 1 and no batch of prompts): a one-element array of a string is that string.
        if (items.Count == 1 && items[0].ValueKind == JsonValueKind.String) return engine.TextModel.Tokenizer.Encode(items[0].GetString()!);
        var ids = new List<int>(items.Count);
        foreach (var item in items)
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id))
                throw new InvalidRequestException("'prompt' must be a string or one array of integer token ids (several prompts are not supported)", "prompt");
            ids.Add(id);
        }
        return ids;
    }

    private Task WriteEvent(Stream body, string id, long created, bool chat, bool includeUsage, Action<Utf8JsonWriter>? deltaExtra,
        string text, FinishReason? finish, CancellationToken ct) => WriteSse(body, w =>
    {
        Header(w, id, chat ? "chat.completion.chunk" : "text_completion", created);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("delta");
            deltaExtra?.Invoke(w);
            if (text.Length > 0 || deltaExtra is not null) w.WriteString("content", text);
            w.WriteEndObject();
        }
        else w.WriteString("text", text);
        w.WriteNull("logprobs");
        if (finish is null) w.WriteNull("finish_reason");
        else w.WriteString("finish_reason", FinishName(finish));
        w.WriteEndObject();
        w.WriteEndArray();
        if (includeUsage) w.WriteNull("usage");
    }, ct);

    private void Header(Utf8JsonWriter w, string id, string obj, long created)
    {
        w.WriteString("id", id);
        w.WriteString("object", obj);
        w.WriteNumber("created", created);
        w.WriteString("model", options.ModelId);
    }

    private static void Usage(Utf8JsonWriter w, int prompt, int completion)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }

    private static string FinishName(FinishReason? reason) => reason == FinishReason.Stop ? "stop" : "length";

    private static async Task WriteSse(Stream body, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        var buffer = new MemoryStream();
        buffer.Write("data: "u8);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }
        buffer.Write("\n\n"u8);
        await body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct);
        await body.FlushAsync(ct);
    }

    private static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength = buffer.Length;
        await ctx.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    private static void ErrorObject(Utf8JsonWriter w, ApiException e)
    {
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param is null) w.WriteNull("param"); else w.WriteString("param", e.Param);
        if (e.Code is null) w.WriteNull("code"); else w.WriteString("code", e.Code);
        w.WriteEndObject();
    }

    private static Task WriteError(HttpContext ctx, ApiException e)
    {
        if (e.Status == 413) ctx.Response.Headers.Connection = "close";   // the rest of the body will not be read
        return WriteJson(ctx, e.Status, w => ErrorObject(w, e));
    }
}
