namespace MiniMaxSharp.Backends.Cuda;

// Backward passes of the attention ops (IGradientBackend); being written on branch attngrad.
public sealed unsafe partial class CudaBackend
{
    public void LightningAttentionBackward(DeviceTensor qkv, BatchLayout layout, ReadOnlySpan<float> slopes,
        int headDim, int blockSize, DeviceTensor dOutput, DeviceTensor dQkv) =>
        throw new NotImplementedException("lightning attention backward on CUDA");

    public void RopeBackward(DeviceTensor dX, BatchLayout layout, int headDim, int rotaryDim, double theta) =>
        throw new NotImplementedException("rope backward on CUDA");

    public void SoftmaxAttentionBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, BatchLayout layout,
        AttentionShape shape, DeviceTensor dOutput, DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV) =>
        throw new NotImplementedException("softmax attention backward on CUDA");
}
