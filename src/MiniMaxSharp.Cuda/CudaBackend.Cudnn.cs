namespace MiniMaxSharp.Backends.Cuda;

// Softmax attention prefill through cuDNN's fused attention (CudnnAttention.cs) for long query runs,
// the backend's own flash kernel for the rest and whenever cuDNN is absent or has no engine for a shape.
public sealed unsafe partial class CudaBackend
{
    private CudnnAttention? _cudnn;
    private string? _cudnnStatus;

    /// <summary>Whether long prefills may use cuDNN's fused attention (default on; MINIMAXSHARP_CUDNN=0 turns it off).</summary>
    public bool CudnnAttentionEnabled { get; set; } = Environment.GetEnvironmentVariable("MINIMAXSHARP_CUDNN") != "0";

    /// <summary>Which cuDNN serves the attention (version and path), or why none does; plans built and their cost.</summary>
    public string CudnnAttentionStatus
    {
        get
        {
            if (!CudnnAttentionEnabled) return "cuDNN attention off (MINIMAXSHARP_CUDNN=0 or disabled)";
            var c = Cudnn();
            if (c is null) return _cudnnStatus!;
            return $"{_cudnnStatus}; {c.PlansBuilt} plans built in {c.PlanMilliseconds:F0} ms"
                + (c.LastFailure is null ? "" : $"; last failure: {c.LastFailure}");
        }
    }

    /// <summary>Whether cuDNN loaded and serves attention (loads it on first ask).</summary>
    public bool CudnnAttentionAvailable => CudnnAttentionEnabled && Cudnn() is not null;

    /// <summary>cuDNN attention plans built so far (0 when cuDNN is absent).</summary>
    public int CudnnAttentionPlansBuilt => _cudnn?.PlansBuilt ?? 0;

    private CudnnAttention? Cudnn()
    {
        if (_cudnnStatus is null) _cudnn = CudnnAttention.TryCreate(_device, out _cudnnStatus);
        return _cudnn;
    }

    /// <summary>Which sequences of the step go to cuDNN (null: none), and the largest workspace their plans need.</summary>
    private bool[]? CudnnSequences(BatchLayout layout, AttentionShape shape, out long workspace)
    {
        workspace = 0;
        if (!CudnnAttentionEnabled || _device.Graphs.Mode != StepGraphMode.Eager) return null;
        bool any = false;
        for (int s = 0; s < layout.Count; s++) any |= layout.Sequences[s].TokenCount >= CudnnAttention.MinQueries;
        if (!any || Cudnn() is not { } cudnn) return null;
        var use = new bool[layout.Count];
        any = false;
        for (int s = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            if (span.TokenCount < CudnnAttention.MinQueries) continue;
            long ws = cudnn.Workspace(PlanKey(span, shape));
            if (ws < 0) continue;
            use[s] = true;
            any = true;
            workspace = Math.Max(workspace, ws);
        }
        return any ? use : null;
    }

    private static CudnnAttention.PlanKey PlanKey(SequenceSpan span, AttentionShape shape) =>
        new(shape.Heads, shape.KvHeads, shape.HeadDim, span.TokenCount, span.EndPosition);

    /// <summary>Runs the chosen sequences' attention through cuDNN: queries and outputs are their rows of the
    /// packed batch, keys and values their caches (already appended to).</summary>
    private void CudnnAttentionRun(CudaTensor q, BatchLayout layout, IReadOnlyList<KvCache> caches, AttentionShape shape,
        bool[] use, long workspace, CudaTensor output)
    {
        var cudnn = _cudnn!;
        ulong ws = workspace > 0 ? Scratch("cudnn attention workspace", workspace) : 0;
        long rowBytes = (long)shape.Width * 2;
        float scale = 1f / MathF.Sqrt(shape.HeadDim);
        for (int s = 0; s < layout.Count; s++)
        {
            if (!use[s]) continue;
            var span = layout.Sequences[s];
            ulong offset = (ulong)(span.TokenOffset * rowBytes);
            cudnn.Run(PlanKey(span, shape), q.Pointer + offset, AsCuda(caches[s].Keys).Pointer, AsCuda(caches[s].Values).Pointer,
                output.Pointer + offset, ws, scale);
        }
    }
}
