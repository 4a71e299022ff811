using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;

namespace MiniMaxSharp.Model;

/// <summary>Weights of one decoder layer, as the backend holds them. Shapes are [out, in] as in the checkpoint.</summary>
public sealed class LayerWeights
{
    public required LayerKind Kind { get; init; }
    public required DeviceTensor InputNorm { get; init; }           // [hidden]
    public required DeviceTensor PostAttentionNorm { get; init; }   // [hidden]
    // Lightning layers
    public DeviceTensor? QkvProj { get; init; }        // [3·H·d, hidden], per head [q|k|v]
    public DeviceTensor? OutputGate { get; init; }     // [H·d, hidden]
    public DeviceTensor? OutputNorm { get; init; }     // [H·d]
    public DeviceTensor? OutProj { get; init; }        // [hidden, H·d]
    // Softmax layers
    public DeviceTensor? QProj { get; init; }          // [H·d, hidden]
    public DeviceTensor? KProj { get; init; }          // [KV·d, hidden]
    public DeviceTensor? VProj { get; init; }          // [KV·d, hidden]
    public DeviceTensor? OProj { get; init; }          // [hidden, H·d]
    // Mixture of experts
    public required DeviceTensor Router { get; init; } // [E, hidden]
    public required IReadOnlyList<ExpertWeights> Experts { get; init; }
}

/// <summary>All weights of a model on one backend.</summary>
public sealed class ModelWeights : IDisposable
{
    public required DeviceTensor Embedding { get; init; }  // [vocab, hidden]
    public required DeviceTensor FinalNorm { get; init; }  // [hidden]
    public required DeviceTensor LmHead { get; init; }     // [vocab, hidden]
    public required IReadOnlyList<LayerWeights> Layers { get; init; }
    /// <summary>Things that must live as long as the weights (memory-mapped checkpoint files).</summary>
    public IReadOnlyList<IDisposable> Owned { get; init; } = [];

    public void Dispose()
    {
        foreach (var t in AllTensors()) t.Dispose();
        foreach (var o in Owned) o.Dispose();
    }

    public IEnumerable<DeviceTensor> AllTensors()
    {
        yield return Embedding;
        yield return FinalNorm;
        if (!ReferenceEquals(LmHead, Embedding)) yield return LmHead;
        foreach (var l in Layers)
        {
            foreach (var t in new[] { l.InputNorm, l.PostAttentionNorm, l.QkvProj, l.OutputGate, l.OutputNorm, l.OutProj, l.QProj, l.KProj, l.VProj, l.OProj, l.Router })
                if (t is not null) yield return t;
            foreach (var e in l.Experts)
            {
                yield return e.W1;
                yield return e.W2;
                yield return e.W3;
            }
        }
    }
}
