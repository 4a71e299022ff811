namespace MiniMaxSharp.Tests;

/// <summary>Locations tests need: the repository root and the shared, read-only reference fixtures beside it.</summary>
public static class TestPaths
{
    private static readonly Lazy<string> Root = new(FindRepoRoot);

    /// <summary>The folder holding MiniMaxSharp.sln, found by walking up from the test binaries.</summary>
    public static string RepoRoot => Root.Value;

    /// <summary>The shared fixtures folder, <c>&lt;repo&gt;/../shared/fixtures</c>.</summary>
    public static string Fixtures => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures"));

    /// <summary>A file or folder under <see cref="Fixtures"/>, e.g. <c>Fixture("tiny-hybrid", "config.json")</c>.</summary>
    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MiniMaxSharp.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"no folder holding MiniMaxSharp.sln above {AppContext.BaseDirectory}");
    }
}
