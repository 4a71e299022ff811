// Greedy token choice on the device (IGreedyDecoding): the argmax of each logits row, and the embedding of
// ids that stay on the device.

// The greedy order of CpuBackend.GreedyBefore (the host's TensorPrimitives.IndexOfMax): NaN above everything
// (the first NaN wins), then the larger value, +0 above -0, then the lower index. A total order, so the
// reduction below may combine candidates in any order and still picks the host's index.
__device__ __forceinline__ bool greedy_before(float a, int ia, float b, int ib)
{
    bool an = a != a, bn = b != b;
    if (an || bn) return an && (!bn || ia < ib);
    if (a != b) return a > b;
    u32 aneg = __float_as_uint(a) >> 31, bneg = __float_as_uint(b) >> 31;   // differ only for +0 against -0
    if (aneg != bneg) return bneg != 0;
    return ia < ib;
}

// Keeps the better of (v, i) and the current (best, bi); bi < 0 means no candidate yet.
__device__ __forceinline__ void greedy_take(float v, int i, float& best, int& bi)
{
    if (i >= 0 && (bi < 0 || greedy_before(v, i, best, bi)))
    {
        best = v;
        bi = i;
    }
}

__device__ __forceinline__ void greedy_warp(float& best, int& bi)
{
    for (int o = 16; o > 0; o >>= 1)
    {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        greedy_take(ov, oi, best, bi);
    }
}

// ids[row] = greedy choice of logits[row, 0..cols), rows stride floats apart. One block per row (grid-stride over
// rows); blockDim.x a multiple of 32, at most 1024. vec4: cols and stride multiples of 4, logits 16-byte aligned
// (float4 loads).
extern "C" __global__ void argmax_rows(const float* logits, int rows, int cols, int stride, int vec4, int* ids)
{
    __shared__ float warpBest[32];
    __shared__ int warpIndex[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int row = blockIdx.x; row < rows; row += gridDim.x)
    {
        const float* x = logits + (i64)row * stride;
        float best = 0.0f;
        int bi = -1;
        if (vec4)
        {
            const float4* x4 = (const float4*)x;
            int n4 = cols >> 2;
            #pragma unroll 4
            for (int c = threadIdx.x; c < n4; c += blockDim.x)
            {
                float4 v = x4[c];
                greedy_take(v.x, 4 * c, best, bi);
                greedy_take(v.y, 4 * c + 1, best, bi);
                greedy_take(v.z, 4 * c + 2, best, bi);
                greedy_take(v.w, 4 * c + 3, best, bi);
            }
        }
        else
        {
            #pragma unroll 4
            for (int c = threadIdx.x; c < cols; c += blockDim.x) greedy_take(x[c], c, best, bi);
        }
        greedy_warp(best, bi);
        if (lane == 0)
        {
            warpBest[warp] = best;
            warpIndex[warp] = bi;
        }
        __syncthreads();
        if (warp == 0)
        {
            best = lane < warps ? warpBest[lane] : 0.0f;
            bi = lane < warps ? warpIndex[lane] : -1;
            greedy_warp(best, bi);
            if (lane == 0) ids[row] = bi;
        }
        __syncthreads();   // the next row reuses warpBest and warpIndex
    }
}

// output[t] = table[ids[t]] (the embedding kernel of elementwise.cu, ids read on the device). An id outside
// [0, vocab) gives a row of NaN: loud, and never a read outside the table.
extern "C" __global__ void embedding_ids(const void* table, int dtTable, i64 vocab, const int* ids, void* out, int dtOut, int tokens, int hidden)
{
    i64 n = (i64)tokens * hidden;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    {
        i64 t = i / hidden, c = i % hidden;
        int id = ids[t];
        float v = id >= 0 && id < vocab ? ld(table, (i64)id * hidden + c, dtTable) : __uint_as_float(0x7fc00000u);
        st(out, i, dtOut, v);
    }
}
