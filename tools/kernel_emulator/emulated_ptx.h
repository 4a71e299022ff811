// Emulated replacements of lightning.cu's inline-PTX helpers: ldmatrix (.x4, plain and .trans) and
// mma.sync m16n8k16 bf16 exchange the 32 lanes' registers through WarpExchange with a barrier on each side,
// following the fragment layouts of the PTX ISA; products are summed in double.
static inline unsigned short emu_f2bf(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ u32 pack_bf16(float lo, float hi) { return (u32)emu_f2bf(lo) | ((u32)emu_f2bf(hi) << 16); }
__device__ __forceinline__ float silu_fast(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ void lp_barrier()
{
    __syncthreads();
    if (emu_named_pending != 0) { fprintf(stderr, "barrier 1 incomplete (%d arrivals) at barrier 0\n", (int)emu_named_pending); abort(); }
}
// Named barrier 1 (bar.arrive / bar.sync 1, 256): arrivals that do not wait, completed by the waiters.
__device__ __forceinline__ void lp_scores_arrive() { emu_named_pending++; auto token = emu_named_barrier->arrive(); (void)token; }
__device__ __forceinline__ void lp_scores_wait() { emu_named_pending++; emu_named_barrier->arrive_and_wait(); }
static inline void ldsm(u32* r, const void* p, bool trans)
{
    WarpExchange& w = emu_warps[emu_warp];
    int lane = emu_lane;
    w.addr[lane] = p;
    w.bar->arrive_and_wait();
    for (int i = 0; i < 4; i++)
    {
        if (!trans)
        {
            const bf16* row = (const bf16*)w.addr[8 * i + lane / 4];
            r[i] = (u32)row[2 * (lane % 4)] | ((u32)row[2 * (lane % 4) + 1] << 16);
        }
        else
        {
            const bf16* r0 = (const bf16*)w.addr[8 * i + 2 * (lane % 4)];
            const bf16* r1 = (const bf16*)w.addr[8 * i + 2 * (lane % 4) + 1];
            r[i] = (u32)r0[lane / 4] | ((u32)r1[lane / 4] << 16);
        }
    }
    w.bar->arrive_and_wait();
}
__device__ __forceinline__ void ldsm_x4(u32* r, const void* p) { ldsm(r, p, false); }
__device__ __forceinline__ void ldsm_x4_t(u32* r, const void* p) { ldsm(r, p, true); }
static inline float lo16(u32 v) { return __uint_as_float(v << 16); }
static inline float hi16(u32 v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ void mma_bf16(float* c, const u32* a, u32 b0, u32 b1)
{
    WarpExchange& w = emu_warps[emu_warp];
    int lane = emu_lane;
    for (int i = 0; i < 4; i++) { w.a[lane][i] = a[i]; w.c[lane][i] = c[i]; }
    w.b[lane][0] = b0; w.b[lane][1] = b1;
    w.bar->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++)
    {
        int g = l / 4, t = l % 4;
        A[g][2 * t] = lo16(w.a[l][0]); A[g][2 * t + 1] = hi16(w.a[l][0]);
        A[g + 8][2 * t] = lo16(w.a[l][1]); A[g + 8][2 * t + 1] = hi16(w.a[l][1]);
        A[g][2 * t + 8] = lo16(w.a[l][2]); A[g][2 * t + 9] = hi16(w.a[l][2]);
        A[g + 8][2 * t + 8] = lo16(w.a[l][3]); A[g + 8][2 * t + 9] = hi16(w.a[l][3]);
        B[2 * t][g] = lo16(w.b[l][0]); B[2 * t + 1][g] = hi16(w.b[l][0]);
        B[2 * t + 8][g] = lo16(w.b[l][1]); B[2 * t + 9][g] = hi16(w.b[l][1]);
    }
    int g = lane / 4, t = lane % 4;
    float out[4];
    for (int e = 0; e < 4; e++)
    {
        int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        double s = w.c[lane][e];
        for (int k = 0; k < 16; k++) s += (double)A[row][k] * B[k][col];
        out[e] = (float)s;
    }
    w.bar->arrive_and_wait();
    for (int e = 0; e < 4; e++) c[e] = out[e];
}
