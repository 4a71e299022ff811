// CPU check of the lightning prefill kernels (see run.sh): each case runs the chunk plan of CudaBackend (both
// kernels' plans, with a chosen SM count so that the split paths run), the kernels through the emulation, and
// compares outputs and final states with a float64 recurrence (bound 5e-3, as minimax verify).
#include "kernels.inc"
#include <random>
#include <climits>
#include "emu_launch.h"

static int pipePlan(const std::vector<int>& counts, int heads, int sms)
{
    int longest = std::max(1, *std::max_element(counts.begin(), counts.end()));
    auto items = [&](int c) { long n = 0; for (int t : counts) n += (t + c - 1) / c; return heads * n; };
    if (longest <= 256 || items(longest) >= sms) return longest;
    int lo = 4, hi = (longest + 63) / 64;
    while (lo < hi) { int mid = (lo + hi) / 2; if (items(64 * mid) <= sms) hi = mid; else lo = mid + 1; }
    return std::min(longest, 64 * lo);
}
// CudaBackend.BuildLightningStatesPlan (pass 0 and the scan; see there): per (sequence, head) a list of items (seq, first
// token, tokens, head) starting at the sequence's first token and ending with a 0-token item at its last chunk's start;
// before each chunk start the last min(chunk, window) tokens in pieces of at most p blocks.
struct StatesPlan { std::vector<int> items, seqItems, startSlot; int pieceBlocks = 0; };
static long decayWindow(float slope, int bits)
{
    if (bits <= 0 || !(slope > 0)) return LONG_MAX;
    double tokens = bits * std::log(2.0) / slope;
    return tokens >= (double)(1L << 40) ? LONG_MAX : (long)std::ceil(tokens / 64) * 64;
}
static StatesPlan statesPlan(const std::vector<int>& counts, const std::vector<int>& offs, int chunk, const std::vector<float>& slopes,
    int bits, int sms)
{
    int B = counts.size(), heads = slopes.size();
    std::vector<int> chunks(B); long regions = 0, chunkTotal = 0;
    for (int s = 0; s < B; s++) { chunks[s] = (counts[s] + chunk - 1) / chunk; regions += std::max(0, chunks[s] - 1); chunkTotal += chunks[s]; }
    StatesPlan plan; plan.seqItems.assign(2 * B * heads, 0); plan.startSlot.assign(chunkTotal * heads, 0);
    if (regions == 0) return plan;
    std::vector<int> need(heads);
    for (int h = 0; h < heads; h++) need[h] = (int)(std::min((long)chunk, decayWindow(slopes[h], bits)) / 64);
    int maxNeed = *std::max_element(need.begin(), need.end()), best = maxNeed; double bestCost = 1e300;
    for (int p = std::min(maxNeed, 4); ; p = std::min(maxNeed, std::max(p + 1, p * 12 / 11)))
    {
        long count = 0, blocks = 0; int longest = 0;
        for (int n : need) { int k = (n + p - 1) / p; count += k; blocks += n; longest = std::max(longest, (n + k - 1) / k); }
        count *= regions; blocks *= regions;
        if (count <= 2L * sms || p == maxNeed)
        {
            double cost = (blocks + 4.0 * count) / sms + longest + 4;
            if (cost < bestCost) { bestCost = cost; best = p; }
        }
        if (p == maxNeed) break;
    }
    auto add = [&](int s, int at, int tokens, int h) { int v[4] = { s, at, tokens, h }; plan.items.insert(plan.items.end(), v, v + 4); };
    for (int s = 0, chunkBase = 0; s < B; chunkBase += chunks[s], s++)
    {
        int n = chunks[s];
        if (n <= 1) continue;
        for (int h = 0; h < heads; h++)
        {
            int first = plan.items.size() / 4, k = (need[h] + best - 1) / best;
            for (int c = 0; c < n; c++)
            {
                int chunkStart = offs[s] + c * chunk;
                plan.startSlot[(chunkBase + c) * heads + h] = plan.items.size() / 4;
                if (c == n - 1) { add(s, chunkStart, 0, h); break; }
                int from = chunkStart + chunk - 64 * need[h];
                if (from > chunkStart) add(s, chunkStart, 0, h);
                for (int j = 0, at = from; j < k; j++)
                {
                    int size = 64 * (need[h] / k + (j < need[h] % k ? 1 : 0));
                    add(s, at, size, h); at += size; plan.pieceBlocks = std::max(plan.pieceBlocks, size / 64);
                }
            }
            plan.seqItems[2 * (s * heads + h)] = first;
            plan.seqItems[2 * (s * heads + h) + 1] = plan.items.size() / 4 - first;
        }
    }
    return plan;
}
static int chunkPlan(const std::vector<int>& counts, int heads, int sms)
{
    int longest = *std::max_element(counts.begin(), counts.end());
    long total = 0; for (int t : counts) total += t;
    if ((long)counts.size() * heads >= sms) return longest;
    long target = 2L * sms;
    long perItem = std::max(256L, (total * heads + target - 1) / target);
    return (int)std::min((long)longest, (perItem + 63) / 64 * 64);
}

