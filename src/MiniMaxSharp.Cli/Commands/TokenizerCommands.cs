using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using MiniMaxSharp.Tokenizers;

namespace MiniMaxSharp.Cli.Commands;

/// <summary>
/// <c>minimax tokenize</c>, <c>minimax detokenize</c> and <c>minimax tokenizer train|bench</c>: Hugging Face
/// tokenizer.json files from the command line.
/// </summary>
internal static class TokenizerCommands
{
    private static readonly string[] DefaultSpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    public static Command CreateTokenize()
    {
        var tokenizerOption = TokenizerOption();
        var textOption = new Option<string>("--text") { Description = "Text to encode." };
        var fileOption = new Option<string>("--input-file") { Description = "UTF-8 file whose whole content is encoded." };
        var noSpecialOption = new Option<bool>("--no-special-tokens") { Description = "Do not run the post-processor (no BOS/EOS)." };
        var command = new Command("tokenize", "Encode text with a tokenizer.json and print the ids as a JSON array on one line.")
        {
            tokenizerOption, textOption, fileOption, noSpecialOption,
        };
        command.SetAction(parseResult => Run(() =>
        {
            string? text = parseResult.GetValue(textOption);
            string? file = parseResult.GetValue(fileOption);
            if ((text is null) == (file is null)) throw new UsageException("give exactly one of --text and --input-file");
            var tokenizer = Tokenizer.FromFile(parseResult.GetValue(tokenizerOption)!);
            var ids = tokenizer.Encode(file is not null ? Utf8Text.ReadFile(file) : text!, !parseResult.GetValue(noSpecialOption));
            Console.Out.WriteLine("[" + string.Join(",", ids) + "]");
        }));
        return command;
    }

    public static Command CreateDetokenize()
    {
        var tokenizerOption = TokenizerOption();
        var idsOption = new Option<string>("--ids") { Description = "Ids separated by commas, e.g. 1,2,3 (a JSON array also works).", Required = true };
        var skipOption = new Option<bool>("--skip-special-tokens") { Description = "Leave special tokens out of the text." };
        var command = new Command("detokenize", "Decode ids with a tokenizer.json and print the text.")
        {
            tokenizerOption, idsOption, skipOption,
        };
        command.SetAction(parseResult => Run(() =>
        {
            var ids = ParseIds(parseResult.GetValue(idsOption)!);
            var tokenizer = Tokenizer.FromFile(parseResult.GetValue(tokenizerOption)!);
            Console.Out.WriteLine(tokenizer.Decode(ids, parseResult.GetValue(skipOption)));
        }));
        return command;
    }

    public static Command CreateTokenizerGroup()
    {
        var command = new Command("tokenizer", "Train and benchmark byte-level BPE tokenizers.");
        command.Subcommands.Add(CreateTrain());
        command.Subcommands.Add(CreateBench());
        return command;
    }

    private static Command CreateTrain()
    {
        var inputOption = new Option<string[]>("--input")
        {
            Description = "UTF-8 training text files.", Required = true, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore,
        };
        var vocabOption = new Option<int>("--vocab-size") { Description = "Vocab size, special tokens and the 256 byte symbols included.", Required = true };
        var outputOption = new Option<string>("--output") { Description = "Directory that receives tokenizer.json.", Required = true };
        var specialOption = new Option<string[]>("--special-tokens")
        {
            Description = "Special tokens, given the first ids (default: <|endoftext|> <|im_start|> <|im_end|>).",
            AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.ZeroOrMore,
        };
        var minFrequencyOption = new Option<int>("--min-frequency") { Description = "Stop when the best pair occurs fewer times than this.", DefaultValueFactory = _ => 0 };
        var command = new Command("train", "Train a GPT-2 style byte-level BPE and write DIR/tokenizer.json.")
        {
            inputOption, vocabOption, outputOption, specialOption, minFrequencyOption,
        };
        command.SetAction(parseResult => Run(() =>
        {
            var specials = parseResult.GetValue(specialOption) is { Length: > 0 } given ? given : DefaultSpecialTokens;
            int vocabSize = parseResult.GetValue(vocabOption);
            if (vocabSize < specials.Length + 256) throw new UsageException($"--vocab-size must be at least {specials.Length + 256}");
            var clock = Stopwatch.StartNew();
            var trainer = new BpeTrainer(vocabSize, specials, parseResult.GetValue(minFrequencyOption));
            foreach (var file in parseResult.GetValue(inputOption)!) trainer.AddFile(file);
            string path = trainer.TrainToDirectory(parseResult.GetValue(outputOption)!);
            var trained = Tokenizer.FromFile(path);
            Console.Out.WriteLine($"wrote {path}: vocab {trained.VocabSize} ({specials.Length} special), {clock.Elapsed.TotalSeconds:F1} s");
        }));
        return command;
    }

    private static Command CreateBench()
    {
        var tokenizerOption = TokenizerOption();
        var fileOption = new Option<string>("--text-file") { Description = "Also measure this UTF-8 file." };
        var sizeOption = new Option<double>("--size-mb") { Description = "Size of each generated sample in MB.", DefaultValueFactory = _ => 4.0 };
        var command = new Command("bench", "Measure single-thread encoding throughput (MB/s of UTF-8 input) on English and CJK text.")
        {
            tokenizerOption, fileOption, sizeOption,
        };
        command.SetAction(parseResult => Run(() =>
        {
            string tokenizerPath = parseResult.GetValue(tokenizerOption)!;
            int bytes = (int)(parseResult.GetValue(sizeOption) * 1_000_000);
            if (bytes <= 0) throw new UsageException("--size-mb must be positive");
            var samples = new List<(string Name, string Text)>
            {
                ("English", BenchText.Repeat(BenchText.English, bytes)),
                ("CJK", BenchText.Repeat(BenchText.Cjk, bytes)),
            };
            if (parseResult.GetValue(fileOption) is { } file)
                samples.Add((Path.GetFileName(file), Utf8Text.ReadFile(file)));
            Console.Out.WriteLine($"tokenizer {tokenizerPath}; one thread; MB = 10^6 UTF-8 bytes of input");
            foreach (var (name, text) in samples) BenchOne(tokenizerPath, name, text);
        }));
        return command;
    }

