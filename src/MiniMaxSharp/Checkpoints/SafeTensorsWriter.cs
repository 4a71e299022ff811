using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Checkpoints;

/// <summary>A tensor to store: raw little-endian bytes of <paramref name="DType"/> in row-major order.</summary>
public sealed record SafeTensorToWrite(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)
{
    /// <summary>Stores float32 values as F32, or narrows them to BF16 (round to nearest even) or F16.</summary>
    public static SafeTensorToWrite FromFloat32(string name, long[] shape, float[] data, DType storeAs)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = SafeTensorsWriter.ElementCount(name, shape);
        if (count != data.Length)
            throw new CheckpointException(
                $"tensor '{name}': shape {ShapeMath.Format(shape)} holds {count} elements but {data.Length} values were given");
        byte[] bytes;
        switch (storeAs)
        {
            case DType.F32:
                bytes = MemoryMarshal.AsBytes(data.AsSpan()).ToArray();
                break;
            case DType.BF16:
                var bf16 = new ushort[data.Length];
                BFloat16Conversions.Narrow(data, bf16);
                bytes = MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray();
                break;
            case DType.F16:
                var f16 = new Half[data.Length];
                HalfConversions.Narrow(data, f16);
                bytes = MemoryMarshal.AsBytes(f16.AsSpan()).ToArray();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(storeAs), storeAs, null);
        }
        return new SafeTensorToWrite(name, storeAs, shape, bytes);
    }
}

/// <summary>
/// Writes safetensors files in the layout Hugging Face writes: 8-byte little-endian header length, a JSON
/// header padded with spaces to a multiple of 8 bytes (so the data section starts 8-byte aligned), then the
/// tensors back to back in the order given. The file appears atomically (see <see cref="AtomicFileWriter"/>).
/// </summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        // Everything is validated before the temporary file exists, so bad input leaves nothing behind.
        var header = BuildHeader(path, list, metadata);

        using var writer = new AtomicFileWriter(path);
        Span<byte> lengthField = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthField, (ulong)header.Length);
        writer.Stream.Write(lengthField);
        writer.Stream.Write(header);
        foreach (var t in list) writer.Stream.Write(t.Data.Span);
        writer.Commit();
    }

    internal static long ElementCount(string name, long[] shape)
    {
        if (!ShapeMath.TryElementCount(shape, out long count))
            throw new CheckpointException(
                $"tensor '{name}': shape {ShapeMath.Format(shape)} has a negative dimension or too many elements");
        return count;
    }

    private static byte[] BuildHeader(string path, List<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var json = new MemoryStream();
        // Relaxed escaping keeps names readable (raw UTF-8, no \u003C for '<'); the header is never embedded in HTML.
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) w.WriteString(key, value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                ArgumentNullException.ThrowIfNull(t);
                string where = $"{path}: tensor '{t.Name}'";
                if (string.IsNullOrEmpty(t.Name) || t.Name == "__metadata__")
                    throw new CheckpointException($"{path}: invalid tensor name '{t.Name}'");
                if (!names.Add(t.Name))
                    throw new CheckpointException($"{where} is given twice");
                ArgumentNullException.ThrowIfNull(t.Shape);
                long expected = ElementCount(t.Name, t.Shape) * DTypeInfo.SizeOf(t.DType);
                if (expected != t.Data.Length)
                    throw new CheckpointException(
                        $"{where}: data is {t.Data.Length} bytes but shape {ShapeMath.Format(t.Shape)} of {DTypeInfo.SafeTensorsName(t.DType)} needs {expected}");

                w.WriteStartObject(t.Name);
                w.WriteString("dtype", DTypeInfo.SafeTensorsName(t.DType));
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + expected);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += expected;
            }
            w.WriteEndObject();
        }
        int unpadded = (int)json.Length;
        int padded = (unpadded + 7) / 8 * 8;
        var header = new byte[padded];
        json.GetBuffer().AsSpan(0, unpadded).CopyTo(header);
        header.AsSpan(unpadded).Fill((byte)' ');
        return header;
    }
}