enum Kernel { Chunk, Pipe, Wgmma, Cluster2, Cluster4, Cluster8, Pair };
static const char* kernelNames[] = { "lightning_chunk", "lightning_pipe", "lightning_wgmma", "lightning_cluster2", "lightning_cluster4",
    "lightning_cluster8", "lightning_pair" };
static bool isCluster(int k) { return k >= Cluster2; }
static unsigned clusterSize(int k) { return k == Cluster4 ? 4 : k == Cluster8 ? 8 : 2; }
static bool present(int k)
{
#ifndef HAS_LIGHTNING_WGMMA
    if (k == Wgmma) return false;
#endif
#ifndef HAS_LIGHTNING_CLUSTER
    if (k >= Cluster2 && k <= Cluster8) return false;
#endif
#ifndef HAS_LIGHTNING_PAIR
    if (k == Pair) return false;
#endif
    return true;
}

// The cluster kernels (lightning_pair, lightning_clusterN): one item per sequence (items[4 s ..] = (s, start, count, 0),
// one chunk each), grid (B N, heads), clusters of N CTAs, 384 threads; initial states read from and final states written
// to `ptrs`.
static void runCluster(Kernel kernel, const bf16* qkv, bf16* out, const std::vector<int>& counts, const std::vector<int>& offs,
    const unsigned long long* ptrs, const float* slopes, int heads)
{
    int B = counts.size();
    unsigned N = clusterSize(kernel), shared = 0, threads = 384;
    std::vector<int> items, seqItems;
    for (int s = 0; s < B; s++) { int v[4] = { s, offs[s], counts[s], 0 }; items.insert(items.end(), v, v + 4); seqItems.push_back(s); seqItems.push_back(1); }
    std::function<void()> body;
#ifdef HAS_LIGHTNING_CLUSTER
    if (kernel == Cluster2) body = [&] { lightning_cluster2(qkv, out, items.data(), seqItems.data(), ptrs, slopes, heads); };
    if (kernel == Cluster4) body = [&] { lightning_cluster4(qkv, out, items.data(), seqItems.data(), ptrs, slopes, heads); };
    if (kernel == Cluster8) body = [&] { lightning_cluster8(qkv, out, items.data(), seqItems.data(), ptrs, slopes, heads); };
    if (kernel != Pair) shared = LCL_SHARED;
#endif
#ifdef HAS_LIGHTNING_PAIR
    if (kernel == Pair) { body = [&] { lightning_pair(qkv, out, items.data(), seqItems.data(), ptrs, slopes, heads); }; shared = LPR_SHARED; }
#ifdef LPR_THREADS
    if (kernel == Pair) threads = LPR_THREADS;
#endif
#endif
    if (!body) { fprintf(stderr, "lightning.cu has no %s\n", kernelNames[kernel]); abort(); }
    printf("  %s: one chunk per sequence, %d clusters of %u CTAs x %d heads\n", kernelNames[kernel], B, N, heads);
    launch_cluster(body, B * N, heads, 1, N, threads, shared);
}

