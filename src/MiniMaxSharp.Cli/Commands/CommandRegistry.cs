using System.CommandLine;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>Every top-level command of the CLI. Each lives in its own file with a static Create().</summary>
internal static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        // Keep one line per command; each concern owns its own file.
        yield return ForwardCommand.Create();
        yield return GenerateCommand.Create();
        yield return ChatCommand.Create();
        yield return ServeCommand.Create();
        yield return BenchServeCommand.Create();
        yield return InspectCommand.Create();
        yield return BenchCommand.Create();
        yield return BenchKernelsCommand.Create();
        yield return TokenizerCommands.CreateTokenize();
        yield return TokenizerCommands.CreateDetokenize();
        yield return TokenizerCommands.CreateTokenizerGroup();
        yield return GradientsCommand.Create();
        yield return TrainCommand.Create();
        yield return VerifyCommand.Create();
        yield return BenchOpsCommand.Create();
        yield return PerplexityCommand.Create();
        yield return BenchTrainCommand.Create();
    }
}
