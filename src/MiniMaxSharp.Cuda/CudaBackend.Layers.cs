using MiniMaxSharp.Tensors;
using static MiniMaxSharp.Backends.Cuda.Interop.CudaDriver;

namespace MiniMaxSharp.Backends.Cuda;

public sealed unsafe partial class CudaBackend
{
    public void LightningAttention(DeviceTensor qkv, BatchLayout layout, IReadOnlyList<DeviceTensor> states,
        ReadOnlySpan<float> slopes, int headDim, int blockSize, DeviceTensor output)
    {
        var qkvT = AsCuda(qkv);
        var outT = AsCuda(output);
        int heads = slopes.Length, d = headDim;
        if (d <= 0 || qkvT.Cols != 3 * heads * d || qkvT.Rows != layout.TotalTokens || outT.Cols != heads * d || outT.Rows != layout.TotalTokens)
            throw new ArgumentException($"lightning attention: qkv {qkvT}, output {outT}, {heads} heads of {d}, {layout.TotalTokens} tokens");
        if (states.Count != layout.Count) throw new ArgumentException($"{states.Count} states for {layout.Count} sequences");
        var statePtrs = new ulong[states.Count];
        for (int i = 0; i < states.Count; i++)
        {
            var s = AsCuda(states[i]);
            if (s.DType != DType.F32 || s.ElementCount != (long)heads * d * d)
                throw new ArgumentException($"lightning state {s} is not float32 [{heads}, {d}·{d}]");
            statePtrs[i] = s.Pointer;
        }
        if (layout.Count == 0) return;
        _device.MakeCurrent();
        // The tensor-core kernel serves head_dim 128 in bf16 (the model's shape) when the step has more than
        // a few tokens per sequence; decode steps and other shapes take the token-by-token recurrence.
        bool chunked = d == ChunkedHeadDim && qkvT.DType == DType.BF16 && outT.DType == DType.BF16 && layout.TotalTokens >= 16 * layout.Count;
        // Training's bf16 product mode takes the tensor-core kernel for float32 activations too, through bf16 copies of
        // qkv and of the output (the token-by-token recurrence is slow on long training rows).
        bool reducedChunked = !chunked && ReducedProducts && d == ChunkedHeadDim && qkvT.DType == DType.F32 && outT.DType == DType.F32
            && layout.TotalTokens >= 16 * layout.Count;
        if (chunked) LightningChunked(qkvT, layout, statePtrs, slopes, outT);
        else if (reducedChunked)
        {
            _device.Graphs.RequireEager("bf16 lightning attention in training");
            var qkvB = new CudaTensor(_device, DType.BF16, [layout.TotalTokens, qkvT.Cols],
                Bf16Operand("lightning bf16 qkv", qkvT.Pointer, DType.F32, qkvT.ElementCount), owns: false, parent: null);
            var outB = new CudaTensor(_device, DType.BF16, [layout.TotalTokens, outT.Cols],
                Scratch("lightning bf16 output", outT.ElementCount * 2), owns: false, parent: null);
            LightningChunked(qkvB, layout, statePtrs, slopes, outB);
            Convert(outB.Pointer, DType.BF16, outT.Pointer, DType.F32, outT.ElementCount);
        }
        else if (d == LightningDecodeHeadDim && layout.TotalTokens == layout.Count && statePtrs.All(p => p % 16 == 0)) LightningDecode(qkvT, layout, statePtrs, slopes, outT);
        else LightningRecurrent(qkvT, layout, statePtrs, slopes, d, outT);
    }

    /// <summary>Head size of <c>lightning_decode</c> (LD_D in lightning.cu), which serves steps of one token per sequence.</summary>
    private const int LightningDecodeHeadDim = 128;

    private void LightningDecode(CudaTensor qkv, BatchLayout layout, ulong[] statePtrs, ReadOnlySpan<float> slopes, CudaTensor output)
    {
        var meta = new MetaBuilder();
        int offsets = meta.Add(layout.Sequences.Select(s => s.TokenOffset).ToArray());
        int ptrs = meta.Add(statePtrs);
        int slopeAt = meta.Add(slopes);
        ulong m = UploadMeta(meta);
        const int columnsPerBlock = 16;   // LD_COLS
        _device.Kernel("lightning.cu", "lightning_decode").Launch(LightningDecodeHeadDim / columnsPerBlock, (uint)slopes.Length, (uint)layout.Count, 128, 0,
            qkv, qkv.KernelType, output, output.KernelType, m + (ulong)offsets, m + (ulong)ptrs, m + (ulong)slopeAt, slopes.Length);
    }

    private const int ChunkedHeadDim = 128;

    private void LightningRecurrent(CudaTensor qkv, BatchLayout layout, ulong[] statePtrs, ReadOnlySpan<float> slopes, int d, CudaTensor output)
    {
        var meta = new MetaBuilder();
        int offsets = meta.Add(layout.Sequences.Select(s => s.TokenOffset).ToArray());
        int counts = meta.Add(layout.Sequences.Select(s => s.TokenCount).ToArray());
        int ptrs = meta.Add(statePtrs);
        int slopeAt = meta.Add(slopes);
        ulong m = UploadMeta(meta);
        int heads = slopes.Length;
        const int warps = 8;
        int shared = (d * 32 + 2 * d + warps * 32) * sizeof(float);
        _device.Kernel("lightning.cu", "lightning_recurrent").Launch((uint)((d + 31) / 32), (uint)heads, (uint)layout.Count, 32 * warps, shared,
            qkv, qkv.KernelType, output, output.KernelType, m + (ulong)offsets, m + (ulong)counts, m + (ulong)ptrs, m + (ulong)slopeAt, heads, d);
    }

    /// <summary>
    /// Prefill kernel for head_dim 128 in bf16: <see cref="LightningPrefillKernel.Hopper"/> (<c>lightning_wgmma</c>, the
    /// default; it needs sm_90, and elsewhere <c>lightning_pipe</c> runs in its place), <see cref="LightningPrefillKernel.Pipelined"/>
    /// (<c>lightning_pipe</c>, mma.sync), <see cref="LightningPrefillKernel.Chunk"/> (<c>lightning_chunk</c>, the first
    /// kernel) or <see cref="LightningPrefillKernel.Pair"/> (<c>lightning_pair</c>, sm_90: the column split, measured slower
    /// on every benchmark shape), kept for A/B runs; MINIMAXSHARP_LIGHTNING_KERNEL=wgmma|pipe|chunk|pair picks one at start-up.
    /// </summary>
    public LightningPrefillKernel LightningKernel { get; set; } = ParseLightningKernel(Environment.GetEnvironmentVariable("MINIMAXSHARP_LIGHTNING_KERNEL"));