static double run(Kernel kernel, const std::vector<int>& counts, const std::vector<int>& carried, int heads, int sms, int cutoffBits,
    float lastSlope, unsigned seed)
{
    const int d = 128;
    int T = 0; std::vector<int> offs; for (int c : counts) { offs.push_back(T); T += c; }
    std::mt19937 rng(seed); std::uniform_real_distribution<float> U(-1.f, 1.f);
    std::vector<bf16> qkv((size_t)T * 3 * heads * d);
    for (auto& v : qkv) v = emu_f2bf((U(rng) + U(rng) + U(rng)) * 1.5f);
    int B = counts.size();
    std::vector<std::vector<float>> st(B, std::vector<float>((size_t)heads * d * d));
    for (int s = 0; s < B; s++) if (carried[s]) for (auto& v : st[s]) v = U(rng) * 0.5f;
    std::vector<float> slopes(heads); for (int h = 0; h < heads; h++) slopes[h] = 0.05f * (h + 1) + 0.01f;
    if (lastSlope > 0) slopes[heads - 1] = lastSlope;   // a slow head: states that carry over many chunks
    // float64 reference
    std::vector<double> refOut((size_t)T * heads * d); std::vector<std::vector<double>> refSt(B);
    auto silu = [](double x) { return x / (1 + std::exp(-x)); };
    auto bf = [](bf16 v) { return (double)__uint_as_float((u32)v << 16); };
    for (int s = 0; s < B; s++) { refSt[s].assign(st[s].begin(), st[s].end());
        for (int h = 0; h < heads; h++) { double* S = refSt[s].data() + (size_t)h * d * d; double lam = std::exp(-(double)slopes[h]);
            for (int t = 0; t < counts[s]; t++) { size_t row = (size_t)(offs[s] + t) * 3 * heads * d + h * 3 * d;
                double q[128], k[128], v[128], o[128] = {0};
                for (int i = 0; i < d; i++) { q[i] = silu(bf(qkv[row + i])); k[i] = silu(bf(qkv[row + d + i])); v[i] = silu(bf(qkv[row + 2 * d + i])); }
                for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { double x = lam * S[i * d + j] + k[i] * v[j]; S[i * d + j] = x; o[j] += q[i] * x; }
                for (int j = 0; j < d; j++) refOut[(size_t)(offs[s] + t) * heads * d + h * d + j] = o[j]; } } }
    std::vector<unsigned long long> ptrs(B); for (int s = 0; s < B; s++) ptrs[s] = (unsigned long long)st[s].data();
    std::vector<bf16> out((size_t)T * heads * d, 0xffff);
    if (isCluster(kernel)) runCluster(kernel, qkv.data(), out.data(), counts, offs, ptrs.data(), slopes.data(), heads);
    else
    {
    // device path (lightning_wgmma: the plans of lightning_pipe)
    const bool pipe = kernel != Chunk;
    int chunk = pipe ? pipePlan(counts, heads, sms) : chunkPlan(counts, heads, sms);
    std::vector<int> items, seqItems(2 * B); bool anySplit = false;
    for (int s = 0; s < B; s++) { int n = (counts[s] + chunk - 1) / chunk; seqItems[2 * s] = items.size() / 4; seqItems[2 * s + 1] = n; anySplit |= n > 1;
        for (int c = 0; c < n; c++) { items.push_back(s); items.push_back(offs[s] + c * chunk); items.push_back(std::min(chunk, counts[s] - c * chunk)); items.push_back(c); } }
    int itemCount = items.size() / 4;
    // Pass 0 and the scan over the state plan (as CudaBackend.LightningChunked), pass 1 over the chunks.
    StatesPlan plan = statesPlan(counts, offs, chunk, slopes, cutoffBits, sms);
    std::vector<int>& startSlot = plan.startSlot;
    int p0Count = plan.items.size() / 4;
    std::vector<float> slots(anySplit ? (size_t)p0Count * d * d : 1, NAN);
    auto k = [&](const std::vector<int>& it, const std::vector<int>& sq, int mode)
    {
#ifdef HAS_LIGHTNING_WGMMA
        if (kernel == Wgmma) lightning_wgmma(qkv.data(), out.data(), it.data(), sq.data(), ptrs.data(), slots.data(), slopes.data(), heads, mode, startSlot.data());
        else
#endif
        if (pipe) lightning_pipe(qkv.data(), out.data(), it.data(), sq.data(), ptrs.data(), slots.data(), slopes.data(), heads, mode, startSlot.data());
        else lightning_chunk(qkv.data(), out.data(), it.data(), sq.data(), ptrs.data(), slots.data(), slopes.data(), heads, mode, startSlot.data());
    };
    unsigned threads = kernel == Wgmma ? 384 : pipe ? 256 : 512;
    // the dynamic shared memory the backend launches with (lightning_chunk: not checked)
#ifdef HAS_LIGHTNING_WGMMA
    unsigned shared = kernel == Wgmma ? LW_SHARED : pipe ? LP_SHARED : 0;
#else
    unsigned shared = pipe ? LP_SHARED : 0;
#endif
    printf("  %s: chunk %d, %d items%s, state plan %d items (pieces of up to %d blocks, cutoff %d bits)\n", kernelNames[kernel], chunk,
        itemCount, anySplit ? " (split)" : "", p0Count, plan.pieceBlocks, cutoffBits);
    if (anySplit)
    {
        launch([&] { k(plan.items, plan.seqItems, 0); }, p0Count, 1, 1, threads, shared);
        launch([&] { lightning_chunk_scan(plan.items.data(), plan.seqItems.data(), ptrs.data(), slots.data(), slopes.data(), heads, chunk); },
            B, heads, d * d / 1024, 256);
    }
    launch([&] { k(items, seqItems, 1); }, itemCount, heads, 1, threads, shared);
    }
    if (emu_unfenced_reads) { printf("  %ld wgmma operand reads of stmatrix rows never fenced (fence_async_smem)\n", (long)emu_unfenced_reads); emu_unfenced_reads = 0; return INFINITY; }
    double num = 0, den = 0, snum = 0, sden = 0;
    for (size_t i = 0; i < out.size(); i++) { double x = bf(out[i]) - refOut[i]; num += x * x; den += refOut[i] * refOut[i]; }
    for (int s = 0; s < B; s++) for (size_t i = 0; i < st[s].size(); i++) { double x = st[s][i] - refSt[s][i]; snum += x * x; sden += refSt[s][i] * refSt[s][i]; }
    double eo = std::sqrt(num / den), es = std::sqrt(snum / sden);
    printf("  out rel err %.3e, state rel err %.3e\n", eo, es);
    // NaN (an output or state never written: both start as NaN) must fail, and std::max would drop it.
    return std::isfinite(eo) && std::isfinite(es) ? std::max(eo, es) : INFINITY;
}

