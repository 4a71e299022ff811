namespace MiniMaxSharp.Tests;

/// <summary>Tests that redirect Console.Out/Error (process-wide) or run CLI commands in-process (which write to it)
/// run one at a time in this collection.</summary>
[CollectionDefinition(Name)]
public sealed class ConsoleCollection
{
    public const string Name = "Console";
}
