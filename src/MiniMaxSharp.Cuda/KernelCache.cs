using System.Security.Cryptography;
using System.Text;
using MiniMaxSharp.Checkpoints;

namespace MiniMaxSharp.Backends.Cuda;

/// <summary>
/// On-disk cache of compiled kernel modules. A module is stored under the SHA-256 of everything that
/// decides its bytes: the CUDA source, the NVRTC options, the target (sm_XX or compute_XX) and the
/// NVRTC version, so a changed kernel, option, GPU or compiler never reuses a stale binary.
/// Folder: $MINIMAXSHARP_KERNEL_CACHE, else $XDG_CACHE_HOME/minimaxsharp/kernels, else ~/.cache/minimaxsharp/kernels.
/// </summary>
internal sealed class KernelCache(string? directory)
{
    private const string FormatVersion = "minimaxsharp-kernel-cache-1";

    public string? Directory { get; } = directory;

    public static string Key(string source, IReadOnlyList<string> options, string target, (int Major, int Minor) nvrtcVersion)
    {
        var text = new StringBuilder();
        text.Append(FormatVersion).Append('\n');
        text.Append(target).Append('\n');
        text.Append("nvrtc ").Append(nvrtcVersion.Major).Append('.').Append(nvrtcVersion.Minor).Append('\n');
        // Length-prefixed so that no two option lists or sources can run together into the same text.
        foreach (string o in options) text.Append(o.Length).Append(':').Append(o).Append('\n');
        text.Append(source.Length).Append(':').Append(source);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    public static string? DefaultDirectory(Func<string, string?> getEnvironment)
    {
        if (getEnvironment("MINIMAXSHARP_KERNEL_CACHE") is { Length: > 0 } explicitDir) return explicitDir;
        if (getEnvironment("XDG_CACHE_HOME") is { Length: > 0 } xdg) return Path.Combine(xdg, "minimaxsharp", "kernels");
        if (getEnvironment("HOME") is { Length: > 0 } home) return Path.Combine(home, ".cache", "minimaxsharp", "kernels");
        return null;
    }

    public byte[]? TryRead(string key, string extension)
    {
        if (Directory is null) return null;
        string path = Path.Combine(Directory, key + extension);
        try
        {
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;   // an unreadable cache only costs a recompilation
        }
    }

    /// <summary>Stores a module atomically; a cache that cannot be written is skipped, not an error.</summary>
    public void Write(string key, string extension, ReadOnlySpan<byte> image)
    {
        if (Directory is null) return;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            using var writer = new AtomicFileWriter(Path.Combine(Directory, key + extension));
            writer.Stream.Write(image);
            writer.Commit();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
