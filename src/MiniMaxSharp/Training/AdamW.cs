using MiniMaxSharp.Backends;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>AdamW hyper-parameters. Weight decay is decoupled (applied to the weights, not the gradient).</summary>
public sealed record AdamWOptions
{
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Epsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.1;
}

/// <summary>
/// AdamW over a training model's float32 master weights. Norm weights (the only one-dimensional parameters of the
/// model) get no weight decay. Moments live on the model's backend, one pair per parameter.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IGradientBackend _ops;
    private readonly (string Name, DeviceTensor Parameter, DeviceTensor Gradient, DeviceTensor M, DeviceTensor V, bool Decay)[] _slots;

    public AdamW(TrainingModel model, AdamWOptions options)
    {
        _ops = (IGradientBackend)model.Backend;
        Options = options;
        var parameters = TrainableWeights.Named(model.Weights).ToArray();
        var gradients = TrainableWeights.Named(model.Gradients).ToArray();
        _slots = parameters.Select((p, i) => (p.Name, p.Tensor, gradients[i].Tensor,
            model.Backend.Allocate(DType.F32, p.Tensor.Shape), model.Backend.Allocate(DType.F32, p.Tensor.Shape),
            Decay: p.Tensor.Shape.Length > 1)).ToArray();
    }

    public AdamWOptions Options { get; }

    /// <summary>Updates taken so far.</summary>
    public int StepCount { get; private set; }

    /// <summary>The first and second moment of every parameter, under the parameter's name (to save and restore them).</summary>
    public IEnumerable<(string Name, DeviceTensor M, DeviceTensor V)> Moments => _slots.Select(s => (s.Name, s.M, s.V));

    /// <summary>Sets the update count when resuming from saved moments (the bias correction depends on it).</summary>
    public void RestoreStepCount(int steps) =>
        StepCount = steps >= 0 ? steps : throw new ArgumentOutOfRangeException(nameof(steps), steps, "the step count cannot be negative");

    /// <summary>Whether a parameter gets weight decay (every parameter but the norm weights).</summary>
    public bool Decays(string name) => _slots.Single(s => s.Name == name).Decay;

    /// <summary>One update of every parameter from the gradients the model holds, at <paramref name="learningRate"/>.</summary>
    public void Step(double learningRate)
    {
        if (!(learningRate >= 0) || double.IsInfinity(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be finite and not negative");
        StepCount++;
        foreach (var s in _slots)
            _ops.AdamWUpdate(s.Parameter, s.Gradient, s.M, s.V,
                new AdamWStep(learningRate, Options.Beta1, Options.Beta2, Options.Epsilon, s.Decay ? Options.WeightDecay : 0, StepCount));
    }

    public void Dispose()
    {
        foreach (var s in _slots)
        {
            s.M.Dispose();
            s.V.Dispose();
        }
    }
}
