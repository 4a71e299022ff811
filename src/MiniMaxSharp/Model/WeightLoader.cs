using System.Text;
using MiniMaxSharp.Backends;
using MiniMaxSharp.Config;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Model;

/// <summary>Named host tensors a model's weights are taken from (checkpoint files, or memory).</summary>
public interface ITensorSource
{
    IReadOnlyCollection<string> Names { get; }
    HostTensor Get(string name);
}

/// <summary>A tensor source over an in-memory dictionary (tests, random-weight models).</summary>
public sealed class DictionaryTensorSource(IReadOnlyDictionary<string, HostTensor> tensors) : ITensorSource
{
    public IReadOnlyCollection<string> Names => tensors.Keys.ToArray();
    public HostTensor Get(string name) => tensors[name];
}

/// <summary>Thrown when a checkpoint's tensors do not match the config; lists every problem by name.</summary>
public sealed class WeightLoadException(string message) : Exception(message);

/// <summary>
/// Maps checkpoint tensor names onto the model (spec: "Checkpoint tensor names"): the original layout,
/// Hugging Face's fused experts (mlp.experts.gate_up_proj / down_proj, mlp.gate), and the
/// <c>language_model.</c> prefix of VL checkpoints. Derived decay buffers are ignored.
/// </summary>
public static class WeightLoader
{
    private static readonly string[] DerivedBuffers = ["slope_rate", "query_decay", "key_decay", "diagonal_decay", "rotary_emb.inv_freq"];

