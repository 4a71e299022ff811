namespace MiniMaxSharp.Backends.Cpu;

// Optimiser ops: gradient norm and the AdamW update.
public sealed unsafe partial class CpuBackend
{
    public double SumOfSquares(DeviceTensor tensor)
    {
        var t = AsCpu(tensor);
        float* p = t.F32;
        double sum = 0;
        for (long i = 0; i < t.ElementCount; i++) sum += (double)p[i] * p[i];
        return sum;
    }

    public void AdamWUpdate(DeviceTensor parameter, DeviceTensor gradient, DeviceTensor firstMoment, DeviceTensor secondMoment, AdamWStep step)
    {
        var p = AsCpu(parameter);
        var g = AsCpu(gradient);
        var m = AsCpu(firstMoment);
        var v = AsCpu(secondMoment);
        long n = p.ElementCount;
        if (g.ElementCount != n || m.ElementCount != n || v.ElementCount != n)
            throw new ArgumentException($"AdamW: parameter {p}, gradient {g}, moments {m} and {v} differ in size");
        if (step.Step < 1) throw new ArgumentOutOfRangeException(nameof(step), step.Step, "AdamW steps count from 1");
        double b1 = step.Beta1, b2 = step.Beta2;
        double stepSize = step.LearningRate / (1 - Math.Pow(b1, step.Step));
        double correction2 = Math.Sqrt(1 - Math.Pow(b2, step.Step));
        double decay = 1 - step.LearningRate * step.WeightDecay;
        float* pp = p.F32, gp = g.F32, mp = m.F32, vp = v.F32;
        For((int)((n + 4095) / 4096), 4096 * 16, c =>
        {
            long end = Math.Min(n, (c + 1) * 4096L);
            for (long i = c * 4096L; i < end; i++)
            {
                double gi = gp[i];
                double mi = b1 * mp[i] + (1 - b1) * gi;
                double vi = b2 * vp[i] + (1 - b2) * gi * gi;
                mp[i] = (float)mi;
                vp[i] = (float)vi;
                pp[i] = (float)(pp[i] * decay - stepSize * mi / (Math.Sqrt(vi) / correction2 + step.Epsilon));
            }
        });
    }
}
