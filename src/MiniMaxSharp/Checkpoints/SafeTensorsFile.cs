using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Checkpoints;

/// <summary>
/// A safetensors file mapped read-only into memory: an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON describing each tensor (dtype, shape, data_offsets relative to the data section), then the data.
/// The header is fully validated at <see cref="Open"/>, so every <see cref="SafeTensorInfo"/> handed out
/// describes bytes that lie inside the file and belong to that tensor alone.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Largest header accepted; a bigger length field means a corrupt or hostile file.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path, long fileLength, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer)
    {
        Path = path;
        FileLength = fileLength;
        _map = map;
        _view = view;
        _base = basePointer;
        var (tensors, metadata) = ParseHeader(path, new ReadOnlySpan<byte>(basePointer, checked((int)Math.Min(fileLength, 8 + MaxHeaderBytes))), fileLength);
        Tensors = tensors;
        Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var fullPath = System.IO.Path.GetFullPath(path);
        FileStream stream;
        try
        {
            stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{fullPath}: cannot open safetensors file: {e.Message}", e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long length = stream.Length;
            // Mapping an empty file fails, and anything under 8 bytes cannot even hold the length field.
            if (length < 8)
                throw new CheckpointException($"{fullPath}: truncated safetensors file: {length} bytes, the 8-byte header length field alone needs 8");
            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            pointerAcquired = true;
            return new SafeTensorsFile(fullPath, length, map, view, p + view.PointerOffset);
        }
        catch
        {
            if (pointerAcquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            if (map is not null) map.Dispose();
            else stream.Dispose();
            throw;
        }
    }

    /// <summary>Looks a tensor up by name, with an error naming the file and the tensor when it is absent.</summary>
    public SafeTensorInfo Get(string name)
    {
        if (Tensors.TryGetValue(name, out var info)) return info;
        throw new CheckpointException($"{Path}: no tensor named '{name}' (the file holds {Tensors.Count} tensors)");
    }

    /// <summary>Pointer to the tensor's first byte inside the mapping; valid until <see cref="Dispose"/>.</summary>
    public byte* GetPointer(SafeTensorInfo t)
    {
        ArgumentNullException.ThrowIfNull(t);
        ObjectDisposedException.ThrowIf(_base is null, this);
        // Only infos validated against this file are safe to turn into pointers.
        if (!Tensors.TryGetValue(t.Name, out var own) || own.DataOffset != t.DataOffset || own.ByteLength != t.ByteLength)
            throw new ArgumentException($"tensor '{t.Name}' does not belong to {Path}", nameof(t));
        return _base + t.DataOffset;
    }

    /// <summary>The tensor's raw little-endian bytes. Tensors of 2 GB or more must use <see cref="GetPointer"/>.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = Get(name);
        if (info.ByteLength > int.MaxValue)
            throw new CheckpointException(
                $"{Path}: tensor '{name}' is {info.ByteLength} bytes, too large for a span; use GetPointer");
        return new ReadOnlySpan<byte>(GetPointer(info), (int)info.ByteLength);
    }

    /// <summary>Copies an F32, BF16 or F16 tensor into a new float array, widening the 16-bit types exactly.</summary>
    public float[] ReadAsFloat32(string name)
    {
        var info = Get(name);
        var dtype = info.ToEngineDType();
        long count = info.ElementCount;
        if (count > Array.MaxLength)
            throw new CheckpointException($"{Path}: tensor '{name}' has {count} elements, too many for one array");
        var bytes = GetBytes(name);
        var result = new float[count];
        switch (dtype)
        {
            case DType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
                break;
            case DType.BF16:
                BFloat16Conversions.Widen(MemoryMarshal.Cast<byte, ushort>(bytes), result);
                break;
            case DType.F16:
                HalfConversions.Widen(MemoryMarshal.Cast<byte, Half>(bytes), result);
                break;
            default:
                throw new InvalidOperationException($"unhandled engine dtype {dtype}");
        }
        return result;
    }

    public void Dispose()
    {
        if (_base is null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";

    // ---- header validation ----

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(
        string path, ReadOnlySpan<byte> prefix, long fileLength)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; big-endian hosts are not supported");

        ulong headerLengthField = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLengthField > MaxHeaderBytes)
            throw new CheckpointException(
                $"{path}: header length field says {headerLengthField} bytes, above the {MaxHeaderBytes}-byte limit (corrupt or not a safetensors file)");
        long headerLength = (long)headerLengthField;
        if (8 + headerLength > fileLength)
            throw new CheckpointException(
                $"{path}: header length field says {headerLength} bytes but the file has only {fileLength - 8} bytes after it (truncated file?)");
        long dataStart = 8 + headerLength;
        long dataLength = fileLength - dataStart;
        var header = prefix.Slice(8, (int)headerLength);

        if (!Utf8.IsValid(header))
            throw new CheckpointException($"{path}: header is not valid UTF-8");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: header is not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{path}: header must be a JSON object, found {doc.RootElement.ValueKind}");

            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (sawMetadata) throw new CheckpointException($"{path}: header has '{MetadataKey}' twice");
                    sawMetadata = true;
                    ParseMetadata(path, property.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new CheckpointException($"{path}: tensor '{property.Name}' appears twice in the header");
                tensors.Add(property.Name, ParseTensorEntry(path, property.Name, property.Value, dataStart, dataLength));
            }
            CheckNoOverlap(path, tensors.Values);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{path}: '{MetadataKey}' must be an object of strings, found {value.ValueKind}");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointException(
                    $"{path}: '{MetadataKey}' entry '{entry.Name}' must be a string, found {entry.Value.ValueKind}");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new CheckpointException($"{path}: '{MetadataKey}' has key '{entry.Name}' twice");
        }
    }

    private static SafeTensorInfo ParseTensorEntry(string path, string name, JsonElement entry, long dataStart, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (entry.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{where}: entry must be an object, found {entry.ValueKind}");

        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointException($"{where}: missing or non-string 'dtype'");
        string dtypeName = dtypeElement.GetString()!;
        if (!SafeTensorsDTypeInfo.TryParse(dtypeName, out var dtype))
            throw new CheckpointException($"{where}: unknown dtype '{dtypeName}'");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointException($"{where}: missing or non-array 'shape'");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long d) || d < 0)
                throw new CheckpointException($"{where}: 'shape' entry {i} is {dim.GetRawText()}, expected a non-negative integer");
            shape[i++] = d;
        }
        if (!ShapeMath.TryElementCount(shape, out long elementCount))
            throw new CheckpointException($"{where}: 'shape' {ShapeMath.Format(shape)} has too many elements");

        if (!entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw new CheckpointException($"{where}: missing 'data_offsets' or not a [begin, end] pair");
        var begin = offsetsElement[0];
        var end = offsetsElement[1];
        if (begin.ValueKind != JsonValueKind.Number || !begin.TryGetInt64(out long b) || b < 0
            || end.ValueKind != JsonValueKind.Number || !end.TryGetInt64(out long e) || e < 0)
            throw new CheckpointException(
                $"{where}: 'data_offsets' {offsetsElement.GetRawText()} must be two non-negative integers");
        if (b > e)
            throw new CheckpointException($"{where}: 'data_offsets' [{b}, {e}] has begin after end");
        if (e > dataLength)
            throw new CheckpointException(
                $"{where}: 'data_offsets' [{b}, {e}] runs past the data section, which holds {dataLength} bytes (truncated file?)");

        long? expected = SafeTensorsDTypeInfo.ByteLengthOf(dtype, elementCount);
        if (expected is null)
            throw new CheckpointException(
                $"{where}: {elementCount} elements of {dtypeName} are not a whole number of bytes");
        if (expected.Value != e - b)
            throw new CheckpointException(
                $"{where}: byte length mismatch: 'data_offsets' [{b}, {e}] span {e - b} bytes but shape {ShapeMath.Format(shape)} of {dtypeName} needs {expected.Value}");

        return new SafeTensorInfo(name, dtype, shape, dataStart + b, e - b) { FilePath = path };
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafeTensorInfo> tensors)
    {
        // Empty tensors own no bytes, so they cannot overlap anything.
        var ordered = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.DataOffset).ToList();
        for (int i = 1; i < ordered.Count; i++)
        {
            var previous = ordered[i - 1];
            var current = ordered[i];
            if (current.DataOffset < previous.DataOffset + previous.ByteLength)
                throw new CheckpointException(
                    $"{path}: tensors '{previous.Name}' and '{current.Name}' overlap in the data section");
        }
    }
}
