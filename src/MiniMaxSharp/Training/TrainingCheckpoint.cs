using System.Text;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>Saves a training model's master weights as a model folder that <c>ModelLoader</c> (and Hugging Face) loads.</summary>
public static class TrainingCheckpoint
{
    /// <summary>Writes model.safetensors (float32 or bf16, original tensor names) and config.json (Hugging Face dialect), each atomically.</summary>
    public static void Save(string directory, TrainingModel model, DType storeAs = DType.F32)
    {
        Directory.CreateDirectory(directory);
        if (File.Exists(Path.Combine(directory, CheckpointFiles.IndexFileName)))
            throw new IOException($"{directory} holds a sharded checkpoint ({CheckpointFiles.IndexFileName}); save into another folder");
        var tensors = TrainableWeights.Named(model.Weights).Select(p =>
        {
            var values = new float[p.Tensor.ElementCount];
            model.Backend.Download(p.Tensor, values);
            return SafeTensorToWrite.FromFloat32(p.Name, p.Tensor.Shape.Select(d => (long)d).ToArray(), values, storeAs);
        }).ToList();
        SafeTensorsWriter.Write(Path.Combine(directory, CheckpointFiles.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var config = new AtomicFileWriter(Path.Combine(directory, "config.json"));
        string dtype = storeAs switch
        {
            DType.BF16 => "bfloat16",
            DType.F16 => "float16",
            _ => "float32",
        };
        config.Stream.Write(Encoding.UTF8.GetBytes(model.Config.ToHuggingFaceJson(dtype)));
        config.Commit();
    }
}
