using System.CommandLine;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Config;
using MiniMaxSharp.Inference;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>Options and plumbing shared by the commands.</summary>
internal static class CommonOptions
{
    public static Option<string> Model(bool required = true) => new("--model")
    {
        Description = "Model folder: config.json and safetensors (single file, or shards with model.safetensors.index.json)",
        Required = required,
    };

    /// <summary>--model for commands that fall back to the built-in default model (models/default).</summary>
    public static Option<string> ModelOrDefault() => new("--model")
    {
        Description = "Model folder (default: the built-in model, models/default)",
        DefaultValueFactory = _ => DefaultModel.Locate(),
    };

    public static Option<int> Threads() => new("--threads")
    {
        Description = "CPU threads (default: all cores)",
        DefaultValueFactory = _ => 0,
    };

    public static Option<string> Backend() => new("--backend")
    {
        Description = "Compute backend: cpu or cuda",
        DefaultValueFactory = _ => "cpu",
    };

    /// <summary>--precision of the training commands; <paramref name="defaultText"/> says what leaving it out means.</summary>
    public static Option<string?> Precision(string defaultText) => new("--precision")
    {
        Description = "Matrix products of training: f32 (full float32, the exact reference) or bf16 (bf16 tensor cores with float32 "
            + $"accumulation; master weights, gradients and AdamW moments stay float32; cuda only). Default: {defaultText}",
    };

    /// <summary>The value of --precision: f32, bf16, or null when not given.</summary>
    public static TrainingPrecision? ParsePrecision(string? value) => value?.ToLowerInvariant() switch
    {
        null => null,
        "f32" or "fp32" or "float32" => TrainingPrecision.F32,
        "bf16" or "bfloat16" => TrainingPrecision.BF16,
        _ => throw new ArgumentException($"--precision must be f32 or bf16, got '{value}'"),
    };

    /// <summary>
    /// Sets the training precision on the backend: the requested one, else <paramref name="defaultOnMixedBackend"/> where
    /// the backend has a bf16 product mode (cuda) and f32 elsewhere. bf16 on a backend without one is an error.
    /// </summary>
    public static TrainingPrecision ApplyPrecision(TrainingPrecision? requested, IComputeBackend backend, TrainingPrecision defaultOnMixedBackend)
    {
        var mixed = backend as IMixedPrecisionTraining;
        var precision = requested ?? (mixed is null ? TrainingPrecision.F32 : defaultOnMixedBackend);
        if (precision == TrainingPrecision.BF16 && mixed is null)
            throw new ArgumentException($"--precision bf16 needs --backend cuda: the {backend.Name} backend trains in float32 only");
        if (mixed is not null) mixed.ProductPrecision = precision;
        return precision;
    }

    /// <summary>Runs a command body, turning the engine's input errors into one clear line and exit code 1.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static bool IsUserError(Exception e) => e is ModelConfigException or CheckpointException or WeightLoadException
        or ContextLimitException or ArgumentException or IOException or UnauthorizedAccessException
        or System.Text.Json.JsonException or FormatException or InvalidDataException or OutOfMemoryException
        or NotSupportedException or CudaUnavailableException or Tokenizers.TokenizerException or Templates.TemplateException;
}

/// <summary>Creates backends by name; every backend plugs in here.</summary>
internal static class BackendFactory
{
    public static IComputeBackend Create(string name, int threads) => name.ToLowerInvariant() switch
    {
        "cpu" => new CpuBackend(threads),
        "cuda" => new CudaBackend(),
        _ => throw new ArgumentException($"unknown backend '{name}' (available: cpu, cuda)"),
    };
}

/// <summary>The built-in default model shipped in the repository (models/default; recipe in its RECIPE.md).</summary>
internal static class DefaultModel
{
    public const string RelativePath = "models/default";

    /// <summary>Finds models/default above the program's folder or the current folder; "" when absent
    /// (the loader then reports the missing folder).</summary>
    public static string Locate()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, RelativePath);
                if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
            }
        return RelativePath;
    }
}
