// Runs a kernel body over a grid of CTAs, each CTA as `block` std::threads with a fresh EmuCta (barriers, warp /
// warpgroup exchanges, mbarrier table, fence tracking, NaN-filled shared memory). launch_cluster: the clusterX CTAs of
// a cluster (consecutive blockIdx.x) run concurrently, clusters one after another; launch: clusters of one CTA (one
// CTA after another). shared > 0: the kernel's dynamic shared memory size; every byte of a CTA's emu_smem outside
// [EMU_DYN_OFFSET, EMU_DYN_OFFSET + shared) must still hold the fill after the cluster (a write past the launch's
// shared memory aborts; a read there reads NaN).
static void launch_cluster(std::function<void()> body, unsigned gx, unsigned gy, unsigned gz, unsigned clusterX, unsigned block, unsigned shared = 0)
{
    if (clusterX == 0 || clusterX > EMU_MAX_CLUSTER || gx % clusterX)
    { fprintf(stderr, "launch_cluster: grid x %u is not a multiple of a cluster size of 1..%d (%u)\n", gx, EMU_MAX_CLUSTER, clusterX); abort(); }
    if (block == 0 || block > 1024) { fprintf(stderr, "launch_cluster: block of %u threads\n", block); abort(); }
    blockDim = { block, 1, 1 }; gridDim = { gx, gy, gz };
    for (unsigned z = 0; z < gz; z++) for (unsigned y = 0; y < gy; y++) for (unsigned x0 = 0; x0 < gx; x0 += clusterX)
    {
        emu_cluster.size = clusterX; emu_cluster.shared = shared;
        emu_cluster.inFlight.clear(); emu_cluster.inFlightCount = 0; emu_cluster.progress = 0;
        emu_cluster.rng.seed(1 + x0 + 7919 * y + 104729 * z);
        std::barrier<> clusterBarrier(clusterX * block);
        emu_cluster.sync = &clusterBarrier;
        std::vector<std::unique_ptr<std::barrier<EmuBlockDone>>> blockBars;
        std::vector<std::unique_ptr<std::barrier<EmuNamedDone>>> namedBars;
        std::vector<std::unique_ptr<std::barrier<>>> bars;
        for (unsigned r = 0; r < clusterX; r++)
        {
            EmuCta& c = emu_ctas[r];
            c.block = { x0 + r, y, z }; c.rank = r;
            memset(c.smem, 0xff, sizeof c.smem);   // uninitialised shared memory reads as NaN
            emu_mbar_reset(c);
            emu_named_reset(c);
            emu_fence_reset(c);
            blockBars.emplace_back(new std::barrier<EmuBlockDone>(block, EmuBlockDone{ &c }));
            c.blockBarrier = blockBars.back().get();
            namedBars.emplace_back(new std::barrier<EmuNamedDone>(block, EmuNamedDone{ &c }));
            c.namedBarrier = namedBars.back().get();
            c.namedPending = 0;
            for (unsigned w = 0; w < block / 32; w++) { bars.emplace_back(new std::barrier<>(32)); c.warps[w].bar = bars.back().get(); }
            for (unsigned w = 0; w < block / 128; w++) { bars.emplace_back(new std::barrier<>(128)); c.warpgroups[w].bar = bars.back().get(); }
            c.threadsLeft = block; c.exited = false;
        }
        std::vector<std::thread> th;
        for (unsigned r = 0; r < clusterX; r++)
            for (unsigned t = 0; t < block; t++)
                th.emplace_back([r, t, &body] { emu_cta = &emu_ctas[r]; threadIdx = { t, 0, 0 }; emu_lane = t & 31; emu_warp = t >> 5; emu_warpgroup = t >> 7;
                    emu_my_unfenced.clear(); body(); emu_thread_end();
                    emu_cluster.sync->arrive_and_drop();   // an exited thread no longer counts in cluster_sync
                    if (--emu_cta->threadsLeft == 0) emu_cta_exit(*emu_cta); });
        for (auto& t : th) t.join();
        for (unsigned r = 0; r < clusterX; r++)
        {
            EmuCta& c = emu_ctas[r];
            if (shared)
                for (unsigned i = 0; i < sizeof c.smem; i++)
                    if ((i < EMU_DYN_OFFSET || i >= EMU_DYN_OFFSET + shared) && c.smem[i] != 0xff)
                    { fprintf(stderr, "CTA (%u, %u, %u) wrote shared memory at byte %d of its dynamic shared memory (size %u)\n",
                        c.block.x, c.block.y, c.block.z, (int)i - EMU_DYN_OFFSET, shared); abort(); }
            emu_named_reset(c);
        }
        emu_cluster.sync = nullptr;
    }
    emu_cluster.size = 1; emu_cluster.shared = 0;
}
static void launch(std::function<void()> body, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned shared = 0)
{
    launch_cluster(std::move(body), gx, gy, gz, 1, block, shared);
}
