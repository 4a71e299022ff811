namespace MiniMaxSharp.Model;

/// <summary>Per-head decay rates of lightning attention (spec: "Decay").</summary>
public static class LightningDecay
{
    /// <summary>
    /// s_h = base_h · (1 − l/(L−1+1e-5) + 1e-5): the Hugging Face form of the layer factor (equal to the
    /// original 1 − l/(L−1) + 1e-5 within ~1e-7, and defined for L = 1).
    /// base_h = 2^(-8(h+1)/H) when H is a power of two; otherwise the references' ALiBi construction
    /// (the closest power of two's slopes, then every other slope of twice that many).
    /// </summary>
    public static float[] Slopes(int heads, int layer, int numLayers)
    {
        double factor = 1.0 - layer / (numLayers - 1 + 1e-5) + 1e-5;
        double[] baseSlopes = BaseSlopes(heads);
        var s = new float[heads];
        for (int h = 0; h < heads; h++) s[h] = (float)(baseSlopes[h] * factor);
        return s;
    }

    internal static double[] BaseSlopes(int n)
    {
        static double[] PowerOfTwo(int n)
        {
            double start = Math.Pow(2.0, -8.0 / n);
            var r = new double[n];
            for (int i = 0; i < n; i++) r[i] = Math.Pow(start, i + 1);
            return r;
        }
        if ((n & (n - 1)) == 0) return PowerOfTwo(n);
        int closest = 1 << (int)Math.Floor(Math.Log2(n));
        var result = new List<double>(PowerOfTwo(closest));
        double[] doubled = BaseSlopes(2 * closest);
        for (int i = 0; i < doubled.Length && result.Count < n; i += 2) result.Add(doubled[i]);
        return [.. result];
    }
}
