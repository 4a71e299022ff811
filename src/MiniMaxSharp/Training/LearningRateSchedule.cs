namespace MiniMaxSharp.Training;

/// <summary>
/// Linear warm-up from peak/warmupSteps to the peak over the first <c>warmupSteps</c> steps, then a half cosine down
/// to <c>minimum</c> at <c>totalSteps</c> (and <c>minimum</c> after it). Steps count from 0.
/// </summary>
public sealed record WarmupCosineSchedule(double Peak, int WarmupSteps, int TotalSteps, double Minimum = 0)
{
    public double At(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "steps count from 0");
        if (WarmupSteps < 0 || TotalSteps < WarmupSteps) throw new InvalidOperationException($"schedule needs 0 <= warm-up ({WarmupSteps}) <= total steps ({TotalSteps})");
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        if (TotalSteps == WarmupSteps) return Minimum;
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps));
        return Minimum + (Peak - Minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