    internal static LightningPrefillKernel ParseLightningKernel(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "wgmma" or "hopper" => LightningPrefillKernel.Hopper,
        "pipe" or "pipelined" => LightningPrefillKernel.Pipelined,
        "chunk" => LightningPrefillKernel.Chunk,
        "pair" => LightningPrefillKernel.Pair,
        _ => throw new ArgumentException($"MINIMAXSHARP_LIGHTNING_KERNEL is '{value}': use 'wgmma' (the default), 'pipe', 'chunk' or 'pair'"),
    };

    /// <summary>Dynamic shared memory of <c>lightning_pipe</c> (LP_SHARED in lightning.cu): q, k, k⊙decay, v tiles and
    /// the bf16 state, each twice (double-buffered), the score tile and the table of decays exp(-s k).</summary>
    private const int LightningPipeShared = (8 * 64 * 136 + 2 * 128 * 136 + 64 * 72) * 2 + 128 * 4;

    /// <summary>Dynamic shared memory of <c>lightning_wgmma</c> (LW_SHARED in lightning.cu): two stages of k, (k⊙decay)ᵀ and
    /// vᵀ tiles (48 KB each), the bf16 Sᵀ (32 KB), raw q, k and v in two slots each (96 KB), the decay table (with
    /// 64 zeros in front: the causal mask),
    /// 18 mbarriers and 1 KB to align the tiles to the 1024-byte swizzle pattern: 226 KB of the H100's 227.</summary>
    private const int LightningWgmmaShared = 2 * 49152 + 32768 + 3 * 2 * 16384 + 768 + 256 + 1024;

    /// <summary>Dynamic shared memory of <c>lightning_pair</c> (LPR_SHARED in lightning.cu): two stages of Q, K, (K⊙decay)ᵀ
    /// (16 KB each) and the half's Vᵀ (8 KB), the half's bf16 Sᵀ (16 KB), three raw slots of the q, k and v halves (24 KB
    /// each), the decay table, 16 mbarriers and 1 KB to align the tiles: 202 KB.</summary>
    private const int LightningPairShared = 2 * 57344 + 16384 + 3 * 24576 + 768 + 256 + 1024;

    /// <summary>Threads of <c>lightning_pair</c> (LPR_THREADS): four warpgroups (q, k, v and the outputs).</summary>
    private const uint LightningPairThreads = 512;

    /// <summary>Whether <c>lightning_wgmma</c> can run here: modules built for sm_90a (wgmma), and its shared memory.</summary>
    public bool LightningWgmmaAvailable => _device.ArchSpecificTarget && _device.MaxSharedMemoryPerBlock >= LightningWgmmaShared;

    /// <summary>The prefill kernels this GPU can run (for A/B checks and benchmarks): <c>lightning_wgmma</c> and
    /// <c>lightning_pair</c> only on sm_90.</summary>
    public LightningPrefillKernel[] LightningPrefillKernels => LightningWgmmaAvailable
        ? [LightningPrefillKernel.Pipelined, LightningPrefillKernel.Hopper, LightningPrefillKernel.Pair, LightningPrefillKernel.Chunk]
        : [LightningPrefillKernel.Pipelined, LightningPrefillKernel.Chunk];

    /// <summary>The CUDA function (in lightning.cu) of a prefill kernel.</summary>
    public static string LightningKernelFunction(LightningPrefillKernel kernel) => kernel switch
    {
        LightningPrefillKernel.Hopper => "lightning_wgmma",
        LightningPrefillKernel.Pair => "lightning_pair",
        LightningPrefillKernel.Pipelined => "lightning_pipe",
        _ => "lightning_chunk",
    };

    /// <summary>Shortest chunk the prefill splits a sequence into: shorter ones cost more in chunk states than they gain.</summary>
    private const int LightningMinChunk = 256;

