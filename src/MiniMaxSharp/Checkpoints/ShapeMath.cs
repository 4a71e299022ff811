namespace MiniMaxSharp.Checkpoints;

internal static class ShapeMath
{
    /// <summary>Product of the dimensions (1 for a scalar); false when one is negative or the product overflows a long.</summary>
    public static bool TryElementCount(ReadOnlySpan<long> shape, out long count)
    {
        count = 1;
        foreach (var d in shape)
        {
            if (d < 0 || (d != 0 && count > long.MaxValue / d))
            {
                count = 0;
                return false;
            }
            count *= d;
        }
        return true;
    }

    public static string Format(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
