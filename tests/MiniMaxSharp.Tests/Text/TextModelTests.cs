using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Model;
using MiniMaxSharp.Templates;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Tests.Text;

public sealed class TextModelTests : IDisposable
{
    private readonly TestTextModelDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task TextGenerationEqualsTokenGenerationDecoded()
    {
        using var tm = TextModel.Load(_dir.Path, new CpuBackend(2));
        var prompt = tm.Tokenizer.Encode("Hello world, this is a test");
        var options = new GenerationOptions { MaxNewTokens = 12, StopTokenIds = tm.StopTokenIds };
        var ids = new List<int>();
        await foreach (int id in TokenGenerator.GenerateAsync(tm.Model, prompt, options)) ids.Add(id);
        var pieces = new List<GeneratedToken>();
        await foreach (var t in tm.GenerateTextAsync(prompt, options)) pieces.Add(t);
        Assert.Equal(ids, pieces.Select(p => p.Id));
        Assert.Equal(tm.Tokenizer.Decode(ids, skipSpecialTokens: true), string.Concat(pieces.Select(p => p.Text)));
    }

    [Fact]
    public void ChatPromptIsTheRenderedTemplateEncodedWithoutExtraSpecialTokens()
    {
        using var tm = TextModel.Load(_dir.Path, new CpuBackend(2));
        Assert.Contains(2, tm.StopTokenIds);   // <|im_end|>
        var ids = tm.EncodeChat([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi!")]);
        Assert.Equal(1, ids[0]);                // <|im_start|> as a special token, not its characters
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
            tm.Tokenizer.Decode(ids));
    }

    [Fact]
    public void AModelWithoutATokenizerIsAClearError()
    {
        File.Delete(Path.Combine(_dir.Path, "tokenizer.json"));
        var e = Assert.ThrowsAny<Exception>(() => TextModel.Load(_dir.Path, new CpuBackend(1)));
        Assert.Contains("tokenizer.json", e.Message);
    }
}
