using MiniMaxSharp.Backends;
using MiniMaxSharp.Backends.Cuda;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests.Cuda;

/// <summary>How the CUDA lightning prefill splits sequences into chunks (host-side planning, no GPU needed).</summary>
public sealed class LightningChunkPlanTests
{
    private static int ItemCount(BatchLayout layout, int heads, int chunk) =>
        layout.Sequences.Sum(s => (s.TokenCount + chunk - 1) / chunk) * heads;

    [Fact]
    public void EnoughSequencesAndHeadsKeepOneChunkPerSequence()
    {
        var layout = BatchLayout.Create([16384, 9000, 16384, 16384, 16384, 16384, 16384, 16384], new int[8]);
        Assert.Equal(16384, CudaBackend.LightningChunkLength(layout, heads: 32, multiprocessors: 132));
    }

    [Fact]
    public void ALongSingleSequenceIsSplitIntoAboutTwoItemsPerMultiprocessor()
    {
        var layout = BatchLayout.Create([131072], [0]);
        int chunk = CudaBackend.LightningChunkLength(layout, heads: 16, multiprocessors: 132);
        Assert.Equal(0, chunk % 64);
        int items = ItemCount(layout, 16, chunk);
        Assert.InRange(items, 2 * 132, 2 * 132 + 16);
    }

    [Fact]
    public void ShortSequencesUseChunksOfAtLeast256Tokens()
    {
        var layout = BatchLayout.Create([600], [0]);
        Assert.Equal(256, CudaBackend.LightningChunkLength(layout, heads: 2, multiprocessors: 132));
        var tiny = BatchLayout.Create([100], [0]);
        Assert.Equal(100, CudaBackend.LightningChunkLength(tiny, heads: 2, multiprocessors: 132));
    }

    [Theory]
    [InlineData(8, 32, 16384, 16384)]     // 256 pairs fill the GPU: one chunk per sequence
    [InlineData(1, 16, 131072, 16384)]    // 8 chunks per head: 128 items, one wave
    [InlineData(1, 64, 65536, 32768)]     // 2 chunks per head: 128 items
    [InlineData(1, 66, 4096, 2048)]       // exactly 132 items
    public void ThePipelinedKernelSplitsIntoOneFullWave(int batch, int heads, int tokens, int expected)
    {
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        Assert.Equal(expected, CudaBackend.LightningPipeChunkLength(layout, heads, multiprocessors: 132));
    }

    [Fact]
    public void ThePipelinedPlanTakesTheShortestChunkThatFitsOneWave()
    {
        var layout = BatchLayout.Create([3000, 1500, 70, 9000], new int[4]);
        int chunk = CudaBackend.LightningPipeChunkLength(layout, heads: 4, multiprocessors: 132);
        Assert.Equal(0, chunk % 64);
        Assert.True(ItemCount(layout, 4, chunk) <= 132);
        Assert.True(ItemCount(layout, 4, chunk - 64) > 132);
    }

    [Fact]
    public void ThePipelinedPlanKeepsChunksOfAtLeast256Tokens()
    {
        Assert.Equal(256, CudaBackend.LightningPipeChunkLength(BatchLayout.Create([600], [0]), heads: 2, multiprocessors: 132));
        Assert.Equal(100, CudaBackend.LightningPipeChunkLength(BatchLayout.Create([100], [0]), heads: 2, multiprocessors: 132));
    }

    private static LightningStatesPlan Plan(BatchLayout layout, int heads, int cutoffBits, int layer = 0, int multiprocessors = 132)
    {
        int chunk = CudaBackend.LightningPipeChunkLength(layout, heads, multiprocessors);
        return CudaBackend.BuildLightningStatesPlan(layout, chunk, LightningDecay.Slopes(heads, layer, 80), cutoffBits, multiprocessors)
            ?? throw new InvalidOperationException("no sequence was split");
    }

