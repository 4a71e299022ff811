using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Serving;
using MiniMaxSharp.Tests;
using MiniMaxSharp.Text;
using TemplateMessage = MiniMaxSharp.Templates.ChatMessage;

namespace MiniMaxSharp.Serving.Tests;

/// <summary>
/// One test model folder per test run, and the reference outputs: greedy generation through
/// <see cref="TextModel.GenerateTextAsync"/> (the single-sequence TokenGenerator path of <c>minimax generate</c>)
/// on its own model instance, never the one a scheduler drives.
/// </summary>
public sealed class ServingTestModel : IDisposable
{
    private readonly TestTextModelDirectory _folder = new(seed: 5);
    private readonly TextModel _reference;
    private readonly SemaphoreSlim _referenceLock = new(1);

    public ServingTestModel()
    {
        _reference = Load();
    }

    public string Path => _folder.Path;

    public TextModel Load() => TextModel.Load(_folder.Path, new CpuBackend(2));

    public static IReadOnlyList<TemplateMessage> Conversation(int i) =>
        [new("system", "You are terse."), new("user", $"Question number {i}: what is {i} plus {i * 3}?")];

    public IReadOnlyList<int> ChatPrompt(int i) => _reference.EncodeChat(Conversation(i));

    /// <summary>Greedy ids and text of the reference path for a prompt.</summary>
    public async Task<(int[] Ids, string Text)> ReferenceAsync(IReadOnlyList<int> prompt, int maxTokens)
    {
        await _referenceLock.WaitAsync();
        try
        {
            var ids = new List<int>();
            var text = new System.Text.StringBuilder();
            await foreach (var t in _reference.GenerateTextAsync(prompt, new GenerationOptions { MaxNewTokens = maxTokens, Sampling = SamplingOptions.Greedy }))
            {
                ids.Add(t.Id);
                text.Append(t.Text);
            }
            return ([.. ids], text.ToString());
        }
        finally
        {
            _referenceLock.Release();
        }
    }

    public void Dispose()
    {
        _reference.Dispose();
        _folder.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ServingCollection : ICollectionFixture<ServingTestModel>
{
    public const string Name = "serving";
}
