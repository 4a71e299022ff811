using System.Text.Json;

namespace MiniMaxSharp.Tokenizers.Tests;

public class BpeTrainerTests
{
    [Fact]
    public void LearnsTheMostFrequentPairsInOrder()
    {
        // Words: "ab" once, " ab" twice. (a,b) occurs 3 times, then (Ġ,ab) twice.
        var trainer = new BpeTrainer(258);
        trainer.AddText("ab ab ab");
        using var doc = JsonDocument.Parse(trainer.Train());
        var merges = doc.RootElement.GetProperty("model").GetProperty("merges").EnumerateArray()
            .Select(m => m[0].GetString() + " " + m[1].GetString()).ToArray();
        Assert.Equal(["a b", "\u0120 ab"], merges);
        var vocab = doc.RootElement.GetProperty("model").GetProperty("vocab");
        Assert.Equal(256, vocab.GetProperty("ab").GetInt32());
        Assert.Equal(257, vocab.GetProperty("\u0120ab").GetInt32());
        Assert.Equal(0, vocab.GetProperty("!").GetInt32()); // the alphabet in code point order
    }

    private const string Corpus =
        "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away into the forest.\n" +
        "Numbers like 1234 and 3.14159 appear, as do contractions: I'm, you're, they'll, it's.\n" +
        "Unicode too: naïve café, 日本語のテキスト, 中文文本, 한국어, and emoji 😀🚀👩‍👩‍👧.\n" +
        "<|endoftext|>Second document: the quick brown fox again, and again, and again.\n";

    [Fact]
    public void TrainedFileRoundTripsThroughTokenizerFromFile()
    {
        string dir = Path.Combine(Path.GetTempPath(), "mm-bpe-" + Guid.NewGuid().ToString("N"));
        try
        {
            var trainer = new BpeTrainer(320, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
            trainer.AddText(Corpus);
            string path = trainer.TrainToDirectory(dir);
            Assert.Equal(Path.Combine(dir, "tokenizer.json"), path);
            Assert.Equal(["tokenizer.json"], Directory.GetFiles(dir).Select(Path.GetFileName));

            var t = Tokenizer.FromFile(dir);
            Assert.Equal(320, t.VocabSize);
            Assert.Equal(0, t.TokenToId("<|endoftext|>"));
            Assert.Equal(2, t.TokenToId("<|im_end|>"));
            Assert.Equal(new HashSet<int> { 0, 1, 2 }, t.SpecialTokenIds.ToHashSet());

            foreach (string text in new[] { Corpus, "unseen words: zebra quartz 🦓 ünïcödé\r\n\ttabs", "<|im_start|>user\nhi<|im_end|>" })
            {
                var ids = t.Encode(text);
                Assert.Equal(text, t.Decode(ids));
            }
            // Learned merges make frequent words shorter than their bytes.
            Assert.True(t.Encode(" the quick brown fox").Count < " the quick brown fox".Length / 2);
            Assert.Equal([0], t.Encode("<|endoftext|>"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void VocabTooSmallForTheAlphabetIsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(258, ["<a>", "<b>", "<c>"]));
    }

    [Fact]
    public void InvalidUtf8TrainingFileIsReported()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, [0x61, 0x62, 0xFF, 0x63]);
            var e = Assert.Throws<TokenizerException>(() => new BpeTrainer(300).AddFile(file));
            Assert.Contains("byte offset 2", e.Message);
        }
        finally { File.Delete(file); }
    }
}