    [Theory]
    [InlineData(1, 16, 131072, 64)]
    [InlineData(1, 64, 65536, 64)]
    [InlineData(1, 16, 131072, 0)]
    [InlineData(1, 64, 65536, 0)]
    [InlineData(2, 8, 50000, 64)]
    [InlineData(3, 4, 9000, 16)]
    public void TheStatePlanCoversEveryTokenWithinTheWindowBeforeEachChunkStart(int batch, int heads, int tokens, int cutoffBits)
    {
        var layout = BatchLayout.Create(Enumerable.Range(0, batch).Select(i => tokens - 1000 * i).ToArray(), new int[batch]);
        int chunk = CudaBackend.LightningPipeChunkLength(layout, heads, 132);
        var slopes = LightningDecay.Slopes(heads, 0, 80);
        var plan = CudaBackend.BuildLightningStatesPlan(layout, chunk, slopes, cutoffBits, 132)!;
        int pieces = 0;
        for (int s = 0, chunkBase = 0; s < batch; s++)
        {
            var span = layout.Sequences[s];
            int n = (span.TokenCount + chunk - 1) / chunk;
            for (int h = 0; h < heads; h++)
            {
                int first = plan.SeqItems[2 * (s * heads + h)], count = plan.SeqItems[2 * (s * heads + h) + 1];
                if (n == 1) { Assert.Equal(0, count); continue; }
                var list = Enumerable.Range(first, count).Select(i => (Seq: plan.Items[4 * i], At: plan.Items[4 * i + 1], Tokens: plan.Items[4 * i + 2], Head: plan.Items[4 * i + 3])).ToArray();
                Assert.All(list, it => { Assert.Equal(s, it.Seq); Assert.Equal(h, it.Head); Assert.Equal(0, (it.At - span.TokenOffset) % 64); Assert.Equal(0, it.Tokens % 64); });
                Assert.Equal(span.TokenOffset, list[0].At);                       // the scan starts from the carried state
                Assert.Equal((span.TokenOffset + (n - 1) * chunk, 0), (list[^1].At, list[^1].Tokens));
                for (int i = 1; i < list.Length; i++)
                {
                    Assert.True(list[i].At >= list[i - 1].At + list[i - 1].Tokens, "items overlap or go back");
                    if (list[i - 1].Tokens > 0) Assert.Equal(list[i - 1].At + list[i - 1].Tokens, list[i].At);   // gaps only after 0-token items (the scan relies on it)
                }
                Assert.All(list, it => Assert.InRange(it.Tokens, 0, plan.PieceTokens));
                pieces += list.Count(it => it.Tokens > 0);
                long window = Math.Min(chunk, CudaBackend.LightningDecayWindow(slopes[h], cutoffBits));
                for (int c = 0; c < n; c++)
                {
                    int chunkStart = span.TokenOffset + c * chunk, slot = plan.StartSlot[(chunkBase + c) * heads + h];
                    Assert.Equal(chunkStart, plan.Items[4 * slot + 1]);
                    if (c == 0) continue;
                    // every token of [chunkStart - window, chunkStart) is in exactly one item
                    int covered = list.Sum(it => Math.Max(0, Math.Min(it.At + it.Tokens, chunkStart) - Math.Max(it.At, (int)(chunkStart - window))));
                    Assert.Equal(window, covered);
                }
            }
            chunkBase += n;
        }
        Assert.InRange(pieces, 1, Math.Max(2 * 132, plan.Items.Length));
        Assert.InRange(plan.Count, 1, 4 * 132 + batch * heads);   // MemoryPlan's budget for the slots
        if (cutoffBits == 0) Assert.Equal(0, plan.SkippedTokens);
    }

    [Theory]
    [InlineData(1, 16, 131072, 0.10, 0.20)]   // 8 chunks of 16K: pass 0 reads 15 % of what the full prefix needs
    [InlineData(1, 64, 65536, 0.04, 0.10)]    // 2 chunks of 32K: 7 %
    public void TheCutoffLeavesMostOfPassZeroOutAtLayerZeroDecays(int batch, int heads, int tokens, double low, double high)
    {
        var layout = BatchLayout.Create(Enumerable.Repeat(tokens, batch).ToArray(), new int[batch]);
        var plan = Plan(layout, heads, CudaBackend.DefaultLightningCutoffBits);
        var full = Plan(layout, heads, 0);
        long read(LightningStatesPlan p) => Enumerable.Range(0, p.Count).Sum(i => (long)p.Items[4 * i + 2]);
        Assert.InRange(read(plan) / (double)read(full), low, high);
        Assert.Equal(read(full) - read(plan), plan.SkippedTokens);
        Assert.InRange(Enumerable.Range(0, plan.Count).Count(i => plan.Items[4 * i + 2] > 0), 1, 2 * 132);   // pieces: at most two waves
    }