    /// <summary>
    /// Cold cache: one pass with a fresh tokenizer (empty word cache; the JIT already warmed on another instance).
    /// Warm: best of three later passes. CPU figures divide by the process's CPU time (GC and JIT threads included),
    /// which stays meaningful on a loaded machine.
    /// </summary>
    private static void BenchOne(string tokenizerPath, string name, string text)
    {
        var chunks = BenchText.Chunk(text, 16 * 1024);
        double megabytes = Encoding.UTF8.GetByteCount(text) / 1e6;
        // Let tiered compilation reach its optimized code on a throwaway instance before anything is timed.
        var jitWarmup = Tokenizer.FromFile(tokenizerPath);
        for (int round = 0; round < 4; round++)
        {
            foreach (var chunk in chunks.Take(64)) jitWarmup.Encode(chunk, addSpecialTokens: false);
            Thread.Sleep(100);
        }

        var tokenizer = Tokenizer.FromFile(tokenizerPath);
        long tokens = 0;
        var (coldWall, coldCpu) = Time(() => { foreach (var chunk in chunks) tokens += tokenizer.Encode(chunk, addSpecialTokens: false).Count; });
        double warmWall = double.MaxValue, warmCpu = double.MaxValue;
        for (int run = 0; run < 3; run++)
        {
            var (wall, cpu) = Time(() => { foreach (var chunk in chunks) tokenizer.Encode(chunk, addSpecialTokens: false); });
            warmWall = Math.Min(warmWall, wall);
            warmCpu = Math.Min(warmCpu, cpu);
        }
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-14} {megabytes,6:F2} MB {tokens,9} tokens | cold cache {megabytes / coldWall,6:F1} MB/s ({megabytes / coldCpu,6:F1} per CPU-s) | warm {megabytes / warmWall,6:F1} MB/s ({megabytes / warmCpu,6:F1} per CPU-s)"));
    }

    private static (double WallSeconds, double CpuSeconds) Time(Action action)
    {
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        action();
        clock.Stop();
        process.Refresh();
        return (clock.Elapsed.TotalSeconds, Math.Max(1e-9, (process.TotalProcessorTime - cpuBefore).TotalSeconds));
    }

    private static Option<string> TokenizerOption() =>
        new("--tokenizer") { Description = "A tokenizer.json file, or a directory holding one.", Required = true };

    internal static List<int> ParseIds(string text)
    {
        var ids = new List<int>();
        foreach (var part in text.Trim().TrimStart('[').TrimEnd(']').Split(',', StringSplitOptions.TrimEntries))
        {
            if (part.Length == 0) continue;
            if (!int.TryParse(part, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int id))
                throw new UsageException($"--ids: '{part}' is not an integer id");
            ids.Add(id);
        }
        return ids;
    }

    private sealed class UsageException(string message) : Exception(message);

    private static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is TokenizerException or UsageException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}

/// <summary>Deterministic benchmark text written for this project.</summary>
internal static class BenchText
{
    public const string English =
        "The harbour town woke slowly on Tuesday. Fishing boats came back before dawn, their decks loaded with crates " +
        "of mackerel and a few unlucky crabs, while the bakery on Quay Street pulled its first 240 loaves out of the oven. " +
        "By half past seven the café had opened; two students argued about whether a 3.5% rise in rents was \"reasonable\", " +
        "and the owner, who'd heard it all before, simply poured more coffee. Down at the library, a volunteer sorted " +
        "donated books: a water-stained atlas from 1962, three cookbooks, and a paperback thriller missing its last chapter. " +
        "Nobody could say who left them on the step, but everyone agreed they'd find new readers soon enough.\n\n";

    public const string Cjk =
        "清晨的港口渐渐苏醒，渔船在天亮之前回到码头，甲板上堆满了装着鲭鱼的木箱。街角的面包店已经烤好了第一批面包，" +
        "香味飘到了整条街上。图书馆里，一位志愿者正在整理捐赠的旧书：一本一九六二年的地图册、三本菜谱，还有一本缺了最后一章的小说。" +
        "朝の港はゆっくりと目を覚まし、漁師たちは夜明け前に戻ってきた。パン屋では最初のパンが焼き上がり、" +
        "図書館ではボランティアが寄付された本を整理している。오늘 아침 항구는 천천히 깨어났고, 어부들은 새벽이 오기 전에 돌아왔다.\n\n";

    public static string Repeat(string paragraph, int minimumBytes)
    {
        int paragraphBytes = Encoding.UTF8.GetByteCount(paragraph);
        var sb = new StringBuilder();
        for (int bytes = 0; bytes < minimumBytes; bytes += paragraphBytes) sb.Append(paragraph);
        return sb.ToString();
    }

    /// <summary>Cuts text into chunks of about <paramref name="size"/> chars, at whitespace so words stay whole.</summary>
    public static List<string> Chunk(string text, int size)
    {
        var chunks = new List<string>();
        int start = 0;
        while (start < text.Length)
        {
            int end = Math.Min(text.Length, start + size);
            while (end < text.Length && !char.IsWhiteSpace(text[end])) end++;
            chunks.Add(text[start..end]);
            start = end;
        }
        return chunks;
    }
}
