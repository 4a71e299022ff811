using System.CommandLine;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax serve</c>: the OpenAI-compatible HTTP server with continuous batching.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: a free one)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1/* and /tokenize" };
        var maxConcurrent = new Option<int>("--max-concurrent") { Description = "Sequences decoded together", DefaultValueFactory = _ => 32 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a sequence; more are refused with 429", DefaultValueFactory = _ => 64 };
        var contextLength = new Option<int?>("--context-length") { Description = "Most tokens (prompt + max_tokens) per request (default: the model's max_position_embeddings)" };
        var maxTokensLimit = new Option<int>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for", DefaultValueFactory = _ => 4096 };
        var maxStateMb = new Option<long>("--max-state-mb") { Description = "Memory all sequence states may reserve together, in MiB", DefaultValueFactory = _ => 8192 };
        var modelName = new Option<string?>("--model-name") { Description = "Model id clients name (default: the model folder's name)" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (chat/completions, completions, models, tokenize, health, metrics)")
            { model, host, port, apiKey, maxConcurrent, queue, contextLength, maxTokensLimit, maxStateMb, modelName, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            string dir = r.GetValue(model)!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"model folder '{dir}' does not exist");
            var options = new ServerOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                ApiKey = r.GetValue(apiKey),
                ModelId = r.GetValue(modelName) ?? ModelIdFor(dir),
                Serving = new ServingOptions
                {
                    MaxConcurrentSequences = r.GetValue(maxConcurrent),
                    MaxQueuedRequests = r.GetValue(queue),
                    ContextLength = r.GetValue(contextLength),
                    MaxNewTokens = r.GetValue(maxTokensLimit),
                    MaxStateBytes = checked(r.GetValue(maxStateMb) * 1024 * 1024),
                },
            };
            var backendInstance = BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads));
            await using var server = await OpenAiServer.StartAsync(options, () => TextModel.Load(dir, backendInstance), ct);
            Console.Error.WriteLine($"listening on {server.BaseAddress} (model '{options.ModelId}' loading; GET /health says when it is ready)");
            var shutdown = server.WaitForShutdownAsync(ct);
            if (await Task.WhenAny(server.Engine, shutdown) == server.Engine)
            {
                if (server.Engine.IsFaulted)
                {
                    // A server that can never answer is no use: say why and exit (the listener closes on disposal).
                    Console.Error.WriteLine($"error: the model failed to load: {server.Engine.Exception!.GetBaseException().Message}");
                    return 1;
                }
                Console.Error.WriteLine("model loaded");
                await shutdown;
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>The model id a server reports for a folder: its name.</summary>
    internal static string ModelIdFor(string dir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
}