    [Fact]
    public void SlowDecaysOfDeepLayersKeepTheWholePrefix()
    {
        // Layer 78 of 80: the slowest head decays as exp(-5e-5 n), far beyond a 16K chunk; the fastest still drops tokens.
        var layout = BatchLayout.Create([131072], [0]);
        var slopes = LightningDecay.Slopes(16, 78, 80);
        Assert.True(CudaBackend.LightningDecayWindow(slopes[^1], 64) > 131072);
        Assert.True(CudaBackend.LightningDecayWindow(slopes[0], 64) < 16384);
        Assert.Equal(long.MaxValue, CudaBackend.LightningDecayWindow(0f, 64));
        Assert.Equal(long.MaxValue, CudaBackend.LightningDecayWindow(0.5f, 0));
        Assert.Equal(128, CudaBackend.LightningDecayWindow(0.5f, 64));   // 64 ln 2 / 0.5 = 88.7, up to whole blocks
    }

    /// <summary>The plan and the scan's recurrence (lightning_chunk_scan) in float64 against the token-by-token recurrence:
    /// the chunk start states agree to 1e-12 with the default cutoff, and a plan that dropped tokens it needs is caught.</summary>
    [Theory]
    [InlineData(64, 1e-12, false)]
    [InlineData(0, 1e-12, false)]
    [InlineData(4, 1e-4, true)]    // exp(-s n) ≤ 1/16 dropped: visibly wrong, which is what the check must see
    public void ThePlannedStatesMatchTheRecurrence(int cutoffBits, double bound, bool expectFailure)
    {
        const int d = 2, heads = 4;
        var layout = BatchLayout.Create([5000, 2300], [0, 5000]);
        var slopes = new[] { 0.9f, 0.05f, 0.004f, 0f };
        int chunk = 512;
        var plan = CudaBackend.BuildLightningStatesPlan(layout, chunk, slopes, cutoffBits, multiprocessors: 8)!;
        var rng = new Random(7);
        var k = new double[layout.TotalTokens, heads, d];
        var v = new double[layout.TotalTokens, heads, d];
        foreach (var a in new[] { k, v })
            for (int t = 0; t < layout.TotalTokens; t++) for (int h = 0; h < heads; h++) for (int i = 0; i < d; i++) a[t, h, i] = rng.NextDouble() * 2 - 1;
        var s0 = new double[layout.Count, heads, d, d];
        for (int s = 0; s < layout.Count; s++) for (int h = 0; h < heads; h++) for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) s0[s, h, i, j] = rng.NextDouble();

