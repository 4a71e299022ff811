using System.Runtime.CompilerServices;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>
/// Where pass 0 of the chunked lightning prefill works (lc_item in lightning.cu): one list of items per (sequence, head),
/// each item <c>(sequence, first token, tokens, head)</c>; item i writes the state of its own tokens into slot i + 1,
/// and the scan writes into the slot of each item at a chunk start the state at that token.
/// <see cref="StartSlot"/>[chunk · heads + head] is the slot pass 1 of that chunk starts from.
/// </summary>
/// <param name="Items">4 ints per item, the lists one after another.</param>
/// <param name="SeqItems">2 ints per (sequence · heads + head): its list's first item and length (0 for a sequence of one
/// chunk, which keeps its state in place).</param>
/// <param name="StartSlot">Per pass-1 item (chunk) and head.</param>
/// <param name="PieceTokens">The longest piece: pass 0's work items are the needed tokens of each chunk cut into
/// pieces of at most this many.</param>
/// <param name="SkippedTokens">Tokens of (chunk, head) pairs that pass 0 leaves out because of the decay cutoff.</param>
internal sealed record LightningStatesPlan(int[] Items, int[] SeqItems, int[] StartSlot, int PieceTokens, long SkippedTokens)
{
    public int Count => Items.Length / 4;
}

