using System.Text.Json.Nodes;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests;

/// <summary>
/// A complete text model folder in a temporary directory: random weights of a small hybrid config over the
/// fixture's byte-level BPE tokenizer (3000 tokens; &lt;|im_end|&gt; = 2 is the end of sequence), and a ChatML chat template.
/// </summary>
internal sealed class TestTextModelDirectory : IDisposable
{
    public const string ChatMl =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    public TestTextModelDirectory(int seed = 5)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "minimax-textmodel-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        var config = TestModels.SmallConfig(vocab: 3000, hidden: 32, layers: 4) with { EosTokenIds = [2], MaxPositionEmbeddings = 4096 };
        File.WriteAllText(System.IO.Path.Combine(Path, "config.json"), config.ToHuggingFaceJson());
        var weights = RandomWeights.Create(config, seed, std: 0.25f);
        SafeTensorsWriter.Write(System.IO.Path.Combine(Path, "model.safetensors"),
            weights.Select(kv => SafeTensorToWrite.FromFloat32(kv.Key, kv.Value.Shape, kv.Value.ToFloat32(), kv.Value.DType)));
        File.Copy(TestPaths.Fixture("tokenizer-gpt2", "tokenizer.json"), System.IO.Path.Combine(Path, "tokenizer.json"));
        var tokenizerConfig = new JsonObject { ["chat_template"] = ChatMl, ["eos_token"] = "<|im_end|>", ["bos_token"] = null };
        File.WriteAllText(System.IO.Path.Combine(Path, "tokenizer_config.json"), tokenizerConfig.ToJsonString());
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // a still-mapped file on some systems; the temp folder is cleaned by the OS
        }
    }
}
