using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Serving;

/// <summary>How the OpenAI-compatible server listens and what it allows.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests, the benchmark).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, /v1/* and /tokenize need "Authorization: Bearer KEY".</summary>
    public string? ApiKey { get; init; }
    public required string ModelId { get; init; }
    public long MaxRequestBodyBytes { get; init; } = 10 * 1024 * 1024;
    /// <summary>max_tokens when a request does not say (capped by what the context leaves).</summary>
    public int DefaultMaxTokens { get; init; } = 256;
    public ServingOptions Serving { get; init; } = new();
    /// <summary>Minimum level written to the console (the CLI shows warnings; tests and the benchmark nothing).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
}

/// <summary>
/// An OpenAI-compatible HTTP server (Kestrel): /v1/chat/completions, /v1/completions (JSON or SSE), /v1/models,
/// /tokenize, /health and /metrics. It listens at once and loads the model in the background (/health answers 503
/// until it is ready).
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerOptions _options;
    private readonly Task<ServingEngine> _loading;
    private readonly OpenAiEndpoints _endpoints;

    private OpenAiServer(WebApplication app, ServerOptions options, OpenAiEndpoints endpoints, Task<ServingEngine> loading, Uri address)
    {
        _app = app;
        _options = options;
        _endpoints = endpoints;
        _loading = loading;
        BaseAddress = address;
    }

    /// <summary>Where it listens, e.g. http://127.0.0.1:8080/.</summary>
    public Uri BaseAddress { get; }
    public ServingMetrics Metrics => _endpoints.Metrics;
    /// <summary>Completes when the model is loaded (faults with the load's exception).</summary>
    public Task<ServingEngine> Engine => _loading;

    /// <summary>Starts listening, then loads the model with <paramref name="loadModel"/> on a background thread.</summary>
    public static async Task<OpenAiServer> StartAsync(ServerOptions options, Func<TextModel> loadModel, CancellationToken cancellationToken = default)
    {
        options.Serving.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(options.LogLevel);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            if (options.Host is "localhost") k.ListenLocalhost(options.Port);
            else k.Listen(IPAddress.TryParse(options.Host, out var ip) ? ip : throw new ArgumentException($"--host must be an IP address or localhost, got '{options.Host}'"), options.Port);
        });
        var app = builder.Build();
        var metrics = new ServingMetrics();
        var endpoints = new OpenAiEndpoints(options, metrics, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("minimax.serve"));
        endpoints.Map(app);
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var loading = Task.Run(() =>
        {
            var textModel = loadModel();
            try
            {
                var engine = new ServingEngine(textModel, options.Serving, options.ModelId, metrics);
                endpoints.Engine = engine;
                return engine;
            }
            catch
            {
                textModel.Dispose();
                throw;
            }
        }, CancellationToken.None);
        endpoints.Loading = loading;
        return new OpenAiServer(app, options, endpoints, loading, new Uri(address.EndsWith('/') ? address : address + "/"));
    }

    /// <summary>Waits until the host is asked to stop (Ctrl+C in the CLI).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            var engine = await _loading;
            engine.Dispose();
            engine.TextModel.Dispose();
        }
        catch (Exception)
        {
            // a load that failed has nothing to free; its error was reported by /health
        }
    }
}
