// Runs a kernel body as one CTA after another (gx x gy x gz), each CTA as `block` std::threads, with fresh
// barriers, warp / warpgroup exchanges, mbarrier table and NaN-filled shared memory per CTA. shared > 0: the
// kernel's dynamic shared memory size; every byte of emu_smem outside [EMU_DYN_OFFSET, EMU_DYN_OFFSET + shared) must
// still hold the fill after the CTA (a write past the launch's shared memory aborts; a read there reads NaN).
#include <functional>
static void launch(std::function<void()> body, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned shared = 0)
{
    for (unsigned z = 0; z < gz; z++) for (unsigned y = 0; y < gy; y++) for (unsigned x = 0; x < gx; x++)
    {
        blockIdx = { x, y, z }; blockDim = { block, 1, 1 };
        memset(emu_smem, 0xff, sizeof emu_smem);   // uninitialised shared memory reads as NaN
        emu_mbar_reset();
        emu_named_reset();
        emu_fence_reset();
        std::barrier<EmuBlockDone> cta(block);
        emu_block_barrier = &cta;
        std::barrier<EmuNamedDone> named(block);
        emu_named_pending = 0;
        emu_named_barrier = &named;
        std::vector<std::unique_ptr<std::barrier<>>> bars;
        for (unsigned w = 0; w < block / 32; w++) { bars.emplace_back(new std::barrier<>(32)); emu_warps[w].bar = bars.back().get(); }
        for (unsigned w = 0; w < block / 128; w++) { bars.emplace_back(new std::barrier<>(128)); emu_warpgroups[w].bar = bars.back().get(); }
        std::vector<std::thread> th;
        for (unsigned t = 0; t < block; t++)
            th.emplace_back([t, &body] { threadIdx = { t, 0, 0 }; emu_lane = t & 31; emu_warp = t >> 5; emu_warpgroup = t >> 7;
                emu_my_unfenced.clear(); body(); emu_thread_end(); });
        for (auto& t : th) t.join();
        if (shared)
            for (unsigned i = 0; i < sizeof emu_smem; i++)
                if ((i < EMU_DYN_OFFSET || i >= EMU_DYN_OFFSET + shared) && emu_smem[i] != 0xff)
                { fprintf(stderr, "CTA (%u, %u, %u) wrote shared memory at byte %d of its dynamic shared memory (size %u)\n",
                    x, y, z, (int)i - EMU_DYN_OFFSET, shared); abort(); }
    }
    emu_named_reset();
}
