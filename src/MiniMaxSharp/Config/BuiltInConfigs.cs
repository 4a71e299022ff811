namespace MiniMaxSharp.Config;

/// <summary>Named model shapes for benchmarks and random-weight runs (no checkpoint needed).</summary>
public static class BuiltInConfigs
{
    private static ModelConfig Hybrid(int hidden, int layers, int heads, int kvHeads, int headDim, int experts, int topK,
        int inter, int vocab, int blockSize = 256, int rotaryDim = 0, int maxPositions = 1 << 20) => new()
    {
        HiddenSize = hidden,
        NumLayers = layers,
        NumHeads = heads,
        HeadDim = headDim,
        NumKvHeads = kvHeads,
        VocabSize = vocab,
        NumExperts = experts,
        ExpertsPerToken = topK,
        IntermediateSize = inter,
        LayerKinds = [.. Enumerable.Range(0, layers).Select(l => l % 8 == 7 ? LayerKind.Softmax : LayerKind.Lightning)],
        SoftmaxResidual = new(MathF.Pow(2f * layers, 0.25f), 1f),
        LightningResidual = new(MathF.Pow(2f * layers, 0.25f), 1f),
        MlpResidual = new(MathF.Pow(2f * layers, 0.25f), 1f),
        RotaryDim = rotaryDim > 0 ? rotaryDim : headDim / 2,
        RopeTheta = 10_000_000,
        BlockSize = blockSize,
        MaxPositionEmbeddings = maxPositions,
    };

    /// <summary>Name → (description, config).</summary>
    public static IReadOnlyDictionary<string, (string Description, ModelConfig Config)> All { get; } =
        new Dictionary<string, (string, ModelConfig)>(StringComparer.OrdinalIgnoreCase)
        {
            ["tiny"] = ("hidden 64, 8 layers, 4 experts: seconds to run, for smoke tests",
                Hybrid(64, 8, 4, 2, 16, 4, 2, 96, 512, blockSize: 32)),
            ["cpu-1k"] = ("hidden 1024, 16 heads x 64, 8 layers (7:1), 8 experts top-2 of width 1024, vocab 32000: ~0.3B parameters, matrices 1024 wide",
                Hybrid(1024, 8, 16, 4, 64, 8, 2, 1024, 32000)),
            ["bench-1b"] = ("hidden 2048, 16 heads x 128, 2 KV heads, 8 layers (7:1), 8 experts top-2 of width 1536, vocab 32000 (the CUDA issue's shape)",
                Hybrid(2048, 8, 16, 2, 128, 8, 2, 1536, 32000)),
            ["minimax-text-01"] = ("the full MiniMax-Text-01 shape (456B parameters): for inspect and state-size planning",
                Hybrid(6144, 80, 64, 8, 128, 32, 2, 9216, 200064, maxPositions: 10_240_000)),
        };

    public static ModelConfig Get(string name) =>
        All.TryGetValue(name, out var entry) ? entry.Config
            : throw new ArgumentException($"unknown built-in config '{name}' (available: {string.Join(", ", All.Keys)})");
}