int main(int argc, char** argv)
{
    int which = argc > 1 ? atoi(argv[1]) : 0;
    const char* only = argc > 2 ? argv[2] : nullptr;   // optional kernel name: run only that kernel
    struct Case { std::vector<int> counts, carried; int heads, sms, cutoffBits = 64; float lastSlope = 0; };
    std::vector<Case> cases = {
        { {150, 300, 40}, {1, 0, 1}, 2, 1000 },   // many idle SMs: both plans split 300 into 256 + 44
        { {150, 300, 40}, {1, 0, 1}, 2, 8 },      // items fill the SMs exactly (pipe plan: chunks of 256)
        { {700}, {1}, 1, 3 },                     // three chunks of one sequence
        { {1, 64, 65}, {1, 1, 0}, 1, 1000 },      // a 1-token sequence, exact block, block + 1
        { {150, 300, 40}, {1, 0, 1}, 2, 4 },      // pairs fill the "GPU": one chunk per sequence
        { {1000, 900}, {1, 0}, 1, 4 },            // pipe: chunks of 512 (4 items); pass 0 in pieces of 256
        { {3000}, {1}, 1, 2, 0 },                 // whole prefix (no cutoff): pass 0 in 4 pieces of 6 blocks (more than its 4 value slots)
        { {1, 64, 65, 300}, {1, 1, 0, 1}, 1, 0 }, // the cluster kernels' case: 1 token, exact block, block + 1, 5 blocks
        { {2000}, {1}, 2, 8, 32, 0.002f },        // chunks of 512; cutoff 2^-32: head 0 reads the last 384 tokens of each (gaps, 0-token
                                                  // items at chunk starts, two pieces), the slow head 1 all of them (pieces of 256)
    };
    const size_t clusterCase = 7;
    // Run time: the cluster kernels (up to 8 x 384 threads) run on their own case (8) only, unless a cluster kernel is
    // named on the command line (then on every case, or the one named); the other kernels skip case 8 unless it is named.
    double worst = 0;
    for (size_t c = 0; c < cases.size(); c++)
        for (int k = Pair; k >= Chunk; k--)
        {
            if (!present(k)) continue;
            if ((which && which != (int)c + 1) || (only && strcmp(only, kernelNames[k]))) continue;
            if (isCluster(k) ? c != clusterCase && !only : c == clusterCase && which != (int)clusterCase + 1) continue;
            // lightning_wgmma and the cluster kernels also under perturbed schedules (emu_slow_warpgroups): the outputs
            // and state warpgroups slowed (the transform runs ahead), then each alone; the cluster kernels also with the
            // loading warpgroups (2, and 3 where there is one) slowed in rank 0 only (its peers' copies land into it early), and with both
            // consumer warpgroups slowed in rank 1 only (its peers run ahead and send into stages it may still read).
            struct Schedule { unsigned warpgroups, ranks; };
            std::vector<Schedule> schedules = { { 0, ~0u } };
            if (k == Wgmma || isCluster(k)) schedules.insert(schedules.end(), { { 3, ~0u }, { 1, ~0u }, { 2, ~0u } });
            if (isCluster(k)) schedules.insert(schedules.end(), { { 12, 1u }, { 3, 2u } });
            for (Schedule sc : schedules)
            {
                emu_slow_warpgroups = sc.warpgroups; emu_slow_ranks = sc.ranks;
                if (sc.warpgroups)
                {
                    static const char* roles[] = { "0 (outputs)", "1 (state)", "2 (keys, loads)", "3 (queries, if any)" };
                    std::string what;
                    for (int w = 0; w < 4; w++) if (sc.warpgroups >> w & 1) what += (what.empty() ? "" : " ") + std::string(roles[w]);
                    if (sc.ranks != ~0u) what += sc.ranks == 1u ? " in rank 0" : " in rank 1";
                    printf("case %zu, warpgroups slowed: %s\n", c + 1, what.c_str());
                }
                else printf("case %zu\n", c + 1);
                worst = std::max(worst, run((Kernel)k, cases[c].counts, cases[c].carried, cases[c].heads, cases[c].sms, cases[c].cutoffBits, cases[c].lastSlope, 7 + c));
            }
            emu_slow_warpgroups = 0; emu_slow_ranks = ~0u;
        }
    printf("worst %.3e\n", worst);
    return worst < 5e-3 ? 0 : 1;
}