public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// Pass 0 leaves out a token whose decay to the next chunk start, exp(-s n), is at most 2^-bits: its weight there and
    /// at every later position. 0 = the whole prefix (the exact chunk recurrence). Default 64: a dropped term is below
    /// 2^-64 of the state it sat in, 2^-40 of float32 rounding (docs/cuda.md, "Decay cutoff").
    /// MINIMAXSHARP_LIGHTNING_CUTOFF sets it at start-up.
    /// </summary>
    public int LightningCutoffBits { get; set; } = ParseLightningCutoff(Environment.GetEnvironmentVariable("MINIMAXSHARP_LIGHTNING_CUTOFF"));

    internal const int DefaultLightningCutoffBits = 64;

    internal static int ParseLightningCutoff(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return DefaultLightningCutoffBits;
        if (int.TryParse(value.Trim(), out int bits) && bits >= 0 && bits <= 1000) return bits;
        throw new ArgumentException($"MINIMAXSHARP_LIGHTNING_CUTOFF is '{value}': use a number of bits from 0 (off: the exact prefix) to 1000");
    }

    /// <summary>Tokens before a chunk start that pass 0 must read for a head of this slope: the smallest multiple of 64
    /// with exp(-slope · n) ≤ 2^-bits; <see cref="long.MaxValue"/> when there is no cutoff (bits 0, or no decay).</summary>
    internal static long LightningDecayWindow(float slope, int cutoffBits)
    {
        if (cutoffBits <= 0 || !(slope > 0)) return long.MaxValue;
        double tokens = cutoffBits * Math.Log(2) / slope;
        return tokens >= 1L << 40 ? long.MaxValue : (long)Math.Ceiling(tokens / 64) * 64;
    }

    /// <summary>Cost of a pass-0 item beyond its blocks, in blocks (CTA start, decay table, the pipeline's first loads,
    /// the 64 KB slot written and scanned): what makes many small pieces lose to fewer larger ones.</summary>
    private const int LightningPieceOverheadBlocks = 4;

    /// <summary>
    /// The state plan for a chunk length (chunks of every sequence as <see cref="LightningWorkItems"/> cuts them;
    /// null when no sequence has more than one). For chunk c ≥ 1 pass 1 needs the state at its first token; pass 0 reads
    /// only the tokens within the head's decay window before it (<see cref="LightningDecayWindow"/>, all of chunk c - 1
    /// when the window is longer), so the needed tokens of chunk c - 1 are its last min(chunk, window). Those are cut into
    /// pieces of at most P blocks, P picked to minimise (all pieces' blocks + overheads) / SMs + the longest piece (about
    /// the pass's time whether it is bound by bandwidth or by one CTA's chain), with at most two pieces per SM so that
    /// the slots stay within the memory plan. A chunk start that is not a piece's start gets an item of 0 tokens. Runs
    /// for every lightning layer of a prefill step, so it is a few microseconds of host time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static LightningStatesPlan? BuildLightningStatesPlan(BatchLayout layout, int chunk, ReadOnlySpan<float> slopes, int cutoffBits,
        int multiprocessors)
    {
        int heads = slopes.Length, sequences = layout.Count;
        var chunks = new int[sequences];
        long regions = 0, chunkTotal = 0;
        for (int s = 0; s < sequences; s++)
        {
            chunks[s] = (layout.Sequences[s].TokenCount + chunk - 1) / chunk;
            regions += Math.Max(0, chunks[s] - 1);
            chunkTotal += chunks[s];
        }
        if (regions == 0) return null;
        if (chunk % 64 != 0) throw new ArgumentException($"chunk length {chunk} is not a multiple of the 64-token block", nameof(chunk));
        // Needed blocks before each chunk start, per head (the same for every chunk: all but the last are full).
        var needed = new int[heads];
        int maxNeed = 1;
        for (int h = 0; h < heads; h++) maxNeed = Math.Max(maxNeed, needed[h] = (int)(Math.Min(chunk, LightningDecayWindow(slopes[h], cutoffBits)) / 64));

        // Piece length P (blocks): candidates from 4 (256 tokens, unless every range is shorter) up to the longest range,
        // about 9 % apart (the cost model is no finer than that).
        int best = maxNeed;
        double bestCost = double.MaxValue;
        for (int p = Math.Min(maxNeed, 4); ; p = Math.Min(maxNeed, Math.Max(p + 1, p * 12 / 11)))
        {
            long count = 0, blocks = 0;
            int longest = 0;
            foreach (int need in needed)
            {
                int k = (need + p - 1) / p;
                count += k;
                blocks += need;
                longest = Math.Max(longest, (need + k - 1) / k);
            }
            count *= regions;
            blocks *= regions;
            if (count <= 2L * multiprocessors || p == maxNeed)
            {
                double cost = (blocks + (double)LightningPieceOverheadBlocks * count) / multiprocessors + longest + LightningPieceOverheadBlocks;
                if (cost < bestCost) { bestCost = cost; best = p; }
            }
            if (p == maxNeed) break;
        }

        // Items: per (sequence, head) and chunk c < n - 1 a 0-token item at the chunk start unless the needed range starts
        // there, then the pieces; a 0-token item at the last chunk's start.
        int perRegion = 0;
        foreach (int need in needed) perRegion += (need + best - 1) / best + (need * 64 < chunk ? 1 : 0);
        int split = 0;
        foreach (int n in chunks) split += n > 1 ? 1 : 0;
        int itemCount = (int)(regions * perRegion + (long)split * heads);
        var items = new int[4 * itemCount];
        var seqItems = new int[2 * sequences * heads];
        var startSlot = new int[chunkTotal * heads];
        long skipped = 0;
        int pieceTokens = 0, next = 0;
        for (int s = 0, chunkBase = 0; s < sequences; chunkBase += chunks[s], s++)
        {
            int n = chunks[s], start = layout.Sequences[s].TokenOffset;
            if (n <= 1) continue;
            for (int h = 0; h < heads; h++)
            {
                int first = next, need = needed[h], k = (need + best - 1) / best;
                for (int c = 0; c < n; c++)
                {
                    int chunkStart = start + c * chunk;
                    startSlot[(chunkBase + c) * heads + h] = next;
                    if (c == n - 1) { PutItem(items, ref next, s, chunkStart, 0, h); break; }
                    int from = chunkStart + chunk - 64 * need;   // the needed tokens: the last `need` blocks of the chunk
                    skipped += from - chunkStart;
                    if (from > chunkStart) PutItem(items, ref next, s, chunkStart, 0, h);
                    for (int j = 0, at = from; j < k; j++)
                    {
                        int size = 64 * (need / k + (j < need % k ? 1 : 0));
                        PutItem(items, ref next, s, at, size, h);
                        pieceTokens = Math.Max(pieceTokens, size);
                        at += size;
                    }
                }
                seqItems[2 * (s * heads + h)] = first;
                seqItems[2 * (s * heads + h) + 1] = next - first;
            }
        }
        if (next != itemCount) throw new InvalidOperationException($"lightning state plan: {next} items built, {itemCount} counted");
        return new LightningStatesPlan(items, seqItems, startSlot, pieceTokens, skipped);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PutItem(int[] items, ref int next, int sequence, int first, int tokens, int head)
    {
        items[4 * next] = sequence;
        items[4 * next + 1] = first;
        items[4 * next + 2] = tokens;
        items[4 * next + 3] = head;
        next++;
    }
}
