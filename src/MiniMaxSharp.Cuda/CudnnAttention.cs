using System.Diagnostics;
using System.Runtime.InteropServices;
using MiniMaxSharp.Backends.Cuda.Interop;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>
/// Causal GQA attention prefill of one sequence through cuDNN's fused flash-attention engine: the kernel
/// PyTorch's SDPA runs on Hopper (cuDNN ≥ 9.15), written for sm_90 with wgmma and TMA. cuDNN is optional:
/// without it (or when it has no engine for a shape) the backend's own flash kernel runs.
///
/// The op is described to cuDNN as its graph of operations, the pattern its fused engine matches:
///   S = Q·Kᵀ (float) → S·scale → causal mask (row index + keys − queries ≥ column index, else −∞)
///   → softmax (max, subtract, exp, sum, divide; bf16 probabilities; the statistics max + log sum, which
///   the engine's pattern includes, left virtual as PyTorch's SDPA does for inference) → O = P·V (bf16).
/// Q, O [queries, H·d] and K, V [keys, KV·d] are read in place (rows of the packed batch, the KV cache),
/// as [1, heads, tokens, d] tensors with strides. A graph's dimensions are fixed, so an execution plan is
/// built per (heads, KV heads, d, queries, keys) and kept; building one takes cuDNN's heuristics and
/// possibly a runtime compilation (tens to hundreds of milliseconds), so only long prompts use it
/// (<see cref="MinQueries"/>) and the number of plans kept is bounded.
/// </summary>
internal sealed unsafe class CudnnAttention : IDisposable
{
    /// <summary>Shortest query run (tokens of one sequence in one step) sent to cuDNN.</summary>
    public const int MinQueries = 1024;
    private const int MaxPlans = 64;

    /// <summary>MINIMAXSHARP_CUDNN_DEBUG=1: each plan's engines and each run's arguments on stderr.</summary>
    private static readonly bool Debug = Environment.GetEnvironmentVariable("MINIMAXSHARP_CUDNN_DEBUG") == "1";

    private readonly nint _handle;
    private readonly Dictionary<PlanKey, Plan?> _plans = [];
    private readonly LinkedList<PlanKey> _order = new();
    private bool _disposed;

    private CudnnAttention(nint handle, long version)
    {
        _handle = handle;
        Version = version;
    }

    /// <summary>cuDNN's version number (e.g. 91900 for 9.19.0).</summary>
    public long Version { get; }

    /// <summary>Plans built so far and the time they took (for bench and verify reports).</summary>
    public int PlansBuilt { get; private set; }
    public double PlanMilliseconds { get; private set; }

    /// <summary>Why the last plan could not be built (no engine for the shape), or null.</summary>
    public string? LastFailure { get; private set; }

    /// <summary>cuDNN on the device's stream, or null with the reason (not installed, too old, no Hopper).</summary>
    public static CudnnAttention? TryCreate(CudaDevice device, out string status)
    {
        if (device.ComputeCapability < 80)
        {
            status = $"cuDNN attention off: sm_{device.ComputeCapability} (its fused attention needs sm_80 or newer)";
            return null;
        }
        try
        {
            CudaLibraries.Load(CudaLibrary.Cudnn, Environment.GetEnvironmentVariable);
            long version = (long)Cudnn.cudnnGetVersion();
            if (version < 90000)
            {
                status = $"cuDNN attention off: cuDNN {version} found, 9.0 or newer needed";
                return null;
            }
            device.MakeCurrent();
            Cudnn.Check(Cudnn.cudnnCreate(out nint handle), "cudnnCreate");
            Cudnn.Check(Cudnn.cudnnSetStream(handle, device.Stream), "cudnnSetStream");
            status = $"cuDNN {version / 10000}.{version / 100 % 100}.{version % 100} from {CudaLibraries.Sources.GetValueOrDefault(CudaLibrary.Cudnn, "?")}";
            return new CudnnAttention(handle, version);
        }
        catch (Exception e) when (e is CudaUnavailableException or CudaException or DllNotFoundException or EntryPointNotFoundException)
        {
            status = $"cuDNN attention off: {FirstLine(e.Message)}";
            return null;
        }
    }

