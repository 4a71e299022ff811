using System.Text.Json.Nodes;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Model;

/// <summary>A checkpoint folder's tensors as host tensors: zero-copy views into the memory-mapped files.</summary>
public sealed unsafe class CheckpointTensorSource(CheckpointFiles files) : ITensorSource
{
    public IReadOnlyCollection<string> Names => files.Names;

    public HostTensor Get(string name)
    {
        var (file, info) = files.Get(name);
        return new HostTensor(file.GetPointer(info), info.ToEngineDType(), info.Shape, file);
    }
}

/// <summary>Loads a model folder (config.json, safetensors shards) onto a backend.</summary>
public static class ModelLoader
{
    public static MiniMaxModel Load(string modelDir, IComputeBackend backend)
    {
        if (!Directory.Exists(modelDir)) throw new DirectoryNotFoundException($"model folder not found: {modelDir}");
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        config = WithGenerationConfig(config, Path.Combine(modelDir, "generation_config.json"));
        var files = CheckpointFiles.Open(modelDir);
        try
        {
            var weights = WeightLoader.Load(new CheckpointTensorSource(files), config, backend, owned: [files]);
            return new MiniMaxModel(config, weights, backend);
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>generation_config.json may name more end-of-sequence ids than config.json.</summary>
    private static ModelConfig WithGenerationConfig(ModelConfig config, string path)
    {
        if (!File.Exists(path)) return config;
        try
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path));
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new ModelConfigException($"not valid JSON: {e.Message}");
            }
            if (root is not JsonObject o) throw new ModelConfigException("must be a JSON object");
            var merged = config.EosTokenIds.Union(ModelConfig.ReadIds(o, "eos_token_id")).ToArray();
            var result = config with { EosTokenIds = [.. merged] };
            result.Validate();
            return result;
        }
        catch (ModelConfigException e)
        {
            throw new ModelConfigException($"{path}: {e.Message}");
        }
    }
}
