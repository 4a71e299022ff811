// Runs a kernel body as one CTA after another (gx x gy x gz), each CTA as `block` std::threads, with fresh
// barriers, warp / warpgroup exchanges, mbarrier table and NaN-filled shared memory per CTA.
#include <functional>
static void launch(std::function<void()> body, unsigned gx, unsigned gy, unsigned gz, unsigned block)
{
    for (unsigned z = 0; z < gz; z++) for (unsigned y = 0; y < gy; y++) for (unsigned x = 0; x < gx; x++)
    {
        blockIdx = { x, y, z }; blockDim = { block, 1, 1 };
        memset(emu_smem, 0xff, sizeof emu_smem);   // uninitialised shared memory reads as NaN
        emu_mbar_reset();
        emu_named_reset();
        emu_fence_reset();
        std::barrier<> cta(block);
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
    }
    emu_named_reset();
}
