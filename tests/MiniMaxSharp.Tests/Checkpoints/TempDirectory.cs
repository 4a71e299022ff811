using System.Buffers.Binary;
using System.Text;

namespace MiniMaxSharp.Tests.Checkpoints;

/// <summary>A fresh folder under the system temp directory, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("minimaxsharp-tests-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string[] ListFiles() => Directory.GetFiles(Path).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Builds safetensors bytes by hand, so tests can produce files no correct writer would.</summary>
internal static class RawSafeTensors
{
    public static byte[] Build(string headerJson, int dataLength, ulong? lengthField = null) =>
        Build(Encoding.UTF8.GetBytes(headerJson), new byte[dataLength], lengthField);

    public static byte[] Build(byte[] header, byte[] data, ulong? lengthField = null)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }
}
