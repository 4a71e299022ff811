using System.Text.Json;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests.Model;

/// <summary>The tiny-hybrid fixture (made with Hugging Face transformers) end to end on the CPU backend.</summary>
public sealed class TinyHybridFixtureTests : IDisposable
{
    private static string Dir => TestPaths.Fixture("tiny-hybrid");
    private readonly MiniMaxModel _model = ModelLoader.Load(Dir, new CpuBackend(2));
    private readonly int[][] _ids;

    public TinyHybridFixtureTests()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "seq100.json")));
        _ids = doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
    }

    public void Dispose() => _model.Dispose();

    [Fact]
    public void LogitsAndHiddenStatesMatchTransformers()
    {
        var expected = Npy.Read(Path.Combine(Dir, "seq100_logits.npy"));        // [2, 100, 512]
        var hidden = Npy.Read(Path.Combine(Dir, "seq100_hidden.npy"));          // [9, 2, 100, 64]
        int V = _model.Config.VocabSize, Hd = _model.Config.HiddenSize, T = 100;
        var states = _ids.Select(_ => _model.CreateSequence(T)).ToArray();
        var observed = new float[_model.Config.NumLayers + 1][];
        float[] logits = _model.Forward(states, _ids.Select(r => (ReadOnlyMemory<int>)r).ToArray(), LogitsSelection.All,
            (index, tensor, _) =>
            {
                observed[index] = new float[tensor.ElementCount];
                _model.Backend.Download(tensor, observed[index]);
            });
        double err = TestModels.RelativeError(logits, expected.Data);
        Assert.True(err <= 1e-4, $"logits: relative error {err:E3}");
        for (int i = 0; i <= _model.Config.NumLayers; i++)
        {
            double e = TestModels.RelativeError(observed[i], hidden.Data.AsSpan(i * 2 * T * Hd, 2 * T * Hd));
            Assert.True(e <= 1e-4, $"hidden state {i}: relative error {e:E3}");
        }
        foreach (var s in states) s.Dispose();
        Assert.Equal([2, 100, V], expected.Shape);
    }

    // seq100_decode_logits.npy row 0 (after a cached prefill of 40 tokens) is checked as it is. Its rows
    // 1..16 were made by transformers 5.17 with RoPE position 0 for every decode token (it infers the
    // cache position from layer 0, a lightning layer with no KV cache): they differ from the fixture's own
    // full forward by ~1e-2, and our engine reproduces them to 3e-7 only when decode positions are forced
    // to 0. The fixture README states what they should be, row i = row 39+i of the full forward, and that
    // is what the decode path is held to here (see docs/ARCHITECTURE.md, "Reference discrepancies").
    [Fact]
    public void DecodeStepsMatchTransformers()
    {
        var decode = Npy.Read(Path.Combine(Dir, "seq100_decode_logits.npy"));  // [17, 512]
        var full = Npy.Read(Path.Combine(Dir, "seq100_logits.npy"));            // [2, 100, 512]
        int V = _model.Config.VocabSize, steps = decode.Shape[0];
        using var seq = _model.CreateSequence(100);
        float[] afterPrefill = _model.Forward([seq], [_ids[0].AsMemory(0, 40)], LogitsSelection.LastPerSequence);
        double err0 = TestModels.RelativeError(afterPrefill, decode.Data.AsSpan(0, V));
        Assert.True(err0 <= 1e-4, $"logits after the cached prefill: relative error {err0:E3}");
        var rows = new List<float>(afterPrefill);
        for (int i = 1; i < steps; i++)
            rows.AddRange(_model.Forward([seq], [_ids[0].AsMemory(40 + i - 1, 1)], LogitsSelection.LastPerSequence));
        double err = TestModels.RelativeError(rows.ToArray(), full.Data.AsSpan(39 * V, steps * V));
        Assert.True(err <= 1e-4, $"decode logits against the full forward rows 39..{39 + steps - 1}: relative error {err:E3}");
    }

    [Fact]
    public async Task GreedyGenerationReproducesTransformers()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "seq100.json")));
        int promptLen = doc.RootElement.GetProperty("greedy_prompt_len").GetInt32();
        var greedy = doc.RootElement.GetProperty("greedy").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        for (int s = 0; s < greedy.Length; s++)
        {
            var prompt = _ids[s][..promptLen];
            var produced = new List<int>(prompt);
            var options = new GenerationOptions { MaxNewTokens = greedy[s].Length - promptLen, PrefillChunk = 16 };
            await foreach (int t in TokenGenerator.GenerateAsync(_model, prompt, options)) produced.Add(t);
            Assert.Equal(greedy[s], produced.ToArray());
        }
    }

    [Fact]
    public void ComputedDecaySlopesEqualTheFileBuffers()
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Dir, "model.safetensors"));
        for (int l = 0; l < _model.Config.NumLayers; l++)
        {
            string name = $"model.layers.{l}.self_attn.slope_rate";
            if (!file.Tensors.ContainsKey(name)) continue;
            float[] stored = file.ReadAsFloat32(name);
            float[] computed = LightningDecay.Slopes(_model.Config.NumHeads, l, _model.Config.NumLayers);
            for (int h = 0; h < computed.Length; h++)
                Assert.True(Math.Abs(stored[h] - computed[h]) <= 1e-6 * Math.Abs(stored[h]) + 1e-9, $"layer {l} head {h}: {stored[h]} vs {computed[h]}");
        }
    }
}