    /// <summary>One plan's shape: every dimension and stride of the graph.</summary>
    public readonly record struct PlanKey(int Heads, int KvHeads, int HeadDim, int Queries, int Keys);

    /// <summary>The workspace the plan for <paramref name="key"/> needs, or -1 when cuDNN has no engine for it
    /// (the reason in <see cref="LastFailure"/>). Builds and keeps the plan on first use.</summary>
    public long Workspace(PlanKey key) => GetPlan(key) is { } p ? p.WorkspaceBytes : -1;

    /// <summary>
    /// Runs the plan for <paramref name="key"/> on the stream: q, o at [queries, H·d] bf16 rows, keys and
    /// values at [keys, KV·d] bf16 rows; query i attends keys 0 .. keys − queries + i.
    /// </summary>
    public void Run(PlanKey key, ulong q, ulong k, ulong v, ulong o, ulong workspace, float scale)
    {
        var plan = GetPlan(key) ?? throw new InvalidOperationException($"cuDNN has no attention plan for {key}: {LastFailure}");
        if (Debug) Console.Error.WriteLine($"cuDNN attention {key}: run q {q:x} k {k:x} v {v:x} o {o:x} workspace {workspace:x} ({plan.WorkspaceBytes} bytes) scale {scale}");
        // A step of the same shape usually runs on the same buffers: the variant pack is kept and reused
        // while its pointers and scale are the same.
        var arguments = (q, k, v, o, workspace, scale);
        if (plan.Pack == 0 || plan.PackArguments != arguments)
        {
            plan.ReleasePack();
            plan.PackScalars[0] = scale;
            plan.PackScalars[1] = float.NegativeInfinity;
            plan.PackCounts[0] = key.Keys;
            plan.PackCounts[1] = key.Queries;
            int count = plan.ShiftedDiagonal ? 8 : 6;
            long* uids = stackalloc long[8] { Uid.Q, Uid.K, Uid.V, Uid.O, Uid.Scale, Uid.NegativeInfinity, Uid.KeyCount, Uid.QueryCount };
            // The by-value tensors point at the plan's pinned scalars.
            void** pointers = stackalloc void*[8] { (void*)q, (void*)k, (void*)v, (void*)o,
                plan.ScalarAddress(0), plan.ScalarAddress(1), plan.CountAddress(0), plan.CountAddress(1) };
            Cudnn.Check(Cudnn.cudnnBackendCreateDescriptor(Cudnn.VariantPackDescriptor, out nint vp), "cudnnBackendCreateDescriptor(variant pack)");
            try
            {
                Set(vp, Cudnn.VariantPackUniqueIds, Cudnn.TypeInt64, count, uids);
                Set(vp, Cudnn.VariantPackDataPointers, Cudnn.TypeVoidPointer, count, pointers);
                void* ws = (void*)workspace;
                Set(vp, Cudnn.VariantPackWorkspace, Cudnn.TypeVoidPointer, 1, &ws);
                Cudnn.Check(Cudnn.cudnnBackendFinalize(vp), "cudnnBackendFinalize(variant pack)");
            }
            catch
            {
                Cudnn.cudnnBackendDestroyDescriptor(vp);
                throw;
            }
            plan.Pack = vp;
            plan.PackArguments = arguments;
        }
        long started = Debug ? Stopwatch.GetTimestamp() : 0;
        Cudnn.Check(Cudnn.cudnnBackendExecute(_handle, plan.Handle, plan.Pack), "cudnnBackendExecute(attention)");
        if (Debug) Console.Error.WriteLine($"cuDNN attention {key}: cudnnBackendExecute took {Stopwatch.GetElapsedTime(started).TotalMicroseconds:F0} µs on the host");
    }

