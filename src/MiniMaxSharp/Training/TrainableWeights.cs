using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Training;

/// <summary>
/// Float32 master weights and gradient buffers. Both are <see cref="ModelWeights"/> of the same structure, so the
/// forward ops run on the master weights unchanged and each parameter's gradient sits at the same place.
/// </summary>
public static class TrainableWeights
{
    /// <summary>Owned float32 copies of every weight (widened from bf16/f16 where needed); tied embeddings stay tied.</summary>
    public static ModelWeights CopyToFloat32(ModelWeights source, IComputeBackend backend) =>
        Map(source, t =>
        {
            var copy = backend.Allocate(DType.F32, t.Shape);
            var values = new float[t.ElementCount];
            backend.Download(t, values);
            backend.Upload(values, copy);
            return copy;
        });

    /// <summary>Zero-filled float32 tensors shaped like every weight (the gradient buffers).</summary>
    public static ModelWeights ZerosLike(ModelWeights source, IComputeBackend backend) =>
        Map(source, t => backend.Allocate(DType.F32, t.Shape));

    /// <summary>
    /// Every parameter under its checkpoint tensor name (original layout: experts as w1/w2/w3), each once
    /// (a tied lm_head is the embedding). <paramref name="prefix"/> is prepended (VL checkpoints: "language_model.").
    /// </summary>
    public static IEnumerable<(string Name, DeviceTensor Tensor)> Named(ModelWeights w, string prefix = "")
    {
        yield return (prefix + "model.embed_tokens.weight", w.Embedding);
        for (int l = 0; l < w.Layers.Count; l++)
        {
            var layer = w.Layers[l];
            string p = $"{prefix}model.layers.{l}.";
            yield return (p + "input_layernorm.weight", layer.InputNorm);
            if (layer.Kind == LayerKind.Lightning)
            {
                yield return (p + "self_attn.qkv_proj.weight", layer.QkvProj!);
                yield return (p + "self_attn.output_gate.weight", layer.OutputGate!);
                yield return (p + "self_attn.norm.weight", layer.OutputNorm!);
                yield return (p + "self_attn.out_proj.weight", layer.OutProj!);
            }
            else
            {
                yield return (p + "self_attn.q_proj.weight", layer.QProj!);
                yield return (p + "self_attn.k_proj.weight", layer.KProj!);
                yield return (p + "self_attn.v_proj.weight", layer.VProj!);
                yield return (p + "self_attn.o_proj.weight", layer.OProj!);
            }
            yield return (p + "post_attention_layernorm.weight", layer.PostAttentionNorm);
            yield return (p + "block_sparse_moe.gate.weight", layer.Router);
            for (int e = 0; e < layer.Experts.Count; e++)
            {
                string ep = $"{p}block_sparse_moe.experts.{e}.";
                yield return (ep + "w1.weight", layer.Experts[e].W1);
                yield return (ep + "w2.weight", layer.Experts[e].W2);
                yield return (ep + "w3.weight", layer.Experts[e].W3);
            }
        }
        yield return (prefix + "model.norm.weight", w.FinalNorm);
        if (!ReferenceEquals(w.LmHead, w.Embedding)) yield return (prefix + "lm_head.weight", w.LmHead);
    }

    private static ModelWeights Map(ModelWeights source, Func<DeviceTensor, DeviceTensor> make)
    {
        var made = new List<DeviceTensor>();
        DeviceTensor M(DeviceTensor t)
        {
            var r = make(t);
            made.Add(r);
            return r;
        }
        DeviceTensor? Opt(DeviceTensor? t) => t is null ? null : M(t);
        try
        {
            var embedding = M(source.Embedding);
            var lmHead = ReferenceEquals(source.LmHead, source.Embedding) ? embedding : M(source.LmHead);
            var layers = source.Layers.Select(l => new LayerWeights
            {
                Kind = l.Kind,
                InputNorm = M(l.InputNorm),
                PostAttentionNorm = M(l.PostAttentionNorm),
                QkvProj = Opt(l.QkvProj), OutputGate = Opt(l.OutputGate), OutputNorm = Opt(l.OutputNorm), OutProj = Opt(l.OutProj),
                QProj = Opt(l.QProj), KProj = Opt(l.KProj), VProj = Opt(l.VProj), OProj = Opt(l.OProj),
                Router = M(l.Router),
                Experts = l.Experts.Select(e => new ExpertWeights(M(e.W1), M(e.W2), M(e.W3))).ToArray(),
            }).ToArray();
            return new ModelWeights { Embedding = embedding, FinalNorm = M(source.FinalNorm), LmHead = lmHead, Layers = layers };
        }
        catch
        {
            foreach (var t in made) t.Dispose();
            throw;
        }
    }
}
