using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tests.Checkpoints;
using MiniMaxSharp.Text;
using MiniMaxSharp.Tokenizers;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

/// <summary>Checkpoints that resume exactly, text data, held-out evaluation, perplexity, the loss curve PNG.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainingRunTests
{
    private static ModelConfig Config(int vocab) => TestModels.SmallConfig(layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, experts: 4, topK: 2,
        inter: 16, vocab: vocab, blockSize: 4, partialRotary: 0.5, softmaxEvery: 2);

    private static List<int[]> Documents(int count) =>
        Enumerable.Range(0, count).Select(d => Enumerable.Range(0, 7 + d % 5).Select(i => (i * 3 + d) % 7 + 1).ToArray()).ToList();

    private static TrainingOptions Options => new()
    {
        Steps = 12, BatchRows = 2, Accumulation = 2, LearningRate = 0.02, WarmupSteps = 3, MinLearningRate = 0.002,
        Seed = 5, SaveEvery = 4, EvalEvery = 3, AuxLoss = true,
    };

    [Fact]
    public void ResumingAfterAStopGivesTheUninterruptedLossCurveAndWeights()
    {
        using var temp = new TempDirectory();
        var c = Config(vocab: 23);
        var (train, heldOut) = TextCorpus.Split(Documents(30), 5);
        var trainRows = TrainingData.Pack(train, 12);
        var heldOutRows = TrainingData.Pack(heldOut, 12);

        string straight = Path.Combine(temp.Path, "straight"), interrupted = Path.Combine(temp.Path, "interrupted");
        Dictionary<string, float[]> finalStraight;
        List<LossPoint> trainStraight, evalStraight;
        using (var m = TrainCommand.FromScratch(c, new CpuBackend(2), seed: 3, std: 0.1f))
        using (var run = new TrainingRun(m, trainRows, heldOutRows, Options, straight))
        {
            run.Run();
            (trainStraight, evalStraight, finalStraight) = (run.TrainLosses, run.EvalLosses, TrainingTestModels.Weights(m));
        }
        Assert.Equal(12, trainStraight.Count);
        Assert.Equal([3, 6, 9, 12], evalStraight.Select(p => p.Step));

        using (var m = TrainCommand.FromScratch(c, new CpuBackend(2), seed: 3, std: 0.1f))
        using (var run = new TrainingRun(m, trainRows, heldOutRows, Options, interrupted))
        {
            run.Run(stopAfter: 7);
            Assert.Equal(7, run.Step);
        }
        // A new process: other initial weights (the state must replace them), a new optimiser and data order.
        using (var m = TrainCommand.FromScratch(c, new CpuBackend(2), seed: 99, std: 0.1f))
        using (var run = new TrainingRun(m, trainRows, heldOutRows, Options, interrupted))
        {
            run.Resume();
            Assert.Equal(7, run.Step);
            run.Run();
            Assert.Equal(trainStraight, run.TrainLosses);   // every step's loss, exactly
            Assert.Equal(evalStraight, run.EvalLosses);
            var weights = TrainingTestModels.Weights(m);
            foreach (var (name, values) in finalStraight) Assert.Equal(values, weights[name]);
        }
        Assert.True(trainStraight[^1].Loss < 0.7 * trainStraight[0].Loss, $"loss {trainStraight[0].Loss} -> {trainStraight[^1].Loss}");
    }

    [Fact]
    public void ResumeRefusesOtherDataOrSeed()
    {
        using var temp = new TempDirectory();
        var c = Config(vocab: 23);
        var rows = TrainingData.Pack(Documents(10), 12);
        using var m = TrainCommand.FromScratch(c, new CpuBackend(2), seed: 3, std: 0.1f);
        using (var run = new TrainingRun(m, rows, [], Options with { Steps = 2, WarmupSteps = 0 }, temp.Path)) run.Run();
        using (var other = new TrainingRun(m, rows, [], Options with { Seed = 6 }, temp.Path))
            Assert.Contains("seed 5", Assert.Throws<ArgumentException>(other.Resume).Message);
        using (var other = new TrainingRun(m, rows.Take(3).ToList(), [], Options, temp.Path))
            Assert.Contains("training rows", Assert.Throws<ArgumentException>(other.Resume).Message);
        using (var other = new TrainingRun(m, rows, [], Options, Path.Combine(temp.Path, "none")))
            Assert.Throws<FileNotFoundException>(other.Resume);
    }

    [Fact]
    public void Bf16CheckpointSaysSoInItsConfig()
    {
        using var temp = new TempDirectory();
        var c = Config(vocab: 23);
        using var m = TrainCommand.FromScratch(c, new CpuBackend(2), seed: 3, std: 0.1f);
        using (var run = new TrainingRun(m, TrainingData.Pack(Documents(10), 12), [], Options with { Steps = 1, WarmupSteps = 0, SaveAs = Tensors.DType.BF16 }, temp.Path))
            run.Run();
        Assert.Contains("\"dtype\": \"bfloat16\"", File.ReadAllText(temp.File("config.json")));
        using var weights = MiniMaxSharp.Checkpoints.SafeTensorsFile.Open(temp.File("model.safetensors"));
        Assert.All(weights.Tensors.Values, t => Assert.Equal(Tensors.DType.BF16, t.ToEngineDType()));
        using var loaded = ModelLoader.Load(temp.Path, new CpuBackend(2));
    }

    [Fact]
    public void TextDocumentsEndWithTheEndOfTextTokenAndTheSplitIsDeterministic()
    {
        using var temp = new TempDirectory();
        var tokenizer = TrainTokenizer(temp, out string textFile);
        int eot = tokenizer.TokenToId("<|endoftext|>")!.Value;
        var paragraphs = TextCorpus.ReadDocuments(tokenizer, [textFile], paragraphs: true, eot);
        Assert.Equal(12, paragraphs.Count);
        Assert.All(paragraphs, d => Assert.Equal(eot, d[^1]));
        Assert.Equal("Paragraph 3 tells of the 3 lamps.\nAnd the lamps were lit.", tokenizer.Decode(paragraphs[2][..^1]));
        var whole = TextCorpus.ReadDocuments(tokenizer, [textFile], paragraphs: false, null);
        Assert.Single(whole);
        var (train, heldOut) = TextCorpus.Split(paragraphs, 4);
        Assert.Equal([paragraphs[3], paragraphs[7], paragraphs[11]], heldOut);
        Assert.Equal(9, train.Count);
        Assert.Throws<InvalidDataException>(() => TextCorpus.Split(paragraphs.Take(3).ToList(), 4));
    }

    [Fact]
    public void TrainCommandOnTextStopsResumesAndSavesAFolderTheEngineLoads()
    {
        using var temp = new TempDirectory();
        var tokenizer = TrainTokenizer(temp, out string textFile);
        string configFile = temp.File("config.json");
        File.WriteAllText(configFile, Config(vocab: tokenizer.VocabSize).ToHuggingFaceJson());
        string[] Args(string outDir, params string[] extra) => ["--config", configFile, "--data", textFile, "--tokenizer", temp.File("tok/tokenizer.json"),
            "--paragraphs", "--hold-out-every", "4", "--out", outDir, "--steps", "6", "--seq-len", "16", "--batch-rows", "2", "--lr", "0.01",
            "--warmup", "2", "--seed", "2", "--eval-every", "2", "--threads", "2", .. extra];
        string straight = temp.File("straight"), resumed = temp.File("resumed");
        var full = StepLines(Args(straight));
        var firstPart = StepLines(Args(resumed, "--stop-after", "4"));
        var secondPart = StepLines(Args(resumed, "--resume"));
        Assert.Equal(6, full.Length);
        Assert.Equal(full.Select(LossOf), firstPart.Concat(secondPart).Select(LossOf));
        Assert.Contains("eval_loss", full[1]);

        foreach (var name in new[] { "config.json", "model.safetensors", "tokenizer.json", TrainingRun.StateFileName, TrainingRun.CurveFileName })
            Assert.True(File.Exists(Path.Combine(resumed, name)), name);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "model.safetensors")), File.ReadAllBytes(Path.Combine(resumed, "model.safetensors")));
        using var text = TextModel.Load(resumed, new CpuBackend(2));
        Assert.Equal(tokenizer.VocabSize, text.Tokenizer.VocabSize);

        // The perplexity command scores the held-out paragraphs like the evaluation does (same documents, whole).
        var stdout = Capture(() => PerplexityCommand.Create().Parse(["--model", resumed, "--text-file", textFile, "--paragraphs", "--threads", "2"]).Invoke());
        Assert.Contains("perplexity", stdout);
    }

    [Fact]
    public void PerplexityMatchesTheTrainingForwardLoss()
    {
        var c = Config(vocab: 23);
        var weights = RandomWeights.Create(c, seed: 4, std: 0.1f);
        var docs = Documents(5);
        using var training = TrainingTestModels.Build(c, weights);
        double expected = training.ForwardBackward(docs.Select(d => TrainingExample.FromIds(d)).ToArray()).CrossEntropy;
        var backend = new CpuBackend(2);
        using var model = new MiniMaxModel(c, WeightLoader.Load(new DictionaryTensorSource(weights), c, backend), backend);
        var (nll, tokens) = Perplexity.Score(model, docs, window: 64);
        Assert.Equal(docs.Sum(d => d.Length - 1), tokens);
        Assert.Equal(expected, nll / tokens, 1e-5);
        // Windows of 4 score fewer tokens (each window's first token is context only).
        Assert.Equal(docs.Sum(d => d.Length - (d.Length + 3) / 4), Perplexity.Score(model, docs, window: 4).Tokens);
    }

    [Fact]
    public void LossCurveIsAValidPng()
    {
        using var temp = new TempDirectory();
        var train = Enumerable.Range(1, 50).Select(s => new LossPoint(s, 5.0 / s + 1)).ToList();
        var eval = new List<LossPoint> { new(10, 2.0), new(20, 1.6), new(50, 1.3) };
        string path = temp.File("curve.png");
        LossCurvePng.Write(path, train, eval);
        var png = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        var chunks = new List<(string Type, byte[] Data)>();
        for (int at = 8; at < png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            string type = System.Text.Encoding.ASCII.GetString(png, at + 4, 4);
            var data = png.AsSpan(at + 8, length).ToArray();
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at + 8 + length));
            Assert.Equal(ReferenceCrc(png.AsSpan(at + 4, 4 + length)), crc);
            chunks.Add((type, data));
            at += 12 + length;
        }
        Assert.Equal(["IHDR", "IDAT", "IEND"], chunks.Select(c => c.Type));
        var ihdr = chunks[0].Data;
        Assert.Equal(LossCurvePng.Width, BinaryPrimitives.ReadInt32BigEndian(ihdr));
        Assert.Equal(LossCurvePng.Height, BinaryPrimitives.ReadInt32BigEndian(ihdr.AsSpan(4)));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, ihdr[8..]);
        using var inflate = new ZLibStream(new MemoryStream(chunks[1].Data), CompressionMode.Decompress);
        var raw = new MemoryStream();
        inflate.CopyTo(raw);
        int stride = 1 + LossCurvePng.Width * 3;
        Assert.Equal(LossCurvePng.Height * stride, raw.Length);
        var pixels = LossCurvePng.Draw(train, eval);
        var bytes = raw.ToArray();
        for (int y = 0; y < LossCurvePng.Height; y++)
        {
            Assert.Equal(0, bytes[y * stride]);
            Assert.True(bytes.AsSpan(y * stride + 1, stride - 1).SequenceEqual(pixels.AsSpan(y * (stride - 1), stride - 1)));
        }
        // Both curves are drawn: blue and orange pixels exist.
        bool Has(byte r, byte g, byte b) => Enumerable.Range(0, pixels.Length / 3).Any(i => pixels[3 * i] == r && pixels[3 * i + 1] == g && pixels[3 * i + 2] == b);
        Assert.True(Has(31, 119, 180) && Has(255, 127, 14));
    }

    /// <summary>Bitwise CRC-32 (no table), independent of the writer's table-driven one.</summary>
    private static uint ReferenceCrc(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint)-(int)(c & 1));
        }
        return ~c;
    }

    private static Tokenizer TrainTokenizer(TempDirectory temp, out string textFile)
    {
        textFile = temp.File("corpus.txt");
        File.WriteAllText(textFile, string.Join("\n\n", Enumerable.Range(1, 12).Select(i =>
            $"Paragraph {i} tells of the {i} lamps.\nAnd the lamps were lit.")) + "\n");
        var trainer = new BpeTrainer(300, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
        trainer.AddFile(textFile);
        return Tokenizer.FromFile(trainer.TrainToDirectory(temp.File("tok")));
    }

    private static double LossOf(string line) => double.Parse(line.Split(' ')[3], CultureInfo.InvariantCulture);

    private static string[] StepLines(string[] args)
    {
        string output = Capture(() => TrainCommand.Create().Parse(args).Invoke());
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("step ", StringComparison.Ordinal)).ToArray();
    }

    private static string Capture(Func<int> run)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var (savedOut, savedErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        int rc;
        try
        {
            rc = run();
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedErr);
        }
        Assert.True(rc == 0, $"exit code {rc}: {stderr}");
        return stdout.ToString();
    }
}
