using System.CommandLine;
using MiniMaxSharp.Cli.Commands;

var root = new RootCommand("minimax: run, benchmark, serve and train MiniMax-01 architecture models.");
foreach (var command in CommandRegistry.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
