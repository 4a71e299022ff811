using MiniMaxSharp.Backends.Cuda.Interop;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Backends.Cuda;

// Training's bf16 product mode (IMixedPrecisionTraining): the matrix products with float32 operands (the forward's
// projections and experts, both products of every weight's backward, the LM head) take bf16 copies of their operands
// on tensor cores with float32 accumulation and float32 results. Master weights, gradients and AdamW moments stay
// float32; the router's products stay float32 so routing decisions are the float32 ones. A weight is converted once per
// outermost WeightCopyScope (a training step), an activation once per product.
public sealed unsafe partial class CudaBackend : IMixedPrecisionTraining
{
    public TrainingPrecision ProductPrecision { get; set; } = TrainingPrecision.F32;

    private bool ReducedProducts => ProductPrecision == TrainingPrecision.BF16;

    /// <summary>bf16 copies of float32 weights, by the weight's device address; kept across scopes so a training loop
    /// reuses the buffers, but only those converted in the open scope are valid.</summary>
    private readonly Dictionary<ulong, (ulong Copy, long Elements)> _weightCopies = [];
    private readonly HashSet<ulong> _validCopies = [];
    private int _openCopyScopes;

    public IDisposable WeightCopyScope()
    {
        _openCopyScopes++;
        return new CopyScope(this);
    }

    private sealed class CopyScope(CudaBackend backend) : IDisposable
    {
        private bool _closed;

        public void Dispose()
        {
            if (_closed) return;
            _closed = true;
            backend.CloseCopyScope();
        }
    }

    private void CloseCopyScope()
    {
        if (--_openCopyScopes > 0) return;
        // Copies of weights that this scope did not use belong to weights that may be gone: release them.
        var unused = _weightCopies.Keys.Where(k => !_validCopies.Contains(k)).ToArray();
        if (unused.Length > 0) _device.Synchronize();
        foreach (var k in unused)
        {
            _device.Free(_weightCopies[k].Copy);
            _weightCopies.Remove(k);
        }
        _validCopies.Clear();
    }

    private void ReleaseWeightCopies()
    {
        foreach (var (copy, _) in _weightCopies.Values) _device.Free(copy);
        _weightCopies.Clear();
        _validCopies.Clear();
    }

    /// <summary>A bf16 copy of a float32 weight of <paramref name="elements"/> values: the scope's cached one, or (no scope
    /// open) a fresh conversion into a scratch buffer.</summary>
    private ulong Bf16Weight(ulong weight, long elements)
    {
        if (_openCopyScopes == 0) return Bf16Operand("bf16 weight operand", weight, DType.F32, elements);
        if (_weightCopies.TryGetValue(weight, out var copy) && copy.Elements == elements)
        {
            if (_validCopies.Contains(weight)) return copy.Copy;
        }
        else
        {
            if (copy.Copy != 0)
            {
                _device.Synchronize();   // queued products may still read the old copy
                _device.Free(copy.Copy);
            }
            copy = (_device.Allocate(elements * 2, "a bf16 copy of a float32 weight"), elements);
            _weightCopies[weight] = copy;
        }
        Convert(weight, DType.F32, copy.Copy, DType.BF16, elements);
        _validCopies.Add(weight);
        return copy.Copy;
    }

    /// <summary>An activation operand in bf16: itself when it is bf16 already, else converted into scratch <paramref name="name"/>.</summary>
    private ulong Bf16Operand(string name, ulong source, DType type, long elements)
    {
        if (type == DType.BF16) return source;
        ulong p = Scratch(name, Math.Max(2, elements * 2));
        Convert(source, type, p, DType.BF16, elements);
        return p;
    }

    /// <summary>One cuBLAS product C = alpha·op(A)·op(B) + beta·C (column-major), bf16 A and B, float32 accumulation.</summary>
    private void GemmBf16(int transA, int transB, int m, int n, int k, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int cType, int ldc, string what)
    {
        _device.Graphs.RequireEager("a bf16 training product");
        float alpha = 1f;
        Cublas.Check(Cublas.cublasGemmEx(_device.CublasHandle, transA, transB, m, n, k,
            &alpha, a, Cublas.DataBF16, lda, b, Cublas.DataBF16, ldb, &beta, c, cType, ldc,
            Cublas.ComputeF32, Cublas.GemmDefault), $"cublasGemmEx({what}, bf16 operands)");
    }

    private static int CublasType(DType t) => t switch
    {
        DType.BF16 => Cublas.DataBF16,
        DType.F32 => Cublas.DataF32,
        _ => throw new NotSupportedException($"the CUDA matmul writes bf16 or float32, not {t}"),
    };
}
