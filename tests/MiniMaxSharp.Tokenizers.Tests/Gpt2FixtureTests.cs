using System.Text.Json;

namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>The byte-level BPE fixture against ids and text produced by Hugging Face tokenizers.</summary>
public class Gpt2FixtureTests
{
    private static readonly Lazy<Tokenizer> Gpt2 = new(() => Tokenizer.FromFile(FixturePaths.Gpt2TokenizerDir));

    public record FixtureCase(string Text, int[] Ids, string Decoded);

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < LoadCases().Count; i++) data.Add(i);
        return data;
    }

    private static List<FixtureCase> LoadCases()
    {
        string json = File.ReadAllText(Path.Combine(FixturePaths.Gpt2TokenizerDir, "cases.json"));
        var cases = JsonSerializer.Deserialize<List<FixtureCase>>(json, new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
        Assert.Equal(22, cases.Count);
        return cases;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void EncodesToFixtureIds(int index)
    {
        var c = LoadCases()[index];
        Assert.Equal(c.Ids, Gpt2.Value.Encode(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void DecodesToFixtureText(int index)
    {
        var c = LoadCases()[index];
        Assert.Equal(c.Decoded, Gpt2.Value.Decode(c.Ids));
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void StreamingDecodeMatchesFullDecode(int index)
    {
        var c = LoadCases()[index];
        var stream = Gpt2.Value.CreateStreamingDecoder();
        var text = new System.Text.StringBuilder();
        foreach (int id in c.Ids)
        {
            string piece = stream.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            text.Append(piece);
        }
        text.Append(stream.Flush());
        Assert.Equal(c.Decoded, text.ToString());
    }

    [Fact]
    public void ConcurrentEncodingFromManyThreadsGivesTheSameIds()
    {
        // A fresh instance, so the threads race to fill the shared word cache.
        var t = Tokenizer.FromFile(FixturePaths.Gpt2TokenizerDir);
        var cases = LoadCases();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
        {
            for (int round = 0; round < 20; round++)
                foreach (var c in cases.Skip(worker % 3))
                    Assert.Equal(c.Ids, t.Encode(c.Text));
        });
    }

    [Fact]
    public void VocabularyFacts()
    {
        var t = Gpt2.Value;
        Assert.Equal(3000, t.VocabSize);
        Assert.Equal(new HashSet<int> { 0, 1, 2 }, t.SpecialTokenIds.ToHashSet());
        Assert.Equal(1, t.TokenToId("<|im_start|>"));
        Assert.Equal("<|im_end|>", t.IdToToken(2));
        Assert.Null(t.TokenToId("not a token"));
        Assert.Null(t.IdToToken(3000));
    }

    [Fact]
    public void SkipSpecialTokensDropsThem()
    {
        var t = Gpt2.Value;
        var ids = t.Encode("<|im_start|>user\nhi<|im_end|>");
        Assert.Equal("user\nhi", t.Decode(ids, skipSpecialTokens: true));
    }
}
