// Device check of the Hopper primitives lightning_wgmma is built from, one at a time, against the host: the 128-byte
// swizzled tile layout (lw_off) read by wgmma through lw_desc, wgmma m64n64k16 / m64n128k16 with A from shared memory
// or registers (fragment layouts), and ldmatrix + stmatrix(.trans) as the SiLU staging uses them.
// usage (on an sm_90 machine with nvcc): tools/wgmma_probe/run.sh  -> one line per check, "ok" or the first mismatch.
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>

// D[64][N] = A[64][128] B[N][128]^T, K = 128 as 8 k16 steps. rs: A from registers (fragments read from global).
template <int N>
__global__ void probe_gemm(const bf16* A, const bf16* B, float* D, int rs)
{
    extern __shared__ unsigned char smem[];
    unsigned char* base = smem + ((1024 - (smem_addr(smem) & 1023)) & 1023);
    unsigned char* As = base;              // [64][128]: 2 blocks of 64 x 128 bytes
    unsigned char* Bs = base + 16384;      // [N][128]:  2 blocks of N x 128 bytes
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
    for (int i = tid; i < 64 * 128; i += 128) *(bf16*)(As + lw_off(64, i / 128, i % 128)) = A[i];
    for (int i = tid; i < N * 128; i += 128) *(bf16*)(Bs + lw_off(N, i / 128, i % 128)) = B[i];
    fence_async_smem();
    __syncthreads();
    float d[N / 2];
    for (int i = 0; i < N / 2; i++) d[i] = 0.0f;
    reg_fence_all(d);
    wg_fence();
    const u32 a = smem_addr(As), b = smem_addr(Bs);
    for (int k = 0; k < 8; k++)
    {
        const u64 db = lw_desc(b + (k >> 2) * N * 128 + (k & 3) * 32);
        if (rs)
        {
            u32 f[4];
            const int r = 16 * warp + g, c = 16 * k + 2 * q;
            auto pk = [&](int rr, int cc) { return (u32)A[rr * 128 + cc] | ((u32)A[rr * 128 + cc + 1] << 16); };
            f[0] = pk(r, c); f[1] = pk(r + 8, c); f[2] = pk(r, c + 8); f[3] = pk(r + 8, c + 8);
            if constexpr (N == 128) wgmma_n128_rs(d, f, db, 1);
        }
        else
        {
            const u64 da = lw_desc(a + (k >> 2) * 64 * 128 + (k & 3) * 32);
            if constexpr (N == 64) wgmma_n64_ss(d, da, db, k > 0);
            else wgmma_n128_ss(d, da, db, k > 0);
        }
    }
    wg_commit();
    wg_wait0();
    reg_fence_all(d);
    for (int i = 0; i < N / 8; i++)
        for (int e = 0; e < 4; e++)
            D[(16 * warp + g + 8 * (e >> 1)) * N + 8 * i + 2 * q + (e & 1)] = d[4 * i + e];
}

// lw_stage's data movement on one 64 x 128 tile: ldmatrix, then stmatrix as read (X) and transposed (XT [128][64]).
__global__ void probe_stage(const bf16* X, bf16* Y, bf16* YT)
{
    extern __shared__ unsigned char smem[];
    unsigned char* base = smem + ((1024 - (smem_addr(smem) & 1023)) & 1023);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    for (int i = tid; i < 64 * 128; i += 128) *(bf16*)(base + lw_off(64, i / 128, i % 128)) = X[i];
    __syncthreads();
    unsigned char* out = base + 16384, *outT = base + 32768;
    const int R = 16 * warp, mi = lane >> 3, rr = lane & 7;
    const int srow = R + 8 * (mi & 1) + rr, dcol = R + 8 * (mi & 1);
    for (int C = 0; C < 8; C++)
    {
        const int scol = 16 * C + 8 * (mi >> 1), drow = 16 * C + 8 * (mi >> 1) + rr;
        u32 x[4];
        ldsm_x4(x, base + lw_off(64, srow, scol));
        stsm_x4(out + lw_off(64, srow, scol), x[0], x[1], x[2], x[3]);
        stsm_x4_t(outT + lw_off(128, drow, dcol), x[0], x[1], x[2], x[3]);
    }
    __syncthreads();
    for (int i = tid; i < 64 * 128; i += 128) Y[i] = *(bf16*)(out + lw_off(64, i / 128, i % 128));
    for (int i = tid; i < 128 * 64; i += 128) YT[i] = *(bf16*)(outT + lw_off(128, i / 64, i % 64));
}

