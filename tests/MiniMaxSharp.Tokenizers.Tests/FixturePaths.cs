namespace MiniMaxSharp.Tokenizers.Tests;

/// <summary>Locates the shared Hugging Face fixtures next to the repository.</summary>
internal static class FixturePaths
{
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "MiniMaxSharp.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("MiniMaxSharp.sln not found above " + AppContext.BaseDirectory);
        }
    }

    public static string Gpt2TokenizerDir => Path.Combine(RepoRoot, "..", "shared", "fixtures", "tokenizer-gpt2");
}
