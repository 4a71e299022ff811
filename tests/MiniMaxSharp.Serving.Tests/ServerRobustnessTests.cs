using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Serving.Tests;

[Collection(ServingCollection.Name)]
public class ServerRobustnessTests(ServingTestModel fixture)
{
    private static async Task AssertError(HttpResponseMessage response, HttpStatusCode status, string? param = null, string? code = null)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()));
        Assert.True(error.TryGetProperty("param", out var p));
        Assert.True(error.TryGetProperty("code", out var c));
        if (param is not null) Assert.Equal(param, p.GetString());
        if (code is not null) Assert.Equal(code, c.GetString());
        Assert.DoesNotContain("   at ", body);   // no stack trace
    }

    private static StringContent Raw(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task MalformedRequestsGetTheRightStatusAndErrorObject()
    {
        await using var h = await ServerHarness.StartAsync(fixture.Load, apiKey: "k");
        await h.Server.Engine;
        const string chat = "v1/chat/completions";
        string messages = "[{\"role\":\"user\",\"content\":\"hi\"}]";
        await AssertError(await h.Http.PostAsync(chat, Raw("{\"model\": \"test-model\", \"messages\": [")), HttpStatusCode.BadRequest);
        await AssertError(await h.Http.PostAsync(chat, Raw("[1, 2]")), HttpStatusCode.BadRequest);
        await AssertError(await h.Http.PostAsync(chat, Raw("{\"model\":\"test-model\",\"messages\":\"hi\"}")), HttpStatusCode.BadRequest, "messages");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"max_tokens\":\"10\"}}")), HttpStatusCode.BadRequest, "max_tokens");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"temperature\":\"hot\"}}")), HttpStatusCode.BadRequest, "temperature");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"stream\":1}}")), HttpStatusCode.BadRequest, "stream");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"max_tokens\":-5}}")), HttpStatusCode.BadRequest, "max_tokens");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"n\":2}}")), HttpStatusCode.BadRequest, "n");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"model\":\"gpt-4\",\"messages\":{messages}}}")), HttpStatusCode.NotFound, "model", "model_not_found");
        await AssertError(await h.Http.PostAsync(chat, Raw($"{{\"messages\":{messages}}}")), HttpStatusCode.BadRequest, "model");
        // A prompt longer than the 4096-token context.
        string longPrompt = "[" + string.Join(",", Enumerable.Repeat(100, 4100)) + "]";
        await AssertError(await h.Http.PostAsync("v1/completions", Raw($"{{\"model\":\"test-model\",\"prompt\":{longPrompt},\"max_tokens\":4}}")),
            HttpStatusCode.BadRequest, code: "context_length_exceeded");
        // Invalid UTF-8 inside a JSON string.
        var bytes = Encoding.UTF8.GetBytes("{\"model\":\"test-model\",\"messages\":[{\"role\":\"user\",\"content\":\"ab\"}]}").ToList();
        bytes.InsertRange(bytes.IndexOf((byte)'a'), new byte[] { 0xC3, 0x28, 0xFF });
        var invalid = new ByteArrayContent([.. bytes]);
        invalid.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        await AssertError(await h.Http.PostAsync(chat, invalid), HttpStatusCode.BadRequest);
        // A 100 MB body is refused by the 10 MB limit.
        var huge = new ByteArrayContent(new byte[100 * 1024 * 1024]);
        huge.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using (var request = new HttpRequestMessage(HttpMethod.Post, chat) { Content = huge })
        {
            request.Headers.ExpectContinue = true;
            await AssertError(await h.Http.SendAsync(request), HttpStatusCode.RequestEntityTooLarge);
        }
        // Wrong or missing key.
        using var anonymous = new HttpClient { BaseAddress = h.Server.BaseAddress };
        await AssertError(await anonymous.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages}}}")), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        await AssertError(await h.Http.GetAsync("v1/nothing-here"), HttpStatusCode.NotFound);
        // After all that it still serves.
        var ok = await h.Http.PostAsync(chat, Raw($"{{\"model\":\"test-model\",\"messages\":{messages},\"max_tokens\":2}}"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        await h.WaitIdleAsync();
    }

    [Fact]
    public async Task TwoHundredConcurrentStreamsCompleteOrAreRefusedAndNothingIsLeftBehind()
    {
        await using var h = await ServerHarness.StartAsync(fixture.Load, new ServingOptions { MaxConcurrentSequences = 16, MaxQueuedRequests = 48 });
        await h.Server.Engine;
        var expected = (await fixture.ReferenceAsync(fixture.ChatPrompt(3), 4)).Text;
        async Task<(HttpStatusCode Status, string Text)> One()
        {
            var response = await h.Http.PostAsync("v1/chat/completions", ServerHarness.Json(ServerHarness.ChatBody(3, 4, stream: true)));
            string body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK) return (response.StatusCode, body);
            Assert.EndsWith("data: [DONE]\n\n", body);
            var text = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e != "data: [DONE]")
                .Select(e => JsonDocument.Parse(e[6..]).RootElement.GetProperty("choices"))
                .Where(c => c.GetArrayLength() > 0)
                .Select(c => c[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : "");
            return (response.StatusCode, string.Concat(text));
        }
        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(One))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable, $"{r.Status}: {r.Text}"));
        Assert.All(results.Where(r => r.Status == HttpStatusCode.OK), r => Assert.Equal(expected, r.Text));
        Assert.Contains(results, r => r.Status == HttpStatusCode.OK);
        await h.WaitIdleAsync();
        Assert.Equal(200, await h.MetricAsync("minimax_requests_started_total") + await h.MetricAsync("minimax_requests_rejected_total"));
    }

    [Fact]
    public async Task FullQueueIsRefusedWith429AndServesAgainAfterwards()
    {
        await using var h = await ServerHarness.StartAsync(fixture.Load, new ServingOptions { MaxConcurrentSequences = 1, MaxQueuedRequests = 0 });
        await h.Server.Engine;
        var body = ServerHarness.ChatBody(0, 3000, stream: true);
        body["ignore_eos"] = true;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = ServerHarness.Json(body) })
        using (var running = await h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, running.StatusCode);
            await AssertError(await h.Http.PostAsync("v1/chat/completions", ServerHarness.Json(ServerHarness.ChatBody(1, 2))),
                HttpStatusCode.TooManyRequests, code: "queue_full");
            Assert.Equal(1, await h.MetricAsync("minimax_requests_rejected_total"));
        }
        await h.WaitIdleAsync();
        var after = await h.Http.PostAsync("v1/chat/completions", ServerHarness.Json(ServerHarness.ChatBody(1, 2)));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task HealthIsUnavailableWhileTheModelLoads()
    {
        var release = new ManualResetEventSlim();
        await using var h = await ServerHarness.StartAsync(() =>
        {
            release.Wait(TimeSpan.FromSeconds(30));
            return fixture.Load();
        });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await h.Http.GetAsync("health")).StatusCode);
        await AssertError(await h.Http.PostAsync("v1/chat/completions", ServerHarness.Json(ServerHarness.ChatBody(0, 2))), HttpStatusCode.ServiceUnavailable);
        release.Set();
        await h.Server.Engine;
        Assert.Equal(HttpStatusCode.OK, (await h.Http.GetAsync("health")).StatusCode);
    }
}
