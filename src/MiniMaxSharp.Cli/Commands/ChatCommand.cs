using System.CommandLine;
using System.Text;
using MiniMaxSharp.Generation;
using MiniMaxSharp.Templates;
using MiniMaxSharp.Text;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax chat</c>: an interactive conversation using the model's chat template.</summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CommonOptions.ModelOrDefault();
        var template = new Option<FileInfo?>("--chat-template") { Description = "A Jinja chat template file, for models without one" };
        var system = new Option<string?>("--system") { Description = "A system message that starts the conversation" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens per reply", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy", DefaultValueFactory = _ => 0.7f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass (1: off)", DefaultValueFactory = _ => 0.95f };
        var seed = new Option<int?>("--seed") { Description = "Random seed for sampling" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("chat", "Chat with a model (commands: /reset clears the history, /exit quits)")
            { model, template, system, maxNew, temperature, topP, seed, threads, backend };
        cmd.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            using var tm = TextModel.Load(r.GetValue(model)!, BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads)), r.GetValue(template)?.FullName);
            if (tm.ChatTemplate is null)
                throw new ArgumentException("this model has no chat template; pass one with --chat-template FILE");
            var options = new GenerationOptions
            {
                MaxNewTokens = r.GetValue(maxNew),
                Sampling = new SamplingOptions { Temperature = r.GetValue(temperature), TopP = r.GetValue(topP), Seed = r.GetValue(seed) },
            };
            var history = new List<ChatMessage>();
            void Reset()
            {
                history.Clear();
                if (r.GetValue(system) is string s) history.Add(new ChatMessage("system", s));
            }
            Reset();
            bool interactive = !Console.IsInputRedirected;
            if (interactive) Console.Error.WriteLine("chat: /reset clears the history, /exit quits");
            while (true)
            {
                if (interactive) Console.Write("> ");
                string? line = Console.ReadLine();
                if (line is null || line.Trim() == "/exit") break;
                if (line.Trim() == "/reset")
                {
                    Reset();
                    Console.Error.WriteLine("(history cleared)");
                    continue;
                }
                if (line.Trim().Length == 0) continue;
                history.Add(new ChatMessage("user", line));
                var prompt = tm.EncodeChat(history);
                var reply = new StringBuilder();
                await foreach (var token in tm.GenerateTextAsync(prompt, options, ct))
                {
                    reply.Append(token.Text);
                    Console.Write(token.Text);
                    Console.Out.Flush();
                }
                Console.WriteLine();
                history.Add(new ChatMessage("assistant", reply.ToString()));
            }
            return 0;
        }));
        return cmd;
    }
}