    private Plan? GetPlan(PlanKey key)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_plans.TryGetValue(key, out var known))
        {
            _order.Remove(key);
            _order.AddFirst(key);
            return known;
        }
        var clock = Stopwatch.StartNew();
        Plan? plan = null;
        try
        {
            plan = TryBuildDynamic(key) ?? Build(key, dynamic: false);
            PlansBuilt++;
        }
        catch (CudaException e)
        {
            LastFailure = e.Message;
        }
        PlanMilliseconds += clock.Elapsed.TotalMilliseconds;
        if (_plans.Count >= MaxPlans && _order.Last is { } oldest)
        {
            _plans[oldest.Value]?.Dispose();
            _plans.Remove(oldest.Value);
            _order.RemoveLast();
        }
        _plans[key] = plan;
        _order.AddFirst(key);
        return plan;
    }

    /// <summary>Tensor ids of the graph: the variant pack names the non-virtual ones.</summary>
    private static class Uid
    {
        public const long Q = 1, K = 2, V = 3, O = 4, Scale = 5, NegativeInfinity = 6, KeyCount = 7, QueryCount = 8;
        public const long Scores = 101, Scaled = 102, Row = 103, Column = 104, RowPlusKeys = 105, Diagonal = 106,
            Mask = 107, Masked = 108, Max = 109, Centered = 110, Exp = 111, Sum = 112, Probabilities = 113,
            LogSum = 114, Statistics = 115;
    }

    /// <summary>
    /// Builds with dynamic shapes and a kernel cache per mask kind (cuDNN ≥ 9.5): the engine's kernels are
    /// compiled for the first plan of a kind and reused by plans of other lengths, which then take milliseconds
    /// instead of a compilation. Null (and static plans from then on) if this cuDNN refuses it.
    /// </summary>
    private Plan? TryBuildDynamic(PlanKey key)
    {
        if (Version < 90500 || _dynamicShapesRefused is not null) return null;
        try
        {
            return Build(key, dynamic: true);
        }
        catch (CudaException e)
        {
            _dynamicShapesRefused = e.Message;
            if (Debug) Console.Error.WriteLine($"cuDNN attention: dynamic shapes refused ({e.Message}); static plans from now on");
            return null;
        }
    }

    private string? _dynamicShapesRefused;

    /// <summary>Kernel caches by mask kind (plain causal, shifted diagonal), each with the graph it was made from.</summary>
    private readonly (nint Cache, Descriptors Graph)?[] _kernelCaches = new (nint, Descriptors)?[2];

    private Plan Build(PlanKey key, bool dynamic)
    {
        var g = new Descriptors();
        try
        {
            long H = key.Heads, KV = key.KvHeads, d = key.HeadDim, sq = key.Queries, skv = key.Keys;
            long[] one = [1, 1, 1, 1];
            // Packed rows: token t of head h at (t·heads + h)·d.
            nint q = g.Tensor(Uid.Q, Cudnn.DataBFloat16, [1, H, sq, d], [sq * H * d, d, H * d, 1]);
            nint kT = g.Tensor(Uid.K, Cudnn.DataBFloat16, [1, KV, d, skv], [skv * KV * d, d, 1, KV * d]);
            nint v = g.Tensor(Uid.V, Cudnn.DataBFloat16, [1, KV, skv, d], [skv * KV * d, d, KV * d, 1]);
            nint o = g.Tensor(Uid.O, Cudnn.DataBFloat16, [1, H, sq, d], [sq * H * d, d, H * d, 1]);
            nint scale = g.Tensor(Uid.Scale, Cudnn.DataFloat, one, one, byValue: true);
            nint negInf = g.Tensor(Uid.NegativeInfinity, Cudnn.DataFloat, one, one, byValue: true);

            long[] sDims = [1, H, sq, skv], sStrides = [H * sq * skv, sq * skv, skv, 1];
            long[] rDims = [1, H, sq, 1], rStrides = [H * sq, sq, 1, 1];
            nint Virtual(long uid, int type, long[] dims, long[] strides) => g.Tensor(uid, type, dims, strides, isVirtual: true);

            var ops = new List<nint>();
            nint scores = Virtual(Uid.Scores, Cudnn.DataFloat, sDims, sStrides);
            ops.Add(g.Matmul(q, kT, scores));
            nint scaled = Virtual(Uid.Scaled, Cudnn.DataFloat, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseMul, Cudnn.DataFloat, scores, scale, scaled));

            // Causal mask: keep column ≤ row + (keys − queries), the diagonal aligned to the bottom right
            // (queries that follow earlier context in the cache); with no earlier context it is the plain
            // top-left causal mask and the shift is left out, as cuDNN's own front end does.
            nint row = Virtual(Uid.Row, Cudnn.DataInt32, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseGenIndex, Cudnn.DataFloat, scaled, 0, row, axis: 2));
            nint column = Virtual(Uid.Column, Cudnn.DataInt32, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseGenIndex, Cudnn.DataFloat, scaled, 0, column, axis: 3));
            bool shifted = skv != sq;
            nint diagonal = row;
            if (shifted)
            {
                nint keyCount = g.Tensor(Uid.KeyCount, Cudnn.DataInt32, one, one, byValue: true);
                nint queryCount = g.Tensor(Uid.QueryCount, Cudnn.DataInt32, one, one, byValue: true);
                nint rowPlusKeys = Virtual(Uid.RowPlusKeys, Cudnn.DataInt32, sDims, sStrides);
                ops.Add(g.Pointwise(Cudnn.PointwiseAdd, Cudnn.DataInt32, row, keyCount, rowPlusKeys, axis: 3));
                diagonal = Virtual(Uid.Diagonal, Cudnn.DataInt32, sDims, sStrides);
                ops.Add(g.Pointwise(Cudnn.PointwiseSub, Cudnn.DataInt32, rowPlusKeys, queryCount, diagonal, axis: 3));
            }
            nint mask = Virtual(Uid.Mask, Cudnn.DataBoolean, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseCmpGe, Cudnn.DataBoolean, diagonal, column, mask));
            nint masked = Virtual(Uid.Masked, Cudnn.DataFloat, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseBinarySelect, Cudnn.DataFloat, scaled, negInf, masked, condition: mask));

            nint max = Virtual(Uid.Max, Cudnn.DataFloat, rDims, rStrides);
            ops.Add(g.Reduction(Cudnn.ReduceMax, masked, max));
            nint centered = Virtual(Uid.Centered, Cudnn.DataFloat, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseSub, Cudnn.DataFloat, masked, max, centered));
            nint exp = Virtual(Uid.Exp, Cudnn.DataFloat, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseExp, Cudnn.DataFloat, centered, 0, exp));
            nint sum = Virtual(Uid.Sum, Cudnn.DataFloat, rDims, rStrides);
            ops.Add(g.Reduction(Cudnn.ReduceAdd, exp, sum));
            // The fused engine's pattern includes the softmax statistics (max + log of the sum, what a backward
            // pass would keep); inference leaves them virtual, as PyTorch's SDPA does.
            nint logSum = Virtual(Uid.LogSum, Cudnn.DataFloat, rDims, rStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseLog, Cudnn.DataFloat, sum, 0, logSum));
            nint stats = Virtual(Uid.Statistics, Cudnn.DataFloat, rDims, rStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseAdd, Cudnn.DataFloat, max, logSum, stats));
            nint p = Virtual(Uid.Probabilities, Cudnn.DataBFloat16, sDims, sStrides);
            ops.Add(g.Pointwise(Cudnn.PointwiseDiv, Cudnn.DataFloat, exp, sum, p));
            ops.Add(g.Matmul(p, v, o));

            nint graph = g.Create(Cudnn.OperationGraphDescriptor);
            nint handle = _handle;
            Set(graph, Cudnn.GraphHandle, Cudnn.TypeHandle, 1, &handle);
            var opArray = ops.ToArray();
            fixed (nint* po = opArray) Set(graph, Cudnn.GraphOperations, Cudnn.TypeBackendDescriptor, opArray.Length, po);
            if (dynamic)
            {
                byte on = 1;
                Set(graph, Cudnn.GraphDynamicShapes, Cudnn.TypeBoolean, 1, &on);
            }
            Cudnn.Check(Cudnn.cudnnBackendFinalize(graph), $"cudnnBackendFinalize(attention graph {key})");
            nint kernelCache = 0;
            if (dynamic)
            {
                int kind = shifted ? 1 : 0;
                if (_kernelCaches[kind] is not { } cache)
                {
                    nint c = g.Create(Cudnn.KernelCacheDescriptor);
                    Set(c, Cudnn.KernelCacheOperationGraph, Cudnn.TypeBackendDescriptor, 1, &graph);
                    Cudnn.Check(Cudnn.cudnnBackendFinalize(c), "cudnnBackendFinalize(kernel cache)");
                    // The cache and the graph it was made from outlive this plan.
                    g.Shared = true;
                    cache = (c, g);
                    _kernelCaches[kind] = cache;
                }
                kernelCache = cache.Cache;
            }

            nint heuristics = g.Create(Cudnn.EngineHeuristicsDescriptor);
            Set(heuristics, Cudnn.HeuristicsOperationGraph, Cudnn.TypeBackendDescriptor, 1, &graph);
            int mode = Cudnn.HeuristicsModeA;
            Set(heuristics, Cudnn.HeuristicsMode, Cudnn.TypeHeuristicsMode, 1, &mode);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(heuristics), $"cudnnBackendFinalize(heuristics {key})");
            Cudnn.Check(Cudnn.cudnnBackendGetAttribute(heuristics, Cudnn.HeuristicsResults, Cudnn.TypeBackendDescriptor, 0, out long count, null),
                "cudnnBackendGetAttribute(heuristics results)");
            long offered = count;
            if (count == 0) throw new CudaException($"cuDNN has no engine for the attention graph {key}");
            var configs = new nint[count];
            for (int i = 0; i < count; i++) configs[i] = g.Create(Cudnn.EngineConfigDescriptor);
            fixed (nint* pc = configs)
                Cudnn.Check(Cudnn.cudnnBackendGetAttribute(heuristics, Cudnn.HeuristicsResults, Cudnn.TypeBackendDescriptor, count, out count, pc),
                    "cudnnBackendGetAttribute(heuristics results)");
            string? lastError = null;
            // MINIMAXSHARP_CUDNN_ENGINE=i tries heuristics result i first (A/B of cuDNN's engine choices).
            int first = int.TryParse(Environment.GetEnvironmentVariable("MINIMAXSHARP_CUDNN_ENGINE"), out int forced) && forced >= 0 && forced < count ? forced : 0;
            for (int j = 0; j < count; j++)
            {
                int i = (first + j) % (int)count;
                Cudnn.Check(Cudnn.cudnnBackendCreateDescriptor(Cudnn.ExecutionPlanDescriptor, out nint plan), "cudnnBackendCreateDescriptor(plan)");
                nint config = configs[i];
                Set(plan, Cudnn.PlanHandle, Cudnn.TypeHandle, 1, &handle);
                Set(plan, Cudnn.PlanEngineConfig, Cudnn.TypeBackendDescriptor, 1, &config);
                if (kernelCache != 0) Set(plan, Cudnn.PlanKernelCache, Cudnn.TypeBackendDescriptor, 1, &kernelCache);
                int status = Cudnn.cudnnBackendFinalize(plan);
                if (Debug) Console.Error.WriteLine($"cuDNN attention {key}{(dynamic ? " (dynamic shapes)" : "")}: engine config {i} of {count} (offered {offered}): {(status == 0 ? "ok" : Cudnn.Describe(status))}");
                if (status != Cudnn.StatusSuccess)
                {
                    lastError = Cudnn.Describe(status);
                    Cudnn.cudnnBackendDestroyDescriptor(plan);
                    continue;
                }
                long workspace = 0;
                Cudnn.Check(Cudnn.cudnnBackendGetAttribute(plan, Cudnn.PlanWorkspaceSize, Cudnn.TypeInt64, 1, out _, &workspace),
                    "cudnnBackendGetAttribute(plan workspace)");
                if (Debug) Console.Error.WriteLine($"cuDNN attention {key}: plan built, workspace {workspace} bytes");
                return new Plan(plan, workspace, shifted, g);
            }
            throw new CudaException($"none of cuDNN's {count} engines (of {offered} offered) for the attention graph {key} could be built (the last: {lastError})");
        }
        catch
        {
            if (!g.Shared) g.Dispose();
            throw;
        }
    }

    private static void Set(nint descriptor, int name, int type, long count, void* values) =>
        Cudnn.Check(Cudnn.cudnnBackendSetAttribute(descriptor, name, type, count, values), $"cudnnBackendSetAttribute({name})");

    private static string FirstLine(string s) => s.Split('\n')[0];

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _plans.Values) p?.Dispose();
        _plans.Clear();
        foreach (var c in _kernelCaches) c?.Graph.Dispose(force: true);
        Cudnn.cudnnDestroy(_handle);
    }

    /// <summary>An execution plan, the graph's descriptors (kept while the plan lives) and its last variant pack.</summary>
    private sealed class Plan(nint handle, long workspaceBytes, bool shiftedDiagonal, Descriptors graph) : IDisposable
    {
        private readonly GCHandle _scalars = GCHandle.Alloc(new float[2], GCHandleType.Pinned);
        private readonly GCHandle _counts = GCHandle.Alloc(new int[2], GCHandleType.Pinned);

        public nint Handle { get; } = handle;
        public long WorkspaceBytes { get; } = workspaceBytes;
        /// <summary>Whether the mask has the keys − queries shift (two more scalars in the variant pack).</summary>
        public bool ShiftedDiagonal { get; } = shiftedDiagonal;

        public nint Pack { get; set; }
        public (ulong Q, ulong K, ulong V, ulong O, ulong Workspace, float Scale) PackArguments { get; set; }
        /// <summary>The by-value scalars the pack points at: scale and −∞ (float), keys and queries (int32).</summary>
        public float[] PackScalars => (float[])_scalars.Target!;
        public int[] PackCounts => (int[])_counts.Target!;
        public void* ScalarAddress(int i) => (float*)_scalars.AddrOfPinnedObject() + i;
        public void* CountAddress(int i) => (int*)_counts.AddrOfPinnedObject() + i;

        public void ReleasePack()
        {
            if (Pack != 0) Cudnn.cudnnBackendDestroyDescriptor(Pack);
            Pack = 0;
        }

        public void Dispose()
        {
            ReleasePack();
            Cudnn.cudnnBackendDestroyDescriptor(Handle);
            graph.Dispose();   // kept if a kernel cache was made from it
            _scalars.Free();
            _counts.Free();
        }
    }

    /// <summary>Backend descriptors made for one graph or one execution, destroyed together.</summary>
    private sealed class Descriptors : IDisposable
    {
        private readonly List<nint> _all = [];

        /// <summary>Set when a kernel cache refers to this graph: only <c>Dispose(force: true)</c> releases it.</summary>
        public bool Shared { get; set; }

        public nint Create(int type)
        {
            Cudnn.Check(Cudnn.cudnnBackendCreateDescriptor(type, out nint d), $"cudnnBackendCreateDescriptor({type})");
            _all.Add(d);
            return d;
        }

        public nint Tensor(long uid, int dataType, long[] dims, long[] strides, bool isVirtual = false, bool byValue = false)
        {
            nint t = Create(Cudnn.TensorDescriptor);
            fixed (long* pd = dims) Set(t, Cudnn.TensorDimensions, Cudnn.TypeInt64, dims.Length, pd);
            fixed (long* ps = strides) Set(t, Cudnn.TensorStrides, Cudnn.TypeInt64, strides.Length, ps);
            Set(t, Cudnn.TensorUniqueId, Cudnn.TypeInt64, 1, &uid);
            long alignment = 16;
            Set(t, Cudnn.TensorByteAlignment, Cudnn.TypeInt64, 1, &alignment);
            Set(t, Cudnn.TensorDataType, Cudnn.TypeDataType, 1, &dataType);
            byte v = isVirtual ? (byte)1 : (byte)0, b = byValue ? (byte)1 : (byte)0;
            Set(t, Cudnn.TensorIsVirtual, Cudnn.TypeBoolean, 1, &v);
            if (byValue) Set(t, Cudnn.TensorIsByValue, Cudnn.TypeBoolean, 1, &b);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(t), $"cudnnBackendFinalize(tensor {uid})");
            return t;
        }

        /// <summary>y = mode(x, b) (b = 0: unary); <paramref name="condition"/> is BINARY_SELECT's third input.</summary>
        public nint Pointwise(int mode, int precision, nint x, nint b, nint y, nint condition = 0, long axis = -1)
        {
            nint pw = Create(Cudnn.PointwiseDescriptor);
            Set(pw, Cudnn.PointwiseMode, Cudnn.TypePointwiseMode, 1, &mode);
            Set(pw, Cudnn.PointwiseMathPrecision, Cudnn.TypeDataType, 1, &precision);
            if (axis >= 0) Set(pw, Cudnn.PointwiseAxis, Cudnn.TypeInt64, 1, &axis);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(pw), $"cudnnBackendFinalize(pointwise {mode})");
            nint op = Create(Cudnn.OperationPointwiseDescriptor);
            Set(op, Cudnn.OperationPointwiseDescriptorAttr, Cudnn.TypeBackendDescriptor, 1, &pw);
            Set(op, Cudnn.OperationPointwiseX, Cudnn.TypeBackendDescriptor, 1, &x);
            if (b != 0) Set(op, Cudnn.OperationPointwiseB, Cudnn.TypeBackendDescriptor, 1, &b);
            Set(op, Cudnn.OperationPointwiseY, Cudnn.TypeBackendDescriptor, 1, &y);
            if (condition != 0) Set(op, Cudnn.OperationPointwiseT, Cudnn.TypeBackendDescriptor, 1, &condition);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(op), $"cudnnBackendFinalize(pointwise operation {mode})");
            return op;
        }

        public nint Reduction(int reduceOp, nint x, nint y)
        {
            nint r = Create(Cudnn.ReductionDescriptor);
            Set(r, Cudnn.ReductionOperator, Cudnn.TypeReductionOperator, 1, &reduceOp);
            int compute = Cudnn.DataFloat;
            Set(r, Cudnn.ReductionComputeType, Cudnn.TypeDataType, 1, &compute);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(r), $"cudnnBackendFinalize(reduction {reduceOp})");
            nint op = Create(Cudnn.OperationReductionDescriptor);
            Set(op, Cudnn.OperationReductionX, Cudnn.TypeBackendDescriptor, 1, &x);
            Set(op, Cudnn.OperationReductionY, Cudnn.TypeBackendDescriptor, 1, &y);
            Set(op, Cudnn.OperationReductionDescriptorAttr, Cudnn.TypeBackendDescriptor, 1, &r);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(op), $"cudnnBackendFinalize(reduction operation {reduceOp})");
            return op;
        }

        public nint Matmul(nint a, nint b, nint c)
        {
            nint m = Create(Cudnn.MatmulDescriptor);
            int compute = Cudnn.DataFloat;
            Set(m, Cudnn.MatmulComputeType, Cudnn.TypeDataType, 1, &compute);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(m), "cudnnBackendFinalize(matmul)");
            nint op = Create(Cudnn.OperationMatmulDescriptor);
            Set(op, Cudnn.OperationMatmulA, Cudnn.TypeBackendDescriptor, 1, &a);
            Set(op, Cudnn.OperationMatmulB, Cudnn.TypeBackendDescriptor, 1, &b);
            Set(op, Cudnn.OperationMatmulC, Cudnn.TypeBackendDescriptor, 1, &c);
            Set(op, Cudnn.OperationMatmulDescriptorAttr, Cudnn.TypeBackendDescriptor, 1, &m);
            Cudnn.Check(Cudnn.cudnnBackendFinalize(op), "cudnnBackendFinalize(matmul operation)");
            return op;
        }

        public void Dispose() => Dispose(force: false);

        public void Dispose(bool force)
        {
            if (Shared && !force) return;
            foreach (nint d in _all) Cudnn.cudnnBackendDestroyDescriptor(d);
            _all.Clear();
        }
    }
}
