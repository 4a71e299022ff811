using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Checkpoints;

/// <summary>Reads the Hugging Face reference files and checks them against the model's config.json.</summary>
public class FixtureFileTests
{
    private static string TinyHybrid(string name) => TestPaths.Fixture("tiny-hybrid", name);

    private sealed record TinyConfig(int Vocab, int Hidden, int Heads, int HeadDim, int KvHeads, int Intermediate,
        int Experts, int BlockSize, string[] LayerTypes);

    private static TinyConfig ReadConfig()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TinyHybrid("config.json")));
        var c = doc.RootElement;
        return new TinyConfig(
            c.GetProperty("vocab_size").GetInt32(),
            c.GetProperty("hidden_size").GetInt32(),
            c.GetProperty("num_attention_heads").GetInt32(),
            c.GetProperty("head_dim").GetInt32(),
            c.GetProperty("num_key_value_heads").GetInt32(),
            c.GetProperty("intermediate_size").GetInt32(),
            c.GetProperty("num_local_experts").GetInt32(),
            c.GetProperty("block_size").GetInt32(),
            c.GetProperty("layer_types").EnumerateArray().Select(e => e.GetString()!).ToArray());
    }

    /// <summary>Trainable parameters and their shapes, derived from the config and the spec's tensor names.</summary>
    private static Dictionary<string, long[]> ExpectedParameters(TinyConfig c)
    {
        int attn = c.Heads * c.HeadDim;
        var expected = new Dictionary<string, long[]>
        {
            ["model.embed_tokens.weight"] = [c.Vocab, c.Hidden],
            ["model.norm.weight"] = [c.Hidden],
            ["lm_head.weight"] = [c.Vocab, c.Hidden],
        };
        for (int i = 0; i < c.LayerTypes.Length; i++)
        {
            string p = $"model.layers.{i}.";
            expected[p + "input_layernorm.weight"] = [c.Hidden];
            expected[p + "post_attention_layernorm.weight"] = [c.Hidden];
            expected[p + "block_sparse_moe.gate.weight"] = [c.Experts, c.Hidden];
            for (int e = 0; e < c.Experts; e++)
            {
                expected[p + $"block_sparse_moe.experts.{e}.w1.weight"] = [c.Intermediate, c.Hidden];
                expected[p + $"block_sparse_moe.experts.{e}.w2.weight"] = [c.Hidden, c.Intermediate];
                expected[p + $"block_sparse_moe.experts.{e}.w3.weight"] = [c.Intermediate, c.Hidden];
            }
            if (c.LayerTypes[i] == "linear_attention")
            {
                expected[p + "self_attn.qkv_proj.weight"] = [3 * attn, c.Hidden];
                expected[p + "self_attn.output_gate.weight"] = [attn, c.Hidden];
                expected[p + "self_attn.norm.weight"] = [attn];
                expected[p + "self_attn.out_proj.weight"] = [c.Hidden, attn];
            }
            else
            {
                Assert.Equal("full_attention", c.LayerTypes[i]);
                expected[p + "self_attn.q_proj.weight"] = [attn, c.Hidden];
                expected[p + "self_attn.k_proj.weight"] = [c.KvHeads * c.HeadDim, c.Hidden];
                expected[p + "self_attn.v_proj.weight"] = [c.KvHeads * c.HeadDim, c.Hidden];
                expected[p + "self_attn.o_proj.weight"] = [c.Hidden, attn];
            }
        }
        return expected;
    }

    /// <summary>The derived decay buffers Hugging Face stores for each lightning layer.</summary>
    private static Dictionary<string, long[]> ExpectedBuffers(TinyConfig c)
    {
        var expected = new Dictionary<string, long[]>();
        for (int i = 0; i < c.LayerTypes.Length; i++)
        {
            if (c.LayerTypes[i] != "linear_attention") continue;
            string p = $"model.layers.{i}.self_attn.";
            expected[p + "slope_rate"] = [c.Heads, 1, 1];
            expected[p + "query_decay"] = [c.Heads, c.BlockSize, 1];
            expected[p + "key_decay"] = [c.Heads, c.BlockSize, 1];
            expected[p + "diagonal_decay"] = [1, c.Heads, c.BlockSize, c.BlockSize];
        }
        return expected;
    }

    private static void AssertTensorsAre(Dictionary<string, long[]> expected, SafeTensorsFile file)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), file.Tensors.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
        {
            var info = file.Tensors[name];
            Assert.Equal(name, info.Name);
            Assert.True(shape.SequenceEqual(info.Shape), $"{name}: expected [{string.Join(", ", shape)}], file has [{string.Join(", ", info.Shape)}]");
            Assert.Equal(SafeTensorsDType.F32, info.DType);
            Assert.Equal(DType.F32, info.ToEngineDType());
            Assert.Equal(info.ElementCount * 4, info.ByteLength);
        }
    }

    [Fact]
    public void ModelFile_HoldsEveryParameterAndBufferWithConfigShapes()
    {
        var config = ReadConfig();
        using var file = SafeTensorsFile.Open(TinyHybrid("model.safetensors"));

        var expected = ExpectedParameters(config);
        foreach (var (name, shape) in ExpectedBuffers(config)) expected.Add(name, shape);
        AssertTensorsAre(expected, file);

        Assert.Equal(new long[] { 512, 64 }, file.Tensors["model.embed_tokens.weight"].Shape);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(Path.GetFullPath(TinyHybrid("model.safetensors")), file.Path);
    }

    [Fact]
    public void ModelFile_SlopeRateValuesMatchTheirFormula()
    {
        // slope_rate is derived, so its stored values can be checked without trusting the reader: head h of
        // lightning layer l has 2^(-8(h+1)/H) * (1 - l/(L-1+1e-5) + 1e-5), the factor as Hugging Face writes it.
        var config = ReadConfig();
        int layers = config.LayerTypes.Length;
        using var file = SafeTensorsFile.Open(TinyHybrid("model.safetensors"));
        int checkedLayers = 0;
        for (int l = 0; l < layers; l++)
        {
            if (config.LayerTypes[l] != "linear_attention") continue;
            var slopes = file.ReadAsFloat32($"model.layers.{l}.self_attn.slope_rate");
            Assert.Equal(config.Heads, slopes.Length);
            for (int h = 0; h < config.Heads; h++)
            {
                double expected = Math.Pow(2, -8.0 * (h + 1) / config.Heads) * (1 - l / (layers - 1 + 1e-5) + 1e-5);
                Assert.True(Math.Abs(slopes[h] - expected) <= 2e-7 * expected, // float32 storage rounding
                    $"layer {l} head {h}: read {slopes[h]}, formula gives {expected}");
            }
            checkedLayers++;
        }
        Assert.Equal(7, checkedLayers);
    }

    [Fact]
    public unsafe void ModelFile_BytesPointerAndFloatsAgree()
    {
        using var file = SafeTensorsFile.Open(TinyHybrid("model.safetensors"));
        // The last tensor of the file ends exactly at the end of the mapping.
        var last = file.Tensors.Values.MaxBy(t => t.DataOffset)!;
        Assert.Equal(file.FileLength, last.DataOffset + last.ByteLength);

        var floats = file.ReadAsFloat32(last.Name);
        var bytes = file.GetBytes(last.Name);
        var fromPointer = new ReadOnlySpan<float>(file.GetPointer(last), floats.Length);
        Assert.Equal(last.ByteLength, bytes.Length);
        Assert.True(fromPointer.SequenceEqual(floats));
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).SequenceEqual(floats));
        Assert.All(floats, v => Assert.True(float.IsFinite(v) && v != 0));
    }

    [Fact]
    public void GradientFile_HoldsOneGradientPerParameter()
    {
        var config = ReadConfig();
        using var grads = SafeTensorsFile.Open(TinyHybrid("seq100_grads.safetensors"));
        AssertTensorsAre(ExpectedParameters(config), grads);
        Assert.Empty(grads.Metadata);
        var embedGrad = grads.ReadAsFloat32("model.embed_tokens.weight");
        Assert.Equal(512 * 64, embedGrad.Length);
        Assert.All(embedGrad, v => Assert.True(float.IsFinite(v)));
        Assert.Contains(embedGrad, v => v != 0);
    }

    [Fact]
    public void LogitsNpy_HasDocumentedShapeAndMatchesDecodeLogits()
    {
        var logits = Npy.Read(TinyHybrid("seq100_logits.npy"));
        Assert.Equal(new[] { 2, 100, 512 }, logits.Shape);
        Assert.Equal(2 * 100 * 512, logits.Data.Length);

        // Decode row 0 comes from a cached prefill of the first 40 tokens, i.e. the same computation as
        // full-forward row 39 of sequence 0; the fixture has them equal to float32 rounding (|diff| <= 2.4e-7),
        // while neighbouring rows differ by O(1). This ties two independently written files together, so
        // both must be read at the right offsets. (Later decode rows differ from the full forward by up to
        // ~3e-2 in the fixture, so they are no test of the reader.)
        var decode = Npy.Read(TinyHybrid("seq100_decode_logits.npy"));
        Assert.Equal(new[] { 17, 512 }, decode.Shape);
        float MaxAbsDiff(int fullRow) =>
            Enumerable.Range(0, 512).Max(v => Math.Abs(logits.Data[fullRow * 512 + v] - decode.Data[v]));
        Assert.True(MaxAbsDiff(39) <= 1e-6f, $"decode row 0 vs full row 39: max |diff| {MaxAbsDiff(39)}");
        Assert.True(MaxAbsDiff(38) > 0.1f && MaxAbsDiff(40) > 0.1f);
    }

    [Fact]
    public void HiddenNpy_HasDocumentedShape()
    {
        var hidden = Npy.Read(TinyHybrid("seq100_hidden.npy"));
        Assert.Equal(new[] { 9, 2, 100, 64 }, hidden.Shape);
        Assert.Equal(9 * 2 * 100 * 64, hidden.Data.Length);
        Assert.All(hidden.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void NpyWriter_ReproducesNumPyFileByteForByte()
    {
        // NumPy wrote the fixture; the same array and shape must give identical bytes (header text, padding, data).
        var path = TinyHybrid("seq100_logits.npy");
        var logits = Npy.Read(path);
        using var dir = new TempDirectory();
        var copy = dir.File("logits.npy");
        Npy.Write(copy, logits.Data, logits.Shape);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(copy));
    }
}
