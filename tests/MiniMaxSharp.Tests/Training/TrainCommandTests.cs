using System.Globalization;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Cli.Commands;
using MiniMaxSharp.Config;
using MiniMaxSharp.Tests.Checkpoints;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

public sealed class TrainingDataTests
{
    [Fact]
    public void PackingCutsDocumentsAtRowEndsWithoutPadding()
    {
        var rows = TrainingData.Pack([[1, 2, 3], [4, 5, 6, 7, 8], [9]], 4);
        Assert.Equal(3, rows.Count);
        Assert.Equal([1, 2, 3, 4], rows[0].InputIds);
        Assert.Equal([3, 1], rows[0].DocumentLengths!);
        Assert.Equal([5, 6, 7, 8], rows[1].InputIds);
        Assert.Equal([4], rows[1].DocumentLengths!);
        Assert.Equal([9], rows[2].InputIds);
        Assert.Equal([1], rows[2].DocumentLengths!);
        Assert.All(rows, r => Assert.Equal(r.InputIds, r.Labels));
    }

    [Fact]
    public void DocumentsFileErrorsNameTheLine()
    {
        using var temp = new TempDirectory();
        string path = temp.File("data.jsonl");
        File.WriteAllText(path, "[1, 2, 3]\n{\"input_ids\": [4, 5]}\n\n[1, -2]\n");
        var e = Assert.Throws<InvalidDataException>(() => TrainingData.ReadDocuments(path));
        Assert.Contains("line 4: token 1", e.Message);
        File.WriteAllText(path, "[1, 2, 3]\n{\"input_ids\": [4, 5]}\n");
        Assert.Equal(2, TrainingData.ReadDocuments(path).Count);
    }
}

/// <summary><c>minimax train</c> lowers the loss of a small model on its data and saves a model that loads.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainCommandTests
{
    [Fact]
    public void TrainingLowersTheLossAndSavesALoadableModel()
    {
        using var temp = new TempDirectory();
        var c = TestModels.SmallConfig(layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, experts: 4, topK: 2, inter: 16,
            vocab: 23, blockSize: 4, partialRotary: 0.5, softmaxEvery: 2);
        string source = Path.Combine(temp.Path, "source");
        Directory.CreateDirectory(source);
        File.WriteAllText(Path.Combine(source, "config.json"), c.ToHuggingFaceJson());
        var weights = MiniMaxSharp.Model.RandomWeights.Create(c, seed: 3, std: 0.1f);
        SafeTensorsWriter.Write(Path.Combine(source, CheckpointFiles.SingleFileName),
            weights.Select(kv => SafeTensorToWrite.FromFloat32(kv.Key, kv.Value.Shape, kv.Value.ToFloat32(), Tensors.DType.F32)));
        // Documents that repeat a short pattern: easy to learn.
        string data = temp.File("data.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 6).Select(d =>
            "[" + string.Join(", ", Enumerable.Range(0, 10 + d).Select(i => (i * 3 + d) % 7 + 1)) + "]"));
        string trained = Path.Combine(temp.Path, "trained");

        var stdout = new StringWriter();
        var saved = Console.Out;
        Console.SetOut(stdout);
        int rc;
        try
        {
            rc = TrainCommand.Create().Parse(["--model", source, "--data", data, "--output", trained, "--steps", "25", "--seq-len", "16",
                "--batch-rows", "2", "--accumulation", "2", "--lr", "0.02", "--warmup", "3", "--clip", "1", "--threads", "2"]).Invoke();
        }
        finally
        {
            Console.SetOut(saved);
        }
        Assert.Equal(0, rc);
        var losses = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => double.Parse(l.Split(' ')[3], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(25, losses.Length);

        var rows = TrainingData.Pack(TrainingData.ReadDocuments(data), 16);
        double Loss(string dir)
        {
            using var m = TrainingModel.Load(dir, new CpuBackend(2));
            return m.ForwardBackward(rows).CrossEntropy;
        }
        double before = Loss(source), after = Loss(trained);
        Assert.True(after < 0.5 * before, $"loss on the data: {before} before, {after} after training (step losses {string.Join(", ", losses.Select(l => l.ToString("F3", CultureInfo.InvariantCulture)))})");
        var reloaded = ModelConfig.Load(Path.Combine(trained, "config.json"));
        Assert.Equal(c.RotaryDim, reloaded.RotaryDim);
        Assert.Equal(c.LayerKinds.ToArray(), reloaded.LayerKinds.ToArray());
        Assert.Equal(c.BlockSize, reloaded.BlockSize);
    }
}
