namespace MiniMaxSharp.Backends.Cuda;

/// <summary>No usable NVIDIA GPU: the driver or a CUDA library is missing, or no device is present.</summary>
public sealed class CudaUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A CUDA driver, NVRTC or cuBLAS call failed; the message names the call and the error.</summary>
public sealed class CudaException(string message) : Exception(message);
