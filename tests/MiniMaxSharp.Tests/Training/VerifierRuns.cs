using MiniMaxSharp.Cli.Commands;

namespace MiniMaxSharp.Tests.Training;

/// <summary>Runs <c>minimax verify</c> rows in a test with their per-row progress (stderr) silenced.</summary>
internal static class VerifierRuns
{
    public static VerifyCommand.Verifier Quietly(VerifyCommand.Verifier verifier, Action<VerifyCommand.Verifier> rows)
    {
        var saved = Console.Error;
        Console.SetError(TextWriter.Null);
        try
        {
            rows(verifier);
        }
        finally
        {
            Console.SetError(saved);
        }
        return verifier;
    }
}
