namespace MiniMaxSharp.Backends;

/// <summary>A backend whose tensors live in a memory of fixed size (a GPU): what is free, so that a run can
/// be planned before it starts (<see cref="Model.MemoryPlan"/>) instead of failing halfway.</summary>
public interface IDeviceMemory
{
    /// <summary>Bytes free and total on the device now.</summary>
    (long Free, long Total) MemoryInfo();
}
