using System.CommandLine;
using System.Globalization;
using MiniMaxSharp.Model;
using MiniMaxSharp.Tokenizers;
using MiniMaxSharp.Training;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax perplexity</c>: mean NLL and perplexity of a text under a model, in windows of its context.</summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var text = new Option<string[]>("--text-file") { Description = "UTF-8 text file(s) to score", Required = true, AllowMultipleArgumentsPerToken = true };
        var paragraphs = new Option<bool>("--paragraphs") { Description = "Every blank-line-separated paragraph is a document (default: every file)" };
        var endOfText = new Option<string>("--end-of-text") { Description = "Token appended to every document (as in training; ignored when the tokenizer lacks it)", DefaultValueFactory = _ => "<|endoftext|>" };
        var window = new Option<int?>("--window") { Description = "Tokens per window (default: max_position_embeddings)" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("perplexity", "Mean negative log-likelihood and perplexity of text under a model") { model, text, paragraphs, endOfText, window, threads, backend };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            string dir = r.GetValue(model)!;
            var tokenizer = Tokenizer.FromFile(dir);
            var documents = TextCorpus.ReadDocuments(tokenizer, r.GetValue(text)!, r.GetValue(paragraphs), tokenizer.TokenToId(r.GetValue(endOfText)!));
            using var m = ModelLoader.Load(dir, BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads)));
            int size = r.GetValue(window) ?? m.Config.MaxPositionEmbeddings;
            var (nll, tokens) = Perplexity.Score(m, documents, size);
            if (tokens == 0) throw new InvalidDataException("the text has no token to score (every document is a single token)");
            double mean = nll / tokens;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"documents {documents.Count} tokens_scored {tokens} window {size} mean_nll {mean:F6} perplexity {Math.Exp(mean):F4}"));
            return 0;
        }));
        return cmd;
    }
}
