namespace MiniMaxSharp.Checkpoints;

/// <summary>
/// A checkpoint or array file is malformed, inconsistent or unsupported. The message names the file and
/// the tensor or field at fault, so it can be shown to a user as is.
/// </summary>
public class CheckpointException : Exception
{
    public CheckpointException(string message) : base(message) { }

    public CheckpointException(string message, Exception innerException) : base(message, innerException) { }
}
