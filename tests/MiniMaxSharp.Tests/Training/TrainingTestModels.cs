using MiniMaxSharp.Backends.Cpu;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;
using MiniMaxSharp.Tests.Reference;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Tests.Training;

/// <summary>Training models over random weights, and the same loss in float64 through the reference model.</summary>
internal static class TrainingTestModels
{
    public static TrainingModel Build(ModelConfig config, IReadOnlyDictionary<string, HostTensor> weights, int threads = 2)
    {
        var backend = new CpuBackend(threads);
        var loaded = WeightLoader.Load(new DictionaryTensorSource(weights), config, backend);
        return new TrainingModel(config, TrainableWeights.CopyToFloat32(loaded, backend), backend);
    }

    public static Dictionary<string, double[]> ToDouble(IReadOnlyDictionary<string, HostTensor> weights) =>
        weights.ToDictionary(kv => kv.Key, kv => kv.Value.ToFloat32().Select(v => (double)v).ToArray());

    /// <summary>Every master weight of the model under its checkpoint name.</summary>
    public static Dictionary<string, float[]> Weights(TrainingModel model) => Download(model, model.Weights);

    /// <summary>Every gradient of the model under its checkpoint name.</summary>
    public static Dictionary<string, float[]> Gradients(TrainingModel model) => Download(model, model.Gradients);

    private static Dictionary<string, float[]> Download(TrainingModel model, ModelWeights tensors) =>
        TrainableWeights.Named(tensors).ToDictionary(p => p.Name, p =>
        {
            var v = new float[p.Tensor.ElementCount];
            model.Backend.Download(p.Tensor, v);
            return v;
        });


    /// <summary>
    /// The training loss in float64, written from the spec independently of the engine: per document, logits of the
    /// reference model, cross-entropy of position t against labels[t+1] (ignoring -100), mean over targets; plus
    /// coef·E·Σ f_e P_e over every (layer, token) router output when <paramref name="aux"/>.
    /// </summary>
    public static double ReferenceLoss(ModelConfig c, Dictionary<string, double[]> w, IReadOnlyList<TrainingExample> batch, bool aux)
    {
        var model = new ReferenceModel(c, name => w[name]);
        var probs = new List<double[]>();
        model.RouterObserver = (_, p) => probs.Add((double[])p.Clone());
        double sum = 0;
        int count = 0;
        foreach (var ex in batch)
        {
            int at = 0;
            foreach (int len in ex.DocumentLengths ?? [ex.InputIds.Length])
            {
                var logits = model.Run(ex.InputIds[at..(at + len)]).Logits;
                for (int t = 0; t + 1 < len; t++)
                {
                    int target = ex.Labels[at + t + 1];
                    if (target == TrainingExample.IgnoreIndex) continue;
                    double max = logits[t].Max();
                    double lse = max + Math.Log(logits[t].Sum(v => Math.Exp(v - max)));
                    sum += lse - logits[t][target];
                    count++;
                }
                at += len;
            }
        }
        double loss = sum / count;
        if (aux)
        {
            int E = c.NumExperts, k = c.ExpertsPerToken, n = probs.Count;
            var slots = new double[E];
            var mean = new double[E];
            foreach (var p in probs)
            {
                foreach (int e in Enumerable.Range(0, E).OrderByDescending(e => p[e]).ThenBy(e => e).Take(k)) slots[e]++;
                for (int e = 0; e < E; e++) mean[e] += p[e] / n;
            }
            double balance = 0;
            for (int e = 0; e < E; e++) balance += slots[e] / ((double)n * k) * mean[e];
            loss += c.RouterAuxLossCoef * E * balance;
        }
        return loss;
    }
}
