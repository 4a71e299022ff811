using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace MiniMaxSharp.Checkpoints;

/// <summary>A NumPy array read as float32, row-major (C order).</summary>
public sealed record NpyArray(int[] Shape, float[] Data);

/// <summary>
/// NumPy .npy files: magic "\x93NUMPY", version, a little-endian header length (2 bytes in v1.0, 4 in v2.0/3.0),
/// a Python dict literal with 'descr', 'fortran_order' and 'shape', then the raw data.
/// Reads little-endian float32, float64, int32 and int64 in C order (the others converted to float32);
/// writes v1.0 float32.
/// </summary>
public static class Npy
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>NumPy aligns the data section to 64 bytes so it can be memory-mapped for any vector width.</summary>
    private const int DataAlignment = 64;

    public static NpyArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException(".npy reading assumes a little-endian host");
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot open .npy file: {e.Message}", e);
        }
        using (stream)
        {
            var (descr, shape, dataStart) = ReadHeader(path, stream);
            int itemSize = descr switch
            {
                "<f4" or "<i4" => 4,
                "<f8" or "<i8" => 8,
                _ => throw new CheckpointException(
                    $"{path}: unsupported dtype '{descr}'; supported: '<f4', '<f8', '<i4', '<i8' (little-endian)"),
            };
            if (!ShapeMath.TryElementCount(Array.ConvertAll(shape, d => (long)d), out long count) || count > Array.MaxLength)
                throw new CheckpointException($"{path}: shape ({string.Join(", ", shape)}) has too many elements for one array");
            long expectedBytes = count * itemSize;
            long actualBytes = stream.Length - dataStart;
            if (actualBytes < expectedBytes)
                throw new CheckpointException(
                    $"{path}: truncated data: shape ({string.Join(", ", shape)}) of '{descr}' needs {expectedBytes} bytes after the header, the file has {actualBytes}");
            if (actualBytes > expectedBytes)
                throw new CheckpointException(
                    $"{path}: {actualBytes - expectedBytes} unexpected bytes after the data of shape ({string.Join(", ", shape)}) '{descr}'");

            var data = new float[count];
            stream.Position = dataStart;
            if (descr == "<f4")
                ReadExactly(path, stream, MemoryMarshal.AsBytes(data.AsSpan()));
            else
                ReadConverted(path, stream, descr, itemSize, data);
            return new NpyArray(shape, data);
        }
    }

    /// <summary>Writes a v1.0 little-endian float32 C-order array, atomically.</summary>
    public static void Write(string path, ReadOnlySpan<float> data, ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(path);
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape ({string.Join(", ", shape.ToArray())}) has a negative dimension", nameof(shape));
            count = checked(count * d);
        }
        if (count != data.Length)
            throw new ArgumentException(
                $"shape ({string.Join(", ", shape.ToArray())}) holds {count} elements but {data.Length} values were given", nameof(data));

        var header = BuildHeader(shape);
        using var writer = new AtomicFileWriter(path);
        writer.Stream.Write(header);
        // Large arrays go out in chunks so the byte view never exceeds int.MaxValue.
        const int chunk = 1 << 24;
        for (int i = 0; i < data.Length; i += chunk)
            writer.Stream.Write(MemoryMarshal.AsBytes(data.Slice(i, Math.Min(chunk, data.Length - i))));
        writer.Commit();
    }

    private static byte[] BuildHeader(ReadOnlySpan<int> shape)
    {
        // Python tuple syntax: "()" for a scalar, "(5,)" for one dimension, "(2, 3)" otherwise.
        var dims = new StringBuilder();
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) dims.Append(", ");
            dims.Append(shape[i].ToString(CultureInfo.InvariantCulture));
        }
        if (shape.Length == 1) dims.Append(',');
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        const int prefixLength = 10; // magic (6) + version (2) + header length (2)
        int unpadded = prefixLength + dict.Length + 1; // + the terminating newline
        int total = (unpadded + DataAlignment - 1) / DataAlignment * DataAlignment;
        int headerLength = total - prefixLength;
        if (headerLength > ushort.MaxValue)
            throw new ArgumentException($"shape with {shape.Length} dimensions does not fit a v1.0 .npy header");

        var bytes = new byte[total];
        Magic.CopyTo(bytes);
        bytes[6] = 1; // version 1.0
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        int written = Encoding.ASCII.GetBytes(dict, bytes.AsSpan(prefixLength));
        bytes.AsSpan(prefixLength + written, total - prefixLength - written - 1).Fill((byte)' ');
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    private static (string Descr, int[] Shape, long DataStart) ReadHeader(string path, FileStream stream)
    {
        Span<byte> prefix = stackalloc byte[12];
        int got = stream.ReadAtLeast(prefix[..10], 10, throwOnEndOfStream: false);
        if (got < 10 || !prefix[..6].SequenceEqual(Magic))
            throw new CheckpointException($"{path}: not a .npy file (bad magic; expected \\x93NUMPY followed by a version)");
        byte major = prefix[6];
        int headerLength;
        int prefixLength;
        Encoding headerEncoding;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..]);
                prefixLength = 10;
                headerEncoding = Encoding.Latin1;
                break;
            case 2:
            case 3:
                if (stream.ReadAtLeast(prefix[10..12], 2, throwOnEndOfStream: false) < 2)
                    throw new CheckpointException($"{path}: truncated .npy header");
                uint length32 = BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
                if (length32 > 100_000_000)
                    throw new CheckpointException($"{path}: .npy header length {length32} is implausibly large");
                headerLength = (int)length32;
                prefixLength = 12;
                // Version 3.0 differs only in allowing UTF-8 in the header (for structured field names).
                headerEncoding = major == 3 ? new UTF8Encoding(false, throwOnInvalidBytes: true) : Encoding.Latin1;
                break;
            default:
                throw new CheckpointException($"{path}: unsupported .npy format version {major}.{prefix[7]}");
        }
        var headerBytes = new byte[headerLength];
        if (stream.ReadAtLeast(headerBytes, headerLength, throwOnEndOfStream: false) < headerLength)
            throw new CheckpointException($"{path}: truncated .npy header: {headerLength} bytes announced");
        string header;
        try
        {
            header = headerEncoding.GetString(headerBytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointException($"{path}: .npy header is not valid UTF-8", e);
        }

        var dict = new PythonLiteralParser(path, header).ParseHeaderDict();
        if (!dict.TryGetValue("descr", out var descrValue) || descrValue is not string descr)
            throw new CheckpointException($"{path}: .npy header lacks a string 'descr'");
        if (!dict.TryGetValue("fortran_order", out var orderValue) || orderValue is not bool fortranOrder)
            throw new CheckpointException($"{path}: .npy header lacks a boolean 'fortran_order'");
        if (fortranOrder)
            throw new CheckpointException($"{path}: Fortran-order (column-major) arrays are not supported; save with C order");
        if (!dict.TryGetValue("shape", out var shapeValue) || shapeValue is not List<long> shapeList)
            throw new CheckpointException($"{path}: .npy header lacks a 'shape' tuple");
        var shape = new int[shapeList.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (shapeList[i] < 0 || shapeList[i] > int.MaxValue)
                throw new CheckpointException($"{path}: .npy 'shape' dimension {i} is {shapeList[i]}, outside 0..{int.MaxValue}");
            shape[i] = (int)shapeList[i];
        }
        return (descr, shape, prefixLength + (long)headerLength);
    }

    private static void ReadExactly(string path, Stream stream, Span<byte> destination)
    {
        // Span lengths are ints, so huge arrays are read in pieces.
        while (!destination.IsEmpty)
        {
            int n = stream.Read(destination);
            if (n == 0) throw new CheckpointException($"{path}: truncated .npy data");
            destination = destination[n..];
        }
    }

    private static void ReadConverted(string path, Stream stream, string descr, int itemSize, float[] data)
    {
        var buffer = new byte[1 << 20];
        int perChunk = buffer.Length / itemSize;
        for (int start = 0; start < data.Length; start += perChunk)
        {
            int n = Math.Min(perChunk, data.Length - start);
            var bytes = buffer.AsSpan(0, n * itemSize);
            ReadExactly(path, stream, bytes);
            var target = data.AsSpan(start, n);
            switch (descr)
            {
                case "<f8":
                    for (int i = 0; i < n; i++) target[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]);
                    break;
                case "<i4":
                    for (int i = 0; i < n; i++) target[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * 4)..]);
                    break;
                case "<i8":
                    for (int i = 0; i < n; i++) target[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[(i * 8)..]);
                    break;
                default:
                    throw new InvalidOperationException($"no conversion for '{descr}'");
            }
        }
    }

    /// <summary>
    /// Parses the small subset of Python literal syntax a .npy header uses: a dict with string keys whose
    /// values are strings, True/False, or tuples of integers.
    /// </summary>
    private sealed class PythonLiteralParser(string path, string text)
    {
        private int _pos;

        public Dictionary<string, object> ParseHeaderDict()
        {
            SkipSpace();
            Expect('{');
            var result = new Dictionary<string, object>(StringComparer.Ordinal);
            while (true)
            {
                SkipSpace();
                if (TryConsume('}')) break;
                string key = ParseString();
                SkipSpace();
                Expect(':');
                SkipSpace();
                object value = ParseValue();
                if (!result.TryAdd(key, value))
                    throw Error($"key '{key}' appears twice");
                SkipSpace();
                if (TryConsume(',')) continue;
                SkipSpace();
                Expect('}');
                break;
            }
            SkipSpace();
            if (_pos != text.Length)
                throw Error($"unexpected text after the dict at offset {_pos}");
            return result;
        }

        private object ParseValue()
        {
            if (_pos < text.Length && text[_pos] is '\'' or '"') return ParseString();
            if (TryConsumeWord("True")) return true;
            if (TryConsumeWord("False")) return false;
            if (TryConsume('(')) return ParseIntTuple();
            throw Error($"unsupported value at offset {_pos}");
        }

        private List<long> ParseIntTuple()
        {
            var items = new List<long>();
            while (true)
            {
                SkipSpace();
                if (TryConsume(')')) return items;
                items.Add(ParseInt());
                SkipSpace();
                if (TryConsume(',')) continue;
                SkipSpace();
                Expect(')');
                return items;
            }
        }

        private long ParseInt()
        {
            int start = _pos;
            // Older NumPy on some platforms wrote Python 2 longs such as "3L".
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos])) _pos++;
            if (start == _pos) throw Error($"expected an integer at offset {start}");
            if (!long.TryParse(text.AsSpan(start, _pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                throw Error($"integer '{text[start.._pos]}' is out of range");
            if (_pos < text.Length && text[_pos] == 'L') _pos++;
            return value;
        }

        private string ParseString()
        {
            if (_pos >= text.Length || text[_pos] is not ('\'' or '"'))
                throw Error($"expected a quoted string at offset {_pos}");
            char quote = text[_pos++];
            int start = _pos;
            while (_pos < text.Length && text[_pos] != quote)
            {
                if (text[_pos] == '\\') throw Error("escape sequences in header strings are not supported");
                _pos++;
            }
            if (_pos >= text.Length) throw Error("unterminated string");
            return text[start.._pos++];
        }

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        private bool TryConsume(char c)
        {
            if (_pos < text.Length && text[_pos] == c)
            {
                _pos++;
                return true;
            }
            return false;
        }

        private bool TryConsumeWord(string word)
        {
            if (string.CompareOrdinal(text, _pos, word, 0, word.Length) != 0) return false;
            _pos += word.Length;
            return true;
        }

        private void Expect(char c)
        {
            if (!TryConsume(c))
                throw Error(_pos < text.Length ? $"expected '{c}' at offset {_pos}, found '{text[_pos]}'" : $"expected '{c}' but the header ended");
        }

        private CheckpointException Error(string what) => new($"{path}: malformed .npy header: {what}");
    }
}
