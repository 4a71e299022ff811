using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MiniMaxSharp.Serving.Tests;

/// <summary>The <c>minimax</c> executable itself: <c>generate</c> and <c>serve</c> agree, as separate processes.</summary>
[Collection(ServingCollection.Name)]
public class CliTests(ServingTestModel fixture)
{
    private static Process Minimax(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "minimax.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }

    [Fact]
    public async Task GenerateCommandAndServeCommandGiveTheSameGreedyText()
    {
        const string prompt = "The old lighthouse";
        using var generate = Minimax("generate", "--model", fixture.Path, "--prompt", prompt, "--max-new-tokens", "10", "--threads", "2");
        string generated = await generate.StandardOutput.ReadToEndAsync();
        await generate.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, generate.ExitCode);
        Assert.StartsWith(prompt, generated);
        string continuation = generated[prompt.Length..^Environment.NewLine.Length];

        using var serve = Minimax("serve", "--model", fixture.Path, "--port", "0", "--threads", "2", "--model-name", "cli-model");
        try
        {
            string? line;
            Uri? address = null;
            while (address is null && (line = await serve.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30))) is not null)
                if (Regex.Match(line, "listening on (\\S+)") is { Success: true } m) address = new Uri(m.Groups[1].Value);
            Assert.NotNull(address);
            using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((await http.GetAsync("health")).StatusCode != HttpStatusCode.OK)
            {
                Assert.True(DateTime.UtcNow < deadline, "the server never became healthy");
                await Task.Delay(50);
            }
            var body = new Dictionary<string, object> { ["model"] = "cli-model", ["prompt"] = prompt, ["max_tokens"] = 10, ["temperature"] = 0 };
            var response = await http.PostAsync("v1/completions", ServerHarness.Json(body));
            var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(continuation, json.GetProperty("choices")[0].GetProperty("text").GetString());
        }
        finally
        {
            serve.Kill();
            await serve.WaitForExitAsync();
        }
    }
}
