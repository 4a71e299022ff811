using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MiniMaxSharp.Backends.Cpu;

/// <summary>Instruction set a matrix-product kernel runs on; tests force the narrower ones to check the fallbacks.</summary>
internal enum GemmIsa
{
    Scalar,
    Vector256,
    Vector512,
}

/// <summary>
/// The float vector operations the kernels are written against. The kernels are generic over a struct
/// implementing this, so the JIT emits one specialised copy per vector width (512, 256, scalar) from a
/// single source.
/// </summary>
internal unsafe interface ISimdOps<V> where V : unmanaged
{
    static abstract int Count { get; }
    static abstract V Zero { get; }
    static abstract V Load(float* p);
    static abstract void Store(float* p, V v);
    static abstract V Broadcast(float x);
    /// <summary>a * b + acc, fused where the hardware can.</summary>
    static abstract V MultiplyAdd(V a, V b, V acc);
    static abstract V Add(V a, V b);
    static abstract float Sum(V v);
    /// <summary>Count bfloat16 values widened to float32.</summary>
    static abstract V LoadBf16(ushort* p);
    /// <summary>Count IEEE half values widened to float32 (exactly, subnormals, infinities and NaN included).</summary>
    static abstract V LoadF16(ushort* p);
}

internal unsafe struct Simd512 : ISimdOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> acc) => Vector512.FusedMultiplyAdd(a, b, acc);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> v) => Vector512.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadBf16(ushort* p)
        => Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadF16(ushort* p)
    {
        Vector512<uint> h = Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe());
        Vector512<uint> magnitude = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        // Re-biasing the exponent by 2^112 also turns half subnormals into the right float normals.
        Vector512<uint> finite = (magnitude.AsSingle() * Vector512.Create(F16.Rebias)).AsUInt32();
        Vector512<uint> special = magnitude | Vector512.Create(0x7F800000u);
        Vector512<uint> isSpecial = Vector512.Equals(h & Vector512.Create(0x7C00u), Vector512.Create(0x7C00u));
        Vector512<uint> sign = Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16);
        return (Vector512.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}

internal unsafe struct Simd256 : ISimdOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> acc) => Vector256.FusedMultiplyAdd(a, b, acc);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> v) => Vector256.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBf16(ushort* p)
        => Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadF16(ushort* p)
    {
        Vector256<uint> h = Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe());
        Vector256<uint> magnitude = Vector256.ShiftLeft(h & Vector256.Create(0x7FFFu), 13);
        Vector256<uint> finite = (magnitude.AsSingle() * Vector256.Create(F16.Rebias)).AsUInt32();
        Vector256<uint> special = magnitude | Vector256.Create(0x7F800000u);
        Vector256<uint> isSpecial = Vector256.Equals(h & Vector256.Create(0x7C00u), Vector256.Create(0x7C00u));
        Vector256<uint> sign = Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16);
        return (Vector256.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}

internal unsafe struct SimdScalar : ISimdOps<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, float v) => *p = v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float x) => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAdd(float a, float b, float acc) => MathF.FusedMultiplyAdd(a, b, acc);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float v) => v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadBf16(ushort* p) => Bf16.ToSingle(*p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadF16(ushort* p) => (float)BitConverter.UInt16BitsToHalf(*p);
}

internal static class Bf16
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}

internal static class F16
{
    /// <summary>2^(127-15): moves a half exponent, placed in float position, to the float bias.</summary>
    public const float Rebias = 5.192296858534828e+33f;
}

/// <summary>How a weight element type is read and widened to float32; kernels are generic over it.</summary>
internal unsafe interface IWeightType
{
    static abstract int ElementSize { get; }
    /// <summary>Elements [index, index + TOps.Count) of row-major storage <paramref name="p"/>, widened.</summary>
    static abstract V Load<TOps, V>(void* p, nint index) where TOps : ISimdOps<V> where V : unmanaged;
    static abstract float LoadScalar(void* p, nint index);
}

internal unsafe struct F32Weights : IWeightType
{
    public static int ElementSize => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V Load<TOps, V>(void* p, nint index) where TOps : ISimdOps<V> where V : unmanaged => TOps.Load((float*)p + index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(void* p, nint index) => ((float*)p)[index];
}

internal unsafe struct Bf16Weights : IWeightType
{
    public static int ElementSize => 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V Load<TOps, V>(void* p, nint index) where TOps : ISimdOps<V> where V : unmanaged => TOps.LoadBf16((ushort*)p + index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(void* p, nint index) => Bf16.ToSingle(((ushort*)p)[index]);
}

internal unsafe struct F16Weights : IWeightType
{
    public static int ElementSize => 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V Load<TOps, V>(void* p, nint index) where TOps : ISimdOps<V> where V : unmanaged => TOps.LoadF16((ushort*)p + index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(void* p, nint index) => (float)BitConverter.UInt16BitsToHalf(((ushort*)p)[index]);
}