    public static ModelWeights Load(ITensorSource source, ModelConfig config, IComputeBackend backend, IReadOnlyList<IDisposable>? owned = null)
    {
        var names = new HashSet<string>(source.Names, StringComparer.Ordinal);
        string prefix = names.Contains("language_model.model.embed_tokens.weight") ? "language_model." : "";
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        var misshaped = new List<string>();
        var loaded = new List<DeviceTensor>();
        int H = config.HiddenSize, W = config.AttentionWidth, KVW = config.KvWidth, I = config.IntermediateSize, E = config.NumExperts;

        HostTensor? Find(string name, params long[] shape)
        {
            string full = prefix + name;
            if (!names.Contains(full)) { missing.Add(full); return null; }
            used.Add(full);
            var t = source.Get(full);
            if (!t.Shape.SequenceEqual(shape))
            {
                misshaped.Add($"{full} is [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
                return null;
            }
            return t;
        }
        DeviceTensor? Load(HostTensor? t)
        {
            if (t is null || missing.Count + misshaped.Count > 0) return null;
            var d = backend.LoadWeight(t);
            loaded.Add(d);
            return d;
        }
        DeviceTensor? Get(string name, params long[] shape) => Load(Find(name, shape));

        try
        {
            var embedding = Get("model.embed_tokens.weight", config.VocabSize, H);
            var finalNorm = Get("model.norm.weight", H);
            DeviceTensor? lmHead = config.TieWordEmbeddings && !names.Contains(prefix + "lm_head.weight")
                ? embedding
                : Get("lm_head.weight", config.VocabSize, H);
            var layers = new List<LayerWeights>();
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"model.layers.{l}.";
                var kind = config.LayerKinds[l];
                var inNorm = Get(p + "input_layernorm.weight", H);
                var postNorm = Get(p + "post_attention_layernorm.weight", H);
                DeviceTensor? qkv = null, gate = null, onorm = null, oproj = null, q = null, k = null, v = null, o = null;
                if (kind == LayerKind.Lightning)
                {
                    qkv = Get(p + "self_attn.qkv_proj.weight", 3 * W, H);
                    gate = Get(p + "self_attn.output_gate.weight", W, H);
                    onorm = Get(p + "self_attn.norm.weight", W);
                    oproj = Get(p + "self_attn.out_proj.weight", H, W);
                }
                else
                {
                    q = Get(p + "self_attn.q_proj.weight", W, H);
                    k = Get(p + "self_attn.k_proj.weight", KVW, H);
                    v = Get(p + "self_attn.v_proj.weight", KVW, H);
                    o = Get(p + "self_attn.o_proj.weight", H, W);
                }
                DeviceTensor? router;
                var experts = new List<ExpertWeights>();
                string fusedGateUp = FirstPresent(names, prefix + p + "mlp.experts.gate_up_proj", prefix + p + "mlp.experts.gate_up_proj.weight");
                if (fusedGateUp.Length > 0)
                {
                    router = Get(p + "mlp.gate.weight", E, H);
                    string down = FirstPresent(names, prefix + p + "mlp.experts.down_proj", prefix + p + "mlp.experts.down_proj.weight");
                    var gu = Find(fusedGateUp[prefix.Length..], E, 2 * I, H);
                    var dn = down.Length > 0 ? Find(down[prefix.Length..], E, H, I) : Find(p + "mlp.experts.down_proj", E, H, I);
                    for (int e = 0; e < E && gu is not null && dn is not null; e++)
                    {
                        var ge = gu.Index(e);
                        var w1 = Load(ge.Rows(0, I));
                        var w3 = Load(ge.Rows(I, I));
                        var w2 = Load(dn.Index(e));
                        if (w1 is not null && w2 is not null && w3 is not null) experts.Add(new ExpertWeights(w1, w2, w3));
                    }
                }
                else
                {
                    router = Get(p + "block_sparse_moe.gate.weight", E, H);
                    for (int e = 0; e < E; e++)
                    {
                        string ep = $"{p}block_sparse_moe.experts.{e}.";
                        var w1 = Get(ep + "w1.weight", I, H);
                        var w2 = Get(ep + "w2.weight", H, I);
                        var w3 = Get(ep + "w3.weight", I, H);
                        if (w1 is not null && w2 is not null && w3 is not null) experts.Add(new ExpertWeights(w1, w2, w3));
                    }
                }
                if (missing.Count + misshaped.Count == 0)
                    layers.Add(new LayerWeights
                    {
                        Kind = kind, InputNorm = inNorm!, PostAttentionNorm = postNorm!,
                        QkvProj = qkv, OutputGate = gate, OutputNorm = onorm, OutProj = oproj,
                        QProj = q, KProj = k, VProj = v, OProj = o,
                        Router = router!, Experts = experts,
                    });
            }

            var unexpected = names.Where(n => !used.Contains(n) && !IsIgnorable(n, prefix)).OrderBy(n => n, StringComparer.Ordinal).ToList();
            if (missing.Count + misshaped.Count + unexpected.Count > 0)
                throw new WeightLoadException(Describe(missing, misshaped, unexpected));
            return new ModelWeights { Embedding = embedding!, FinalNorm = finalNorm!, LmHead = lmHead!, Layers = layers, Owned = owned ?? [] };
        }
        catch
        {
            foreach (var d in loaded) d.Dispose();
            throw;
        }
    }

    private static string FirstPresent(HashSet<string> names, params string[] candidates) =>
        candidates.FirstOrDefault(names.Contains) ?? "";

    private static bool IsIgnorable(string name, string prefix)
    {
        foreach (var d in DerivedBuffers)
            if (name.EndsWith("." + d, StringComparison.Ordinal) || name.EndsWith(d, StringComparison.Ordinal)) return true;
        // A VL checkpoint's vision tower and projector are not part of the text model.
        return prefix.Length > 0 && !name.StartsWith(prefix, StringComparison.Ordinal);
    }

    private static string Describe(List<string> missing, List<string> misshaped, List<string> unexpected)
    {
        var sb = new StringBuilder("the checkpoint does not match the config:");
        void Section(string title, List<string> items)
        {
            if (items.Count == 0) return;
            sb.Append($"\n  {title} ({items.Count}):");
            foreach (var i in items.Take(12)) sb.Append("\n    ").Append(i);
            if (items.Count > 12) sb.Append($"\n    ... and {items.Count - 12} more");
        }
        Section("missing tensors", missing);
        Section("wrong shapes", misshaped);
        Section("unexpected tensors", unexpected);
        return sb.ToString();
    }
}