static float bf2float(bf16 v) { unsigned u = (unsigned)v << 16; float f; memcpy(&f, &u, 4); return f; }
static bf16 float2bf(float f) { unsigned u; memcpy(&u, &f, 4); return (bf16)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA error %s at %s\n", cudaGetErrorString(e), #x); exit(1); } } while (0)

template <int N>
static int check_gemm(int rs)
{
    std::vector<bf16> A(64 * 128), B(N * 128);
    srand(N + rs);
    for (auto& v : A) v = float2bf((rand() % 17 - 8) / 8.0f);
    for (auto& v : B) v = float2bf((rand() % 17 - 8) / 8.0f);
    bf16 *dA, *dB; float* dD;
    CK(cudaMalloc(&dA, A.size() * 2)); CK(cudaMalloc(&dB, B.size() * 2)); CK(cudaMalloc(&dD, 64 * N * 4));
    CK(cudaMemcpy(dA, A.data(), A.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, B.data(), B.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(dD, 0xff, 64 * N * 4));
    CK(cudaFuncSetAttribute(probe_gemm<N>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    probe_gemm<N><<<1, 128, 64 * 1024>>>(dA, dB, dD, rs);
    CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
    std::vector<float> D(64 * N);
    CK(cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < 64; m++)
        for (int n = 0; n < N; n++)
        {
            double ref = 0;
            for (int k = 0; k < 128; k++) ref += (double)bf2float(A[m * 128 + k]) * bf2float(B[n * 128 + k]);
            if (!(fabs(D[m * N + n] - ref) <= 1e-3 * (1 + fabs(ref))))
            {
                if (bad < 4) printf("  gemm n%d %s: D[%d][%d] = %g, expected %g\n", N, rs ? "rs" : "ss", m, n, D[m * N + n], ref);
                bad++;
            }
        }
    printf("wgmma m64n%dk16 %s (A %s): %s (%d of %d wrong)\n", N, "f32.bf16", rs ? "registers" : "shared", bad ? "FAIL" : "ok", bad, 64 * N);
    cudaFree(dA); cudaFree(dB); cudaFree(dD);
    return bad;
}

static int check_stage()
{
    std::vector<bf16> X(64 * 128);
    for (int i = 0; i < 64 * 128; i++) X[i] = (bf16)(i + 1);
    bf16 *dX, *dY, *dYT;
    CK(cudaMalloc(&dX, 16384)); CK(cudaMalloc(&dY, 16384)); CK(cudaMalloc(&dYT, 16384));
    CK(cudaMemcpy(dX, X.data(), 16384, cudaMemcpyHostToDevice));
    CK(cudaFuncSetAttribute(probe_stage, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    probe_stage<<<1, 128, 64 * 1024>>>(dX, dY, dYT);
    CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
    std::vector<bf16> Y(64 * 128), YT(128 * 64);
    CK(cudaMemcpy(Y.data(), dY, 16384, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(YT.data(), dYT, 16384, cudaMemcpyDeviceToHost));
    int bad = 0, badT = 0;
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 128; c++)
        {
            if (Y[r * 128 + c] != X[r * 128 + c]) { if (bad < 3) printf("  stmatrix: Y[%d][%d] = %d, expected %d\n", r, c, Y[r * 128 + c], X[r * 128 + c]); bad++; }
            if (YT[c * 64 + r] != X[r * 128 + c]) { if (badT < 3) printf("  stmatrix.trans: YT[%d][%d] = %d, expected %d\n", c, r, YT[c * 64 + r], X[r * 128 + c]); badT++; }
        }
    printf("ldmatrix + stmatrix: %s (%d wrong); stmatrix.trans: %s (%d wrong)\n", bad ? "FAIL" : "ok", bad, badT ? "FAIL" : "ok", badT);
    return bad + badT;
}

int main()
{
    int bad = check_stage();
    bad += check_gemm<64>(0);
    bad += check_gemm<128>(0);
    bad += check_gemm<128>(1);
    printf("probe: %s\n", bad ? "FAILED" : "all ok");
    return bad ? 1 : 0;
}