        double worst = 0;
        for (int s = 0, chunkBase = 0; s < layout.Count; s++)
        {
            var span = layout.Sequences[s];
            int n = (span.TokenCount + chunk - 1) / chunk;
            for (int h = 0; h < heads; h++)
            {
                double lambda = Math.Exp(-slopes[h]);
                // pass 0: each item's own state, decayed to its end; the scan: slot c = state at item c's first token
                int first = plan.SeqItems[2 * (s * heads + h)], count = plan.SeqItems[2 * (s * heads + h) + 1];
                var slot = new double[count, d, d];
                for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) slot[0, i, j] = s0[s, h, i, j];
                for (int c = 1; c < count; c++)
                {
                    int p = first + c - 1, step = plan.Items[4 * (p + 1) + 1] - plan.Items[4 * p + 1], tokens = plan.Items[4 * p + 2];
                    var local = new double[d, d];
                    for (int t = plan.Items[4 * p + 1]; t < plan.Items[4 * p + 1] + tokens; t++)
                        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) local[i, j] = lambda * local[i, j] + k[t, h, i] * v[t, h, j];
                    for (int i = 0; i < d; i++) for (int j = 0; j < d; j++)
                        slot[c, i, j] = Math.Pow(lambda, step) * slot[c - 1, i, j] + local[i, j];
                }
                // the recurrence, compared at each chunk start
                var exact = new double[d, d];
                for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) exact[i, j] = s0[s, h, i, j];
                for (int t = span.TokenOffset, c = 0; c < n; c++)
                {
                    for (; t < span.TokenOffset + c * chunk; t++)
                        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) exact[i, j] = lambda * exact[i, j] + k[t, h, i] * v[t, h, j];
                    if (n == 1) break;
                    int at = plan.StartSlot[(chunkBase + c) * heads + h] - first;
                    double scale = 0, diff = 0;
                    for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { scale = Math.Max(scale, Math.Abs(exact[i, j])); diff = Math.Max(diff, Math.Abs(exact[i, j] - slot[at, i, j])); }
                    worst = Math.Max(worst, diff / scale);
                }
            }
            chunkBase += n;
        }
        if (expectFailure) Assert.True(worst > bound, $"a plan that drops needed tokens went unnoticed ({worst:E2})");
        else Assert.True(worst <= bound, $"chunk start states differ from the recurrence by {worst:E2} (bound {bound:E0})");
        if (cutoffBits > 0) Assert.True(plan.SkippedTokens > 0);
    }

    [Fact]
    public void TheCutoffIsReadFromItsEnvironmentVariable()
    {
        Assert.Equal(64, CudaBackend.ParseLightningCutoff(null));
        Assert.Equal(0, CudaBackend.ParseLightningCutoff(" 0 "));
        Assert.Equal(104, CudaBackend.ParseLightningCutoff("104"));
        var e = Assert.Throws<ArgumentException>(() => CudaBackend.ParseLightningCutoff("-3"));
        Assert.Contains("MINIMAXSHARP_LIGHTNING_CUTOFF", e.Message);
    }

    [Fact]
    public void TheKernelChoiceIsReadFromItsEnvironmentVariable()
    {
        Assert.Equal(LightningPrefillKernel.Hopper, CudaBackend.ParseLightningKernel(null));
        Assert.Equal(LightningPrefillKernel.Pair, CudaBackend.ParseLightningKernel("pair"));
        Assert.Equal(LightningPrefillKernel.Pipelined, CudaBackend.ParseLightningKernel("pipe"));
        Assert.Equal(LightningPrefillKernel.Chunk, CudaBackend.ParseLightningKernel(" Chunk "));
        Assert.Equal(LightningPrefillKernel.Hopper, CudaBackend.ParseLightningKernel("wgmma"));
        var e = Assert.Throws<ArgumentException>(() => CudaBackend.ParseLightningKernel("fast"));
        Assert.Contains("MINIMAXSHARP_LIGHTNING_KERNEL", e.Message);
    }

    [Fact]
    public void EveryPrefillKernelNamesAFunctionOfLightningCu()
    {
        string source = CudaDevice.Source("lightning.cu");
        foreach (var kernel in Enum.GetValues<LightningPrefillKernel>())
            Assert.Matches(@"extern ""C"" __global__ void(\s+__cluster_dims__\([^)]*\))?(\s+__launch_bounds__\([^)]*\))?\s+" + CudaBackend.LightningKernelFunction(kernel) + @"\(", source);
        Assert.Equal(4, Enum.GetValues<LightningPrefillKernel>().Select(CudaBackend.LightningKernelFunction).Distinct().Count());
    }

    [Fact]
    public void KernelExperimentSwitchesBecomeNvrtcOptions()
    {
        Assert.Empty(CudaDevice.ExtraNvrtcOptions(null, null));
        Assert.Empty(CudaDevice.ExtraNvrtcOptions("0", "  "));
        Assert.Equal(["--ptxas-options=-v", "-DA", "-DB=1"], CudaDevice.ExtraNvrtcOptions("1", " A  B=1 "));
    }
}