    /// <summary>
    /// Chunk length for <c>lightning_pipe</c> (one CTA per SM: 214 KB of shared memory): the shortest multiple of 64
    /// (at least 256) whose work items (chunks × heads) still fit in one wave, so that every item runs at once and
    /// no wave is left nearly empty; one chunk per sequence when the sequences and heads alone fill the GPU.
    /// </summary>
    internal static int LightningPipeChunkLength(BatchLayout layout, int heads, int multiprocessors)
    {
        int longest = Math.Max(1, layout.Sequences.Max(s => s.TokenCount));
        long Items(int chunk) => heads * layout.Sequences.Sum(s => (long)((s.TokenCount + chunk - 1) / chunk));
        if (longest <= LightningMinChunk || Items(longest) >= multiprocessors) return longest;
        // Items(chunk) falls as the chunk grows: binary search over multiples of 64.
        int lo = LightningMinChunk / 64, hi = (longest + 63) / 64;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (Items(64 * mid) <= multiprocessors) hi = mid;
            else lo = mid + 1;
        }
        return Math.Min(longest, 64 * lo);
    }

    /// <summary>Chunk length (a multiple of the 64-token block) that gives about two work items per SM (<c>lightning_chunk</c>).</summary>
    internal static int LightningChunkLength(BatchLayout layout, int heads, int multiprocessors)
    {
        int longest = layout.Sequences.Max(s => s.TokenCount);
        if ((long)layout.Count * heads >= multiprocessors) return longest;   // one chunk per sequence fills the GPU already
        long target = 2L * multiprocessors;
        long perItem = Math.Max(256, ((long)layout.TotalTokens * heads + target - 1) / target);
        return (int)Math.Min(longest, (perItem + 63) / 64 * 64);
    }

    /// <summary>The chunked kernels' work items: each sequence cut into chunks of at most <paramref name="chunk"/> tokens,
    /// items[4 i ..] = (sequence, first token, tokens, chunk index), seqItems[2 s ..] = (its first item, its chunk count).</summary>
    private static (List<int> Items, int[] SeqItems) LightningWorkItems(BatchLayout layout, int chunk)
    {
        var items = new List<int>();
        var seqItems = new int[2 * layout.Count];
        for (int s = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            int n = (span.TokenCount + chunk - 1) / chunk;
            seqItems[2 * s] = items.Count / 4;
            seqItems[2 * s + 1] = n;
            for (int c = 0; c < n; c++)
                items.AddRange([s, span.TokenOffset + c * chunk, Math.Min(chunk, span.TokenCount - c * chunk), c]);
        }
        return (items, seqItems);
    }

    private void LightningChunked(CudaTensor qkv, BatchLayout layout, ulong[] statePtrs, ReadOnlySpan<float> slopes, CudaTensor output)
    {
        int heads = slopes.Length;
        if (LightningKernel == LightningPrefillKernel.Pair && LightningWgmmaAvailable)
        {
            LightningPair(qkv, layout, statePtrs, slopes, output);
            return;
        }
        // lightning_wgmma needs sm_90a and 226 KB of shared memory per CTA, lightning_pipe 214 KB (H100: 227 KB); a GPU
        // without them takes the next kernel down, lightning_pipe or lightning_chunk.
        bool hopper = LightningKernel == LightningPrefillKernel.Hopper && LightningWgmmaAvailable;
        bool pipelined = hopper || (LightningKernel != LightningPrefillKernel.Chunk && _device.MaxSharedMemoryPerBlock >= LightningPipeShared);
        int chunk = pipelined ? LightningPipeChunkLength(layout, heads, _device.Multiprocessors) : LightningChunkLength(layout, heads, _device.Multiprocessors);
        var (items, seqItems) = LightningWorkItems(layout, chunk);
        int itemCount = items.Count / 4;
        // Pass 0 and the scan run over the state plan (where they are needed at all); pass 1 over the chunks.
        var plan = BuildLightningStatesPlan(layout, chunk, slopes, LightningCutoffBits, _device.Multiprocessors);
        var meta = new MetaBuilder();
        int itemsAt = meta.Add(items.ToArray()), seqAt = meta.Add(seqItems), ptrs = meta.Add(statePtrs), slopeAt = meta.Add(slopes);
        int planAt = plan is null ? 0 : meta.Add(plan.Items), planSeqAt = plan is null ? 0 : meta.Add(plan.SeqItems);
        int startAt = plan is null ? meta.Add(new int[1]) : meta.Add(plan.StartSlot);
        ulong m = UploadMeta(meta);
        long stateBytes = (long)ChunkedHeadDim * ChunkedHeadDim * 4;
        ulong slots = plan is null ? 0 : Scratch("lightning chunk states", plan.Count * stateBytes);
        const int chunkShared = (4 * 64 * 136 + 128 * 136 + 64 * 72) * 2;   // q, k, k⊙decay, v, S, scores (bf16)
        // lightning_pipe and lightning_wgmma take the same plan and arguments (one CTA per SM either way), lightning_chunk too
        // with 512 threads and its own shared memory.
        var kernel = _device.Kernel("lightning.cu", LightningKernelFunction(
            hopper ? LightningPrefillKernel.Hopper : pipelined ? LightningPrefillKernel.Pipelined : LightningPrefillKernel.Chunk));
        uint threads = hopper ? 384u : pipelined ? 256u : 512u;
        int shared = hopper ? LightningWgmmaShared : pipelined ? LightningPipeShared : chunkShared;
        if (plan is not null)
        {
            kernel.Launch((uint)plan.Count, 1, 1, threads, shared,
                qkv, output, m + (ulong)planAt, m + (ulong)planSeqAt, m + (ulong)ptrs, slots, m + (ulong)slopeAt, heads, 0, m + (ulong)startAt);
            _device.Kernel("lightning.cu", "lightning_chunk_scan").Launch((uint)layout.Count, (uint)heads, (uint)(ChunkedHeadDim * ChunkedHeadDim / 1024), 256, 0,
                m + (ulong)planAt, m + (ulong)planSeqAt, m + (ulong)ptrs, slots, m + (ulong)slopeAt, heads, chunk);
        }
        kernel.Launch((uint)itemCount, (uint)heads, 1, threads, shared,
            qkv, output, m + (ulong)itemsAt, m + (ulong)seqAt, m + (ulong)ptrs, slots, m + (ulong)slopeAt, heads, 1, m + (ulong)startAt);
    }

    /// <summary>lightning_pair: one item per sequence (no chunk states), grid (items × 2, heads).</summary>
    private void LightningPair(CudaTensor qkv, BatchLayout layout, ulong[] statePtrs, ReadOnlySpan<float> slopes, CudaTensor output)
    {
        int heads = slopes.Length;
        var (items, seqItems) = LightningWorkItems(layout, Math.Max(1, layout.Sequences.Max(s => s.TokenCount)));
        var meta = new MetaBuilder();
        int itemsAt = meta.Add(items.ToArray()), seqAt = meta.Add(seqItems), ptrs = meta.Add(statePtrs), slopeAt = meta.Add(slopes);
        ulong m = UploadMeta(meta);
        _device.Kernel("lightning.cu", LightningKernelFunction(LightningPrefillKernel.Pair)).Launch((uint)(2 * (items.Count / 4)), (uint)heads, 1,
            LightningPairThreads, LightningPairShared, qkv, output, m + (ulong)itemsAt, m + (ulong)seqAt, m + (ulong)ptrs, m + (ulong)slopeAt, heads);
    }

    public void SoftmaxAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        IReadOnlyList<KvCache> caches, AttentionShape shape, DeviceTensor output)
    {
        var qs = AsCuda(q);
        var ks = AsCuda(k);
        var vs = AsCuda(v);
        var os = AsCuda(output);
        int d = shape.HeadDim, H = shape.Heads, KV = shape.KvHeads;
        if (qs.Cols != shape.Width || ks.Cols != shape.KvWidth || vs.Cols != shape.KvWidth || os.Cols != shape.Width
            || qs.Rows != layout.TotalTokens || ks.Rows != layout.TotalTokens || vs.Rows != layout.TotalTokens || os.Rows != layout.TotalTokens)
            throw new ArgumentException($"softmax attention: q {qs}, k {ks}, v {vs}, output {os}, shape {shape}");
        if (KV <= 0 || H % KV != 0) throw new ArgumentException($"softmax attention: {H} query heads do not split into groups over {KV} KV heads");
        if (d > 256) throw new NotSupportedException($"softmax attention supports head_dim up to 256, not {d}");
        if (caches.Count != layout.Count) throw new ArgumentException($"{caches.Count} caches for {layout.Count} sequences");
        _device.MakeCurrent();
        int kvw = shape.KvWidth;
        var keyPtrs = new ulong[caches.Count];
        var valuePtrs = new ulong[caches.Count];
        DType? cacheType = null;
        for (int s = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            var kc = AsCuda(caches[s].Keys);
            var vc = AsCuda(caches[s].Values);
            if (span.EndPosition > caches[s].Capacity)
                throw new InvalidOperationException($"KV cache of sequence {s} holds {caches[s].Capacity} positions; {span.EndPosition} needed");
            if (kc.Cols != kvw || vc.Cols != kvw || kc.DType != ks.DType || vc.DType != vs.DType || (cacheType ?? kc.DType) != kc.DType)
                throw new ArgumentException($"KV cache of sequence {s} ({kc}, {vc}) does not match keys {ks} and values {vs}");
            cacheType = kc.DType;
            keyPtrs[s] = kc.Pointer;
            valuePtrs[s] = vc.Pointer;
        }
        int T = layout.TotalTokens;
        if (T == 0) return;
        // Each token's sequence and position and the cache pointer tables go to the device: the KV append
        // and the attention kernels read them there, so a decode step's launches do not change from step to step.
        var tokenSeq = new int[T];
        var tokenPos = new int[T];
        for (int s = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            for (int t = 0; t < span.TokenCount; t++)
            {
                tokenSeq[span.TokenOffset + t] = s;
                tokenPos[span.TokenOffset + t] = span.StartPosition + t;
            }
        }
        bool flash = d == FlashHeadDim && qs.DType == DType.BF16 && os.DType == DType.BF16 && cacheType == DType.BF16 && T >= 16 * layout.Count;
        // Long query runs go to cuDNN's fused attention where it is there; the rest to the flash kernel.
        long cudnnWorkspace = 0;
        bool[]? viaCudnn = flash ? CudnnSequences(layout, shape, out cudnnWorkspace) : null;
        int[] flashItems = flash ? FlashItems(layout, viaCudnn) : [];
        var meta = new MetaBuilder();
        int seqAt = meta.Add(tokenSeq), posAt = meta.Add(tokenPos), keyAt = meta.Add(keyPtrs), valueAt = meta.Add(valuePtrs);
        int itemsAt = flash ? meta.Add(flashItems) : 0;
        ulong m = UploadMeta(meta);
        var args = new AttentionArguments(m + (ulong)seqAt, m + (ulong)posAt, m + (ulong)keyAt, m + (ulong)valueAt);
        long rowUnits = (long)kvw * DTypeInfo.SizeOf(cacheType!.Value) / 2;
        _device.Kernel("attention.cu", "kv_append").Launch(Blocks(T * rowUnits), 1, 1, ElementwiseBlock, 0,
            ks, vs, args.TokenSeq, args.TokenPos, args.KeyCaches, args.ValueCaches, T, rowUnits);
        if (viaCudnn is not null) CudnnAttentionRun(qs, layout, caches, shape, viaCudnn, cudnnWorkspace, os);
        if (flash && flashItems.Length > 0) FlashAttention(qs, flashItems.Length / 4, m + (ulong)itemsAt, args, shape, os);
        else if (!flash) SoftmaxAttentionSplit(qs, T, args, cacheType.Value, shape, os);
    }

    /// <summary>Device addresses of a softmax attention op's per-token sequence and position arrays and its cache pointer tables.</summary>
    private readonly record struct AttentionArguments(ulong TokenSeq, ulong TokenPos, ulong KeyCaches, ulong ValueCaches);

    private const int FlashHeadDim = 128;

    /// <summary>Keys a decode split takes at least (minSplitKeys in attention.cu): one 32-key tile for each of the
    /// GQA kernel's 4 warps, so a short context (4096 keys at batch 1) still spreads over ~64 CTAs instead of 16
    /// CTAs walking 256 keys each.</summary>
    private const int MinDecodeSplitKeys = 128;
    /// <summary>Keys a split of <c>decode_attention_gqa_lanes</c> takes at least: one 8-key round for each of its 4 warps,
    /// so a 4096-key context spreads over ~130 splits per KV head.</summary>
    private const int LanesMinDecodeSplitKeys = 32;

    /// <summary>Which GQA decode kernel runs (bf16 caches, head_dim 128): <c>decode_attention_gqa_lanes</c> by default,
    /// <c>decode_attention_gqa</c> (a lane per key) with MINIMAXSHARP_DECODE_ATTENTION=keys, for A/B.</summary>
    public GqaDecodeKernel GqaDecodeKernel { get; set; } =
        Environment.GetEnvironmentVariable("MINIMAXSHARP_DECODE_ATTENTION") == "keys" ? GqaDecodeKernel.Keys : GqaDecodeKernel.Lanes;

    /// <summary>At most COMBINE_MAX_SPLITS in attention.cu (decode_combine keeps a weight per split in shared memory).</summary>
    private const int MaxDecodeSplits = 256;

    /// <summary>Splits of the keys per (token, head) for flash decoding: enough work items for about four per
    /// SM, from the step's shape only (not its context length), so a decode step launches the same grid at
    /// every position; the kernels divide each token's keys among them (empty splits when the context is short).</summary>
    internal static int DecodeSplits(long workItemsWithoutSplits, int multiprocessors) =>
        (int)Math.Clamp((4L * multiprocessors + workItemsWithoutSplits - 1) / workItemsWithoutSplits, 1, MaxDecodeSplits);

    // Flash decoding: (token, head, split of the keys) work items, then one combine per (token, head).
    private void SoftmaxAttentionSplit(CudaTensor qs, int T, AttentionArguments args, DType cacheType, AttentionShape shape, CudaTensor os)
    {
        int H = shape.Heads, d = shape.HeadDim;
        // The GQA kernel reads each key and value once per group of query heads (head_dim 128, bf16 caches).
        int group = H / shape.KvHeads;
        bool grouped = d == 128 && cacheType == DType.BF16 && qs.DType == DType.BF16 && group <= 8;
        int splits = DecodeSplits((long)T * (grouped ? shape.KvHeads : H), _device.Multiprocessors);
        ulong partial = Scratch("attention partial results", (long)T * H * splits * (d + 2) * 4);
        bool lanes = grouped && GqaDecodeKernel == GqaDecodeKernel.Lanes;
        // The kernels and the combine must agree on the split size, so both take minKeys.
        int minKeys = lanes ? LanesMinDecodeSplitKeys : MinDecodeSplitKeys;
        if (grouped)
            _device.Kernel("attention.cu", lanes ? "decode_attention_gqa_lanes" : "decode_attention_gqa").Launch((uint)T, (uint)shape.KvHeads, (uint)splits, 128, 0,
                qs, args.TokenSeq, args.TokenPos, args.KeyCaches, args.ValueCaches,
                H, shape.KvHeads, 1f / MathF.Sqrt(d), minKeys, splits, partial);
        else
            _device.Kernel("attention.cu", "decode_attention_split").Launch((uint)T, (uint)H, (uint)splits, 128, 0,
                qs, qs.KernelType, args.TokenSeq, args.TokenPos, args.KeyCaches, args.ValueCaches, KernelType(cacheType),
                H, shape.KvHeads, d, 1f / MathF.Sqrt(d), minKeys, splits, partial);
        _device.Kernel("attention.cu", "decode_combine").Launch((uint)T, (uint)H, 1, 128, 0,
            partial, args.TokenPos, minKeys, splits, H, d, os, os.KernelType);
    }

    /// <summary>Queries per flash-attention CTA (FA_BM_WIDE in attention.cu).</summary>
    private const int FlashQueryRows = 128;

    /// <summary>Work items of <see cref="FlashQueryRows"/> queries (sequence, first row, rows, first position), the ones
    /// with the most keys first, so the long causal tiles start early.</summary>
    private static int[] FlashItems(BatchLayout layout, bool[]? skip = null)
    {
        var items = new List<(int Seq, int Row, int Rows, int Pos)>();
        int block = FlashQueryRows;
        for (int s = 0; s < layout.Count; s++)
        {
            if (skip is not null && skip[s]) continue;
            var span = layout.Sequences[s];
            for (int r = 0; r < span.TokenCount; r += block)
                items.Add((s, span.TokenOffset + r, Math.Min(block, span.TokenCount - r), span.StartPosition + r));
        }
        return items.OrderByDescending(i => i.Pos + i.Rows).SelectMany(i => new[] { i.Seq, i.Row, i.Rows, i.Pos }).ToArray();
    }

    private void FlashAttention(CudaTensor qs, int itemCount, ulong items, AttentionArguments args, AttentionShape shape, CudaTensor os)
    {
        int shared = (FlashQueryRows + 4 * 64) * 136 * 2;   // q tile, two k tiles, two v tiles (bf16)
        float scaleLog2 = 1f / MathF.Sqrt(shape.HeadDim) * 1.4426950408889634f;
        _device.Kernel("attention.cu", "flash_attention").Launch(
            (uint)itemCount, (uint)shape.Heads, 1, 128, shared,
            qs, os, items, args.KeyCaches, args.ValueCaches, shape.Heads, shape.KvHeads, scaleLog2);
    }

    // Route on the device, group the (token, choice) pairs by expert, then per expert: gather its tokens,
    // three cuBLAS products with the SwiGLU between, and a weighted combine per token. The host learns the
    // group sizes (E+1 integers) to size the products: the one synchronisation of this op.
    public void MixtureOfExperts(DeviceTensor x, DeviceTensor router, IReadOnlyList<ExpertWeights> experts,
        int topK, DeviceTensor output)
    {
        var xs = AsCuda(x);
        var os = AsCuda(output);
        var rs = AsCuda(router);
        int inter = CheckMoe(xs, rs, experts, topK, os);
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count;
        if (T == 0) return;
        _device.MakeCurrent();
        int pairs = T * topK;
        // Expert activations in the experts' weight dtype (bf16, or float32 for float32 checkpoints);
        // expert outputs in float32 for the weighted combine.
        var act = experts[0].W1.DType;
        int es = DTypeInfo.SizeOf(act);
        var (_, chosen, weights) = Route(xs, rs, E, topK);
        if (pairs <= FewTokenMoePairs)
        {
            MixtureOfExpertsFewTokens(xs, experts, topK, inter, chosen, weights, os);
            return;
        }
        if (T <= PaddedMoeMaxTokens)
        {
            MixtureOfExpertsPadded(xs, experts, topK, inter, chosen, weights, os);
            return;
        }
        var (offsets, slotToken, pairSlot) = GroupPairsByExpert(chosen, pairs, topK, E);
        ulong xg = Scratch("moe gathered inputs", (long)pairs * hidden * es);
        ulong h1 = Scratch("moe gate activations", (long)pairs * inter * es);
        ulong h3 = Scratch("moe up activations", (long)pairs * inter * es);
        ulong yg = Scratch("moe expert outputs", (long)pairs * hidden * 4);
        var groupStart = new int[E + 1];
        fixed (int* g = groupStart) CopyToHost(offsets, g, (E + 1) * 4L);
        GatherExpertInputs(xs, slotToken, pairs, act, xg);
        for (int e = 0; e < E; e++)
        {
            int n = groupStart[e + 1] - groupStart[e];
            if (n == 0) continue;
            var ex = experts[e];
            var w1 = AsCuda(ex.W1);
            var w2 = AsCuda(ex.W2);
            var w3 = AsCuda(ex.W3);
            ulong rowsIn = xg + (ulong)((long)groupStart[e] * hidden * es);
            ulong rowsInter1 = h1 + (ulong)((long)groupStart[e] * inter * es);
            ulong rowsInter3 = h3 + (ulong)((long)groupStart[e] * inter * es);
            Gemm(rowsIn, act, n, hidden, w1.Pointer, w1.DType, inter, rowsInter1, act);
            Gemm(rowsIn, act, n, hidden, w3.Pointer, w3.DType, inter, rowsInter3, act);
        }
        SiluMul(h1, h3, act, (long)pairs * inter);
        for (int e = 0; e < E; e++)
        {
            int n = groupStart[e + 1] - groupStart[e];
            if (n == 0) continue;
            var w2 = AsCuda(experts[e].W2);
            Gemm(h1 + (ulong)((long)groupStart[e] * inter * es), act, n, inter, w2.Pointer, w2.DType, hidden,
                yg + (ulong)((long)groupStart[e] * hidden * 4), DType.F32);
        }
        _device.Kernel("moe.cu", "moe_combine").Launch(RowBlocks(T), 1, 1, ElementwiseBlock, 0,
            yg, 0, pairSlot, weights, topK, os, os.KernelType, T, hidden);
    }

    /// <summary>
    /// Up to this many tokens a MoE op of more than <see cref="FewTokenMoePairs"/> pairs (decode batches) gives every
    /// expert a group of T rows, the tokens that chose it and then padding (<see cref="MixtureOfExpertsPadded"/>): fixed
    /// shapes and no host round trip, so such decode steps run as graphs. The padding multiplies E·T rows where T·k are
    /// needed; these products are bound by reading the experts' weights (about T/130 of that time in FLOPs at 3 TB/s and
    /// ~400 TFLOP/s), so up to 64 tokens the waste stays under the weights' read time, and above it the exact grouping
    /// takes over.
    /// </summary>
    private const int PaddedMoeMaxTokens = 64;

    // The grouping on the device (as the general path), then padded groups of T rows per expert: the products' shapes
    // depend only on T and E, never on how the tokens chose.
    private void MixtureOfExpertsPadded(CudaTensor xs, IReadOnlyList<ExpertWeights> experts, int topK, int inter, ulong chosen,
        ulong weights, CudaTensor os)
    {
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count, pairs = T * topK, rows = E * T;
        var act = experts[0].W1.DType;
        int es = DTypeInfo.SizeOf(act);
        var (offsets, slotToken, pairSlot) = GroupPairsByExpert(chosen, pairs, topK, E);
        ulong rowToken = Scratch("moe padded row tokens", rows * 4L);
        ulong pairRow = Scratch("moe padded pair rows", pairs * 4L);
        ulong xg = Scratch("moe gathered inputs", (long)rows * hidden * es);
        ulong h1 = Scratch("moe gate activations", (long)rows * inter * es);
        ulong h3 = Scratch("moe up activations", (long)rows * inter * es);
        ulong yg = Scratch("moe expert outputs", (long)rows * hidden * 4);
        _device.Kernel("moe.cu", "moe_pad_rows").Launch(Blocks(Math.Max(rows, pairs)), 1, 1, ElementwiseBlock, 0,
            chosen, offsets, slotToken, pairSlot, pairs, T, E, rowToken, pairRow);
        GatherExpertInputs(xs, rowToken, rows, act, xg);
        ulong In(int e) => xg + (ulong)((long)e * T * hidden * es);
        ulong Gate(int e) => h1 + (ulong)((long)e * T * inter * es);
        ulong Up(int e) => h3 + (ulong)((long)e * T * inter * es);
        ulong Out(int e) => yg + (ulong)((long)e * T * hidden * 4);
        // bf16 experts: each of the three products for all experts in one batched cuBLAS call (the experts' weights through
        // the pointer tables of the few-token path, the rows' addresses as op arguments); otherwise one product per expert.
        var (w1s, w3s, w2s, aligned) = act == DType.BF16 ? ExpertPointerTables(experts) : default;
        bool batched = act == DType.BF16 && aligned && hidden % 8 == 0 && inter % 8 == 0;
        ulong m = 0;
        int inAt = 0, gateAt = 0, upAt = 0, outAt = 0;
        if (batched)
        {
            var meta = new MetaBuilder();
            ulong[] Table(Func<int, ulong> rowsOf) => Enumerable.Range(0, E).Select(rowsOf).ToArray();
            (inAt, gateAt, upAt, outAt) = (meta.Add(Table(In)), meta.Add(Table(Gate)), meta.Add(Table(Up)), meta.Add(Table(Out)));
            m = UploadMeta(meta);
            GemmBatchedBf16(m + (ulong)inAt, T, hidden, w1s, inter, m + (ulong)gateAt, act, E);
            GemmBatchedBf16(m + (ulong)inAt, T, hidden, w3s, inter, m + (ulong)upAt, act, E);
        }
        else
            for (int e = 0; e < E; e++)
            {
                var w1 = AsCuda(experts[e].W1);
                var w3 = AsCuda(experts[e].W3);
                Gemm(In(e), act, T, hidden, w1.Pointer, w1.DType, inter, Gate(e), act);
                Gemm(In(e), act, T, hidden, w3.Pointer, w3.DType, inter, Up(e), act);
            }
        SiluMul(h1, h3, act, (long)rows * inter);
        if (batched) GemmBatchedBf16(m + (ulong)gateAt, T, inter, w2s, hidden, m + (ulong)outAt, DType.F32, E);
        else
            for (int e = 0; e < E; e++)
            {
                var w2 = AsCuda(experts[e].W2);
                Gemm(Gate(e), act, T, inter, w2.Pointer, w2.DType, hidden, Out(e), DType.F32);
            }
        _device.Kernel("moe.cu", "moe_combine").Launch(RowBlocks(T), 1, 1, ElementwiseBlock, 0,
            yg, 0, pairRow, weights, topK, os, os.KernelType, T, hidden);
    }

    /// <summary>h1 = SiLU(h1) ⊙ h3 over <paramref name="elements"/> expert activations (the SwiGLU between the products).</summary>
    private void SiluMul(ulong h1, ulong h3, DType act, long elements)
    {
        int code = KernelType(act);
        _device.Kernel("elementwise.cu", "silu_mul").Launch(Blocks(elements), 1, 1, ElementwiseBlock, 0, h1, code, h3, code, elements);
    }

    /// <summary>The (token, choice) pairs grouped by expert on the device, in the forward's named scratch buffers (see
    /// <see cref="GroupByExpert"/>).</summary>
    private (ulong Offsets, ulong SlotToken, ulong PairSlot) GroupPairsByExpert(ulong chosen, int pairs, int topK, int E)
    {
        ulong offsets = Scratch("moe offsets", (E + 1) * 4L);
        ulong slotToken = Scratch("moe slot tokens", pairs * 4L);
        ulong pairSlot = Scratch("moe pair slots", pairs * 4L);
        GroupByExpert(chosen, pairs, topK, E, offsets, slotToken, pairSlot);
        return (offsets, slotToken, pairSlot);
    }

    /// <summary>Gathers the token rows <paramref name="tokenOfRow"/> names (in x's dtype), then brings them to the experts'
    /// dtype in <paramref name="destination"/>.</summary>
    private void GatherExpertInputs(CudaTensor xs, ulong tokenOfRow, int rows, DType act, ulong destination)
    {
        ulong gathered = xs.DType == act ? destination : Scratch("moe gathered rows", (long)rows * xs.Cols * DTypeInfo.SizeOf(xs.DType));
        GatherRowsOnDevice(xs, tokenOfRow, rows, new CudaTensor(_device, xs.DType, [rows, xs.Cols], gathered, owns: false, parent: null));
        if (gathered != destination) Convert(gathered, xs.DType, destination, act, (long)rows * xs.Cols);
    }

    /// <summary>Pairs handled by one block of the grouping passes (moe.cu: moe_group_*).</summary>
    private const int MoeGroupChunk = 2048;
    private const int MoeGroupThreads = 256;   // MOE_GROUP_THREADS in moe.cu

    /// <summary>
    /// Groups the (token, choice) pairs of <paramref name="chosen"/> by expert on the device: offsets [E+1], and for
    /// expert-major slots (pair order inside an expert) slotToken[slot] = token, pairSlot[pair] = slot.
    /// </summary>
    private void GroupByExpert(ulong chosen, int pairs, int topK, int E, ulong offsets, ulong slotToken, ulong pairSlot)
    {
        int chunks = (pairs + MoeGroupChunk - 1) / MoeGroupChunk;
        ulong chunkCounts = Scratch("moe chunk counts", Math.Max(1L, (long)chunks * E) * 4);
        _device.Kernel("moe.cu", "moe_group_count").Launch((uint)chunks, 1, 1, 256, E * 4, chosen, pairs, E, MoeGroupChunk, chunkCounts);
        _device.Kernel("moe.cu", "moe_group_scan").Launch(1, 1, 1, 256, E * 4, chunkCounts, chunks, E, offsets);
        int shared = (E + MoeGroupThreads / 32 * E) * 4;
        _device.Kernel("moe.cu", "moe_group_scatter").Launch((uint)chunks, 1, 1, MoeGroupThreads, shared,
            chosen, pairs, topK, E, MoeGroupChunk, chunkCounts, slotToken, pairSlot);
    }

    /// <summary>Validates a MoE op's shapes; returns the experts' intermediate size.</summary>
    private static int CheckMoe(CudaTensor xs, CudaTensor rs, IReadOnlyList<ExpertWeights> experts, int topK, CudaTensor os)
    {
        int T = (int)xs.Rows, hidden = xs.Cols, E = experts.Count;
        if (E == 0 || rs.Rows != E || rs.Cols != hidden || os.Rows != T || os.Cols != hidden || topK < 1 || topK > E)
            throw new ArgumentException($"MoE: x {xs}, router {rs}, {E} experts, top-{topK}, output {os}");
        int inter = (int)experts[0].W1.Rows;
        foreach (var ex in experts)
            if (ex.W1.DType != experts[0].W1.DType || ex.W2.DType != ex.W1.DType || ex.W3.DType != ex.W1.DType
                || ex.W1.Rows != inter || ex.W1.Cols != hidden || ex.W3.Rows != inter || ex.W3.Cols != hidden || ex.W2.Rows != hidden || ex.W2.Cols != inter)
                throw new ArgumentException($"MoE: expert weights w1 {ex.W1}, w3 {ex.W3}, w2 {ex.W2} do not fit hidden {hidden}, intermediate {inter} and one dtype");
        return inter;
    }

    /// <summary>Experts <c>scale_add_rms_norm_route</c> routes at most (ROUTE_MAX_EXPERTS in moe.cu).</summary>
    private const int FusedRouteMaxExperts = 64;

    // Few bf16 tokens (decode): the residual add, the norm and the routing in one launch
    // (scale_add_rms_norm_route), then the few-token expert kernels; otherwise the two ops.
    public void ScaleAddRmsNormMoe(DeviceTensor a, float alpha, DeviceTensor b, float beta, DeviceTensor residual,
        DeviceTensor weight, float eps, DeviceTensor normed, DeviceTensor router, IReadOnlyList<ExpertWeights> experts,
        int topK, DeviceTensor output)
    {
        var sa = AsCuda(a);
        var sb = AsCuda(b);
        var r = AsCuda(residual);
        var w = AsCuda(weight);
        var ns = AsCuda(normed);
        var rs = AsCuda(router);
        var os = AsCuda(output);
        int T = (int)r.Rows, cols = r.Cols, E = experts.Count;
        // Exactly one 8-column piece per thread (the kernel holds one), and a thread per expert for the final sums;
        // at most MaxNormThreads threads (registers: wider rows take the two ops).
        uint normThreads = NormThreads(cols, sa.Pointer, sb.Pointer, r.Pointer, w.Pointer, ns.Pointer, rs.Pointer);
        uint threads = (uint)Math.Max((cols / 8 + 31) / 32 * 32, (E + 31) / 32 * 32);
        bool fused = T > 0 && T * topK <= FewTokenMoePairs && normThreads > 0 && threads <= MaxNormThreads
            && E <= FusedRouteMaxExperts && ns.DType == DType.BF16 && rs.DType == DType.BF16
            && sa.ElementCount == r.ElementCount && sb.ElementCount == r.ElementCount && w.ElementCount == cols && ns.Rows == T && ns.Cols == cols;
        if (!fused)
        {
            ScaleAddRmsNorm(a, alpha, b, beta, residual, weight, eps, normed);
            MixtureOfExperts(normed, router, experts, topK, output);
            return;
        }
        int inter = CheckMoe(ns, rs, experts, topK, os);
        _device.MakeCurrent();
        ulong logits = Scratch("moe router logits", (long)T * E * 4);
        ulong chosen = Scratch("moe choices", (long)T * topK * 4);
        ulong weights = Scratch("moe weights", (long)T * topK * 4);
        _device.Kernel("moe.cu", "scale_add_rms_norm_route").Launch((uint)T, 1, 1, threads, 0,
            sa, sa.KernelType, alpha, sb, sb.KernelType, beta, r, r.KernelType, w, w.KernelType, ns, cols, eps,
            rs, E, topK, logits, chosen, weights);
        MixtureOfExpertsFewTokens(ns, experts, topK, inter, chosen, weights, os);
    }

    /// <summary>Router logits [T, E] (float32 product, also in training's bf16 product mode, so routing is the float32 one), then each token's top-k experts and renormalised weights [T, k] (<c>router_topk</c>), in scratch buffers.
    /// A few bf16 tokens (decode) take <c>router_decode</c>: both in one launch.</summary>
    private (ulong Logits, ulong Chosen, ulong Weights) Route(CudaTensor xs, CudaTensor rs, int E, int topK)
    {
        int T = (int)xs.Rows;
        ulong logits = Scratch("moe router logits", (long)T * E * 4);
        ulong chosen = Scratch("moe choices", (long)T * topK * 4);
        ulong weights = Scratch("moe weights", (long)T * topK * 4);
        if (T * topK <= FewTokenMoePairs && xs.DType == DType.BF16 && rs.DType == DType.BF16 && xs.Cols % 8 == 0
            && xs.Pointer % 16 == 0 && rs.Pointer % 16 == 0)
        {
            _device.Kernel("moe.cu", "router_decode").Launch((uint)T, 1, 1, 256, E * 4, xs, rs, xs.Cols, E, topK, logits, chosen, weights);
            return (logits, chosen, weights);
        }
        Gemm(xs.Pointer, xs.DType, T, xs.Cols, rs.Pointer, rs.DType, E, logits, DType.F32, exact: true);
        _device.Kernel("moe.cu", "router_topk").Launch((uint)((T + 127) / 128), 1, 1, 128, 0, logits, T, E, topK, chosen, weights);
        return (logits, chosen, weights);
    }

    /// <summary>At most this many (token, choice) pairs take the few-token MoE path (decode batches of a few sequences).</summary>
    private const int FewTokenMoePairs = 16;

    // Few tokens: one kernel computes SiLU(x·w1ᵀ)⊙(x·w3ᵀ) for every (token, choice) pair and one the weighted
    // sum of the down products, both reading the chosen experts' weights through device pointer tables. No
    // grouping and no host round trip, so a decode step never waits for the GPU here.
    private void MixtureOfExpertsFewTokens(CudaTensor xs, IReadOnlyList<ExpertWeights> experts, int topK, int inter,
        ulong chosen, ulong weights, CudaTensor os)
    {
        int T = (int)xs.Rows, hidden = xs.Cols, pairs = T * topK;
        var wType = experts[0].W1.DType;
        var (w1s, w3s, w2s, aligned) = ExpertPointerTables(experts);
        ulong h = Scratch("moe few-token activations", (long)pairs * inter * 4);
        bool bf16 = wType == DType.BF16 && aligned;
        int vecUp = bf16 && xs.DType == DType.BF16 && hidden % 8 == 0 && xs.Pointer % 16 == 0 ? 1 : 0;
        int vecDown = bf16 && inter % 8 == 0 ? 1 : 0;
        // vec 2: the block stages the token's input row (up) or activation rows (down) in shared memory once.
        int upShared = vecUp == 1 && hidden * 2 <= MaxStagedBytes ? hidden * 2 : 0;
        int downShared = vecDown == 1 && topK * inter * 4 <= MaxStagedBytes ? topK * inter * 4 : 0;
        const int warps = 8;
        int wCode = KernelType(wType);
        _device.Kernel("moe.cu", "moe_decode_up").Launch((uint)((inter + warps - 1) / warps), (uint)pairs, 1, 32 * warps, upShared,
            xs, xs.KernelType, chosen, topK, w1s, w3s, wCode, hidden, inter, upShared > 0 ? 2 : vecUp, h);
        _device.Kernel("moe.cu", "moe_decode_down").Launch((uint)((hidden + warps - 1) / warps), (uint)T, 1, 32 * warps, downShared,
            h, chosen, weights, topK, w2s, wCode, inter, hidden, downShared > 0 ? 2 : vecDown, os, os.KernelType);
    }

    private readonly Dictionary<ulong, (ulong[] Host, ulong Device)> _expertTables = [];

    /// <summary>Device tables of the experts' w1, w3 and w2 pointers, uploaded once per expert set and kept
    /// (keyed by the first expert's w1, checked against the full list); aligned: every pointer is 16-byte aligned.</summary>
    private (ulong W1s, ulong W3s, ulong W2s, bool Aligned) ExpertPointerTables(IReadOnlyList<ExpertWeights> experts)
    {
        int E = experts.Count;
        var host = new ulong[3 * E];
        for (int e = 0; e < E; e++)
        {
            host[e] = AsCuda(experts[e].W1).Pointer;
            host[E + e] = AsCuda(experts[e].W3).Pointer;
            host[2 * E + e] = AsCuda(experts[e].W2).Pointer;
        }
        if (!_expertTables.TryGetValue(host[0], out var table) || !table.Host.AsSpan().SequenceEqual(host))
        {
            if (table.Device != 0)
            {
                _device.Synchronize();   // queued kernels may still read the old table
                _device.Free(table.Device);
            }
            ulong p = _device.Allocate(host.Length * 8L, "the MoE expert pointer table");
            fixed (ulong* h = host) CopyToDevice(h, p, host.Length * 8L);
            table = (host, p);
            _expertTables[host[0]] = table;
        }
        bool aligned = host.All(ptr => ptr % 16 == 0);
        ulong d = table.Device;
        return (d, d + (ulong)(E * 8), d + (ulong)(2 * E * 8), aligned);
    }
}

