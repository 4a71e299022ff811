using System.Security.Cryptography;

namespace MiniMaxSharp.Checkpoints;

/// <summary>
/// Writes a file so that readers only ever see the old file or the complete new one: content goes to a
/// temporary file in the destination folder (same volume, so the final move is a rename), is flushed to disk,
/// and replaces the destination on <see cref="Commit"/>. Disposing without committing deletes the temporary file.
/// </summary>
internal sealed class AtomicFileWriter : IDisposable
{
    private readonly FileStream _stream;
    private bool _committed;

    public string DestinationPath { get; }
    public string TemporaryPath { get; }
    public Stream Stream => _stream;

    public AtomicFileWriter(string destinationPath)
    {
        DestinationPath = Path.GetFullPath(destinationPath);
        TemporaryPath = DestinationPath + ".tmp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        _stream = new FileStream(TemporaryPath, FileMode.CreateNew, FileAccess.Write, FileShare.None,
            bufferSize: 1 << 20);
    }

    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(TemporaryPath, DestinationPath, overwrite: true);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        _stream.Dispose();
        try
        {
            File.Delete(TemporaryPath);
        }
        catch (IOException)
        {
            // Best effort: the original failure matters more than a leftover temporary file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
