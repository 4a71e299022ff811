using System.Runtime.InteropServices;
using System.Text;

namespace MiniMaxSharp.Backends.Cuda.Interop;

/// <summary>
/// cuDNN 9's graph (backend descriptor) API, from libcudnn_graph.so.9: only what the fused attention
/// (CudnnAttention.cs) needs. The numbers are cuDNN 9's ABI values (cudnn_graph.h); cuDNN only appends to them.
/// </summary>
internal static unsafe partial class Cudnn
{
    private const string Lib = CudaLibrarySearch.CudnnImport;

    // cudnnBackendDescriptorType_t
    public const int PointwiseDescriptor = 0;
    public const int EngineConfigDescriptor = 3;
    public const int EngineHeuristicsDescriptor = 4;
    public const int ExecutionPlanDescriptor = 5;
    public const int OperationPointwiseDescriptor = 13;
    public const int OperationGraphDescriptor = 15;
    public const int VariantPackDescriptor = 16;
    public const int TensorDescriptor = 17;
    public const int MatmulDescriptor = 18;
    public const int OperationMatmulDescriptor = 19;
    public const int ReductionDescriptor = 21;
    public const int OperationReductionDescriptor = 22;
    public const int KernelCacheDescriptor = 34;

    // cudnnBackendAttributeType_t
    public const int TypeHandle = 0;
    public const int TypeDataType = 1;
    public const int TypeBoolean = 2;
    public const int TypeInt64 = 3;
    public const int TypeVoidPointer = 6;
    public const int TypeHeuristicsMode = 8;
    public const int TypePointwiseMode = 14;
    public const int TypeBackendDescriptor = 15;
    public const int TypeReductionOperator = 18;

    // cudnnBackendAttributeName_t
    public const int PointwiseMode = 0;
    public const int PointwiseMathPrecision = 1;
    public const int PointwiseAxis = 9;
    public const int HeuristicsMode = 200;
    public const int HeuristicsOperationGraph = 201;
    public const int HeuristicsResults = 202;
    public const int PlanHandle = 400;
    public const int PlanEngineConfig = 401;
    public const int PlanWorkspaceSize = 402;
    public const int PlanKernelCache = 406;
    public const int OperationPointwiseDescriptorAttr = 750;
    public const int OperationPointwiseX = 751;
    public const int OperationPointwiseB = 752;
    public const int OperationPointwiseY = 753;
    public const int OperationPointwiseT = 758;
    public const int GraphHandle = 800;
    public const int GraphOperations = 801;
    public const int GraphDynamicShapes = 803;
    public const int TensorByteAlignment = 900;
    public const int TensorDataType = 901;
    public const int TensorDimensions = 902;
    public const int TensorStrides = 903;
    public const int TensorUniqueId = 906;
    public const int TensorIsVirtual = 907;
    public const int TensorIsByValue = 908;
    public const int VariantPackUniqueIds = 1000;
    public const int VariantPackDataPointers = 1001;
    public const int VariantPackWorkspace = 1003;
    public const int MatmulComputeType = 1500;
    public const int OperationMatmulA = 1520;
    public const int OperationMatmulB = 1521;
    public const int OperationMatmulC = 1522;
    public const int OperationMatmulDescriptorAttr = 1523;
    public const int KernelCacheOperationGraph = 2400;
    public const int ReductionOperator = 1600;
    public const int ReductionComputeType = 1601;
    public const int OperationReductionX = 1610;
    public const int OperationReductionY = 1611;
    public const int OperationReductionDescriptorAttr = 1612;

    // cudnnDataType_t
    public const int DataFloat = 0;
    public const int DataInt32 = 4;
    public const int DataBFloat16 = 9;
    public const int DataBoolean = 11;

    // cudnnPointwiseMode_t
    public const int PointwiseAdd = 0;
    public const int PointwiseMul = 1;
    public const int PointwiseDiv = 6;
    public const int PointwiseSub = 9;
    public const int PointwiseExp = 13;
    public const int PointwiseLog = 15;
    public const int PointwiseCmpGe = 303;
    public const int PointwiseGenIndex = 501;
    public const int PointwiseBinarySelect = 601;

    // cudnnReduceTensorOp_t
    public const int ReduceAdd = 0;
    public const int ReduceMax = 3;

    // cudnnBackendHeurMode_t
    public const int HeuristicsModeA = 3;

    public const int StatusSuccess = 0;

    [LibraryImport(Lib)] public static partial nuint cudnnGetVersion();
    [LibraryImport(Lib)] public static partial int cudnnCreate(out nint handle);
    [LibraryImport(Lib)] public static partial int cudnnDestroy(nint handle);
    [LibraryImport(Lib)] public static partial int cudnnSetStream(nint handle, nint stream);
    [LibraryImport(Lib)] public static partial byte* cudnnGetErrorString(int status);
    [LibraryImport(Lib)] public static partial void cudnnGetLastErrorString(byte* message, nuint maxSize);
    [LibraryImport(Lib)] public static partial int cudnnBackendCreateDescriptor(int descriptorType, out nint descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendDestroyDescriptor(nint descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendFinalize(nint descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendSetAttribute(nint descriptor, int attributeName, int attributeType, long elementCount, void* elements);
    [LibraryImport(Lib)] public static partial int cudnnBackendGetAttribute(nint descriptor, int attributeName, int attributeType, long requestedElementCount, out long elementCount, void* elements);
    [LibraryImport(Lib)] public static partial int cudnnBackendExecute(nint handle, nint executionPlan, nint variantPack);

    /// <summary>Throws a <see cref="CudaException"/> naming the call, cuDNN's status and its last error message.</summary>
    public static void Check(int status, string call)
    {
        if (status == StatusSuccess) return;
        throw new CudaException($"{call} failed: {Describe(status)}");
    }

    public static string Describe(int status)
    {
        string name = Marshal.PtrToStringUTF8((nint)cudnnGetErrorString(status)) ?? $"cudnnStatus {status}";
        var buffer = new byte[1024];
        fixed (byte* b = buffer) cudnnGetLastErrorString(b, (nuint)buffer.Length);
        int end = Array.IndexOf(buffer, (byte)0);
        string last = Encoding.UTF8.GetString(buffer, 0, end < 0 ? buffer.Length : end).Trim();
        return last.Length == 0 ? $"{name} ({status})" : $"{name} ({status}): {last}";
    }
}