/// <summary>Which kernel runs lightning attention prefill for head_dim 128 in bf16 (see <see cref="CudaBackend.LightningKernel"/>).</summary>
public enum LightningPrefillKernel
{
    /// <summary><c>lightning_pipe</c>: 8 warps in two roles (outputs, state), double-buffered staging, two barriers per block.</summary>
    Pipelined,
    /// <summary><c>lightning_chunk</c>: 16 warps, every warp on every stage, three barriers per block (the earlier kernel).</summary>
    Chunk,
    /// <summary><c>lightning_wgmma</c> (sm_90): three warpgroups (SiLU staging, state, outputs) handing tiles over through
    /// mbarriers, products on wgmma; few long sequences are split along time (chunk states, then outputs).</summary>
    Hopper,
    /// <summary><c>lightning_pair</c> (sm_90): each (sequence, head) split by state columns over a pair of CTAs (a cluster of
    /// 2) that send each other the SiLU of their halves of q and k, so q, k and v are read once; slower than
    /// <c>lightning_wgmma</c> on every benchmark shape (docs/cuda.md), kept for A/B runs.</summary>
    Pair,
}

/// <summary>The GQA decode attention kernels: lanes over channels (default) or a lane per key (the earlier one).</summary>
public enum GqaDecodeKernel
{
    Lanes,
    Keys,
}
