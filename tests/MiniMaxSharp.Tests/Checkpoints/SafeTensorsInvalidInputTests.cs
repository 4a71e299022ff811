using System.Text;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Checkpoints;

/// <summary>Malformed files must fail at Open with a CheckpointException naming the file and the problem.</summary>
public class SafeTensorsInvalidInputTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string WriteFile(byte[] bytes, string name = "bad.safetensors")
    {
        var path = _dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private CheckpointException AssertOpenFails(byte[] bytes, params string[] messageParts)
    {
        var path = WriteFile(bytes);
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        foreach (var part in messageParts) Assert.Contains(part, e.Message);
        return e;
    }

    private CheckpointException AssertOpenFails(string header, int dataLength, params string[] messageParts) =>
        AssertOpenFails(RawSafeTensors.Build(header, dataLength), messageParts);

    [Fact]
    public void ValidHandBuiltFile_Opens()
    {
        // Baseline for the cases below: the same construction with a consistent header opens fine.
        var path = WriteFile(RawSafeTensors.Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}""", 11));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(2, file.Tensors.Count);
        Assert.Equal(8 + file.Tensors["a"].DataOffset, file.Tensors["b"].DataOffset);
    }

    [Fact]
    public void EmptyFile() => AssertOpenFails([], "truncated", "0 bytes");

    [Fact]
    public void TruncatedLengthField() => AssertOpenFails([16, 0, 0, 0, 0], "truncated", "5 bytes");

    [Fact]
    public void TruncatedData()
    {
        var full = RawSafeTensors.Build("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 16);
        AssertOpenFails(full[..^3], "'a'", "runs past the data section", "13 bytes");
    }

    [Fact]
    public void HeaderLengthBeyondFile() =>
        AssertOpenFails(RawSafeTensors.Build("{}", 0, lengthField: 1000), "header length field says 1000", "only 2 bytes");

    [Fact]
    public void HeaderLengthAboveLimit() =>
        AssertOpenFails(RawSafeTensors.Build("{}", 0, lengthField: 1UL << 40), "limit");

    [Fact]
    public void HeaderLengthFieldWithTopBitSet() =>
        AssertOpenFails(RawSafeTensors.Build("{}", 0, lengthField: ulong.MaxValue), "header length field");

    [Fact]
    public void HeaderNotJson() => AssertOpenFails("{not json at all", 0, "header is not valid JSON");

    [Fact]
    public void HeaderNotAnObject() => AssertOpenFails("[1, 2, 3]", 0, "must be a JSON object");

    [Fact]
    public void HeaderNotUtf8()
    {
        var header = Encoding.UTF8.GetBytes("{\"a\u00e9\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        int i = Array.IndexOf(header, (byte)0xC3);
        header[i] = 0xFF; // 0xFF never occurs in UTF-8
        AssertOpenFails(RawSafeTensors.Build(header, []), "not valid UTF-8");
    }

    [Fact]
    public void OverlappingOffsets() => AssertOpenFails(
        """{"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""",
        12, "'first'", "'second'", "overlap");

    [Fact]
    public void IdenticalOffsetsOverlap() => AssertOpenFails(
        """{"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""",
        4, "overlap");

    [Fact]
    public void OffsetsOutOfRange() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "'w'", "data_offsets", "[0, 16]", "holds 8 bytes");

    [Fact]
    public void OffsetsBeginAfterEnd() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8, "'w'", "begin after end");

    [Fact]
    public void OffsetsNegative() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 8, "'w'", "data_offsets", "non-negative");

    [Fact]
    public void OffsetsMissing() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[1]}}""", 4, "'w'", "data_offsets");

    [Fact]
    public void ByteLengthMismatch() => AssertOpenFails(
        """{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}""", 8, "'w'", "byte length mismatch", "span 8 bytes", "needs 6");

    [Fact]
    public void NegativeShape() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[-1, 2],"data_offsets":[0,0]}}""", 0, "'w'", "'shape' entry 0", "-1", "non-negative");

    [Fact]
    public void FractionalShape() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[2, 1.5],"data_offsets":[0,12]}}""", 12, "'w'", "'shape' entry 1", "1.5");

    [Fact]
    public void ShapeNotArray() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}}""", 16, "'w'", "'shape'");

    [Fact]
    public void ShapeElementCountOverflows() => AssertOpenFails(
        """{"w":{"dtype":"F32","shape":[4294967296, 4294967296],"data_offsets":[0,0]}}""", 0, "'w'", "too many elements");

    [Fact]
    public void UnknownDType() => AssertOpenFails(
        """{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}""", 16, "'w'", "unknown dtype 'F128'");

    [Fact]
    public void DTypeIsCaseSensitive() => AssertOpenFails(
        """{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}""", 4, "unknown dtype 'f32'");

    [Fact]
    public void SubByteDTypeNotWholeBytes() => AssertOpenFails(
        """{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}""", 2, "'w'", "not a whole number of bytes");

    [Fact]
    public void DuplicateTensorName() => AssertOpenFails(
        """{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2, "'w'", "twice");

    [Fact]
    public void MetadataValueNotString() => AssertOpenFails(
        """{"__metadata__":{"format":"pt","epoch":3}}""", 0, "__metadata__", "'epoch'", "must be a string");

    [Fact]
    public void MetadataNotObject() => AssertOpenFails("""{"__metadata__":["pt"]}""", 0, "__metadata__");

    [Fact]
    public void EntryNotObject() => AssertOpenFails("""{"w":[1,2]}""", 0, "'w'", "must be an object");

    [Fact]
    public void MissingFile()
    {
        var path = _dir.File("nope.safetensors");
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AllDTypes_AreAcceptedWithTheirSizes()
    {
        // Every spelling the format defines opens, with sizes checked in bits (F4 packs two per byte, F6 four per 3 bytes).
        var entries = new List<string>();
        long offset = 0;
        foreach (var dtype in Enum.GetValues<SafeTensorsDType>())
        {
            long bytes = 8 * SafeTensorsDTypeInfo.SizeInBits(dtype) / 8;
            entries.Add($"\"t_{dtype}\":{{\"dtype\":\"{dtype}\",\"shape\":[2,4],\"data_offsets\":[{offset},{offset + bytes}]}}");
            offset += bytes;
        }
        var path = WriteFile(RawSafeTensors.Build("{" + string.Join(",", entries) + "}", (int)offset));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(Enum.GetValues<SafeTensorsDType>().Length, file.Tensors.Count);
        Assert.Equal(22, file.Tensors.Count);
        Assert.Equal(4, file.Tensors["t_F4"].ByteLength);
        Assert.Equal(6, file.Tensors["t_F6_E2M3"].ByteLength);
        Assert.Equal(64, file.Tensors["t_C64"].ByteLength);
        Assert.Equal(SafeTensorsDType.F8_E4M3, file.Tensors["t_F8_E4M3"].DType);
    }

    [Fact]
    public void UnsupportedDTypeAccessed_NamesTensorAndSupportedTypes()
    {
        var path = WriteFile(RawSafeTensors.Build("""{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}""", 16));
        using var file = SafeTensorsFile.Open(path);
        var info = file.Tensors["ids"];
        Assert.Equal(SafeTensorsDType.I64, info.DType);
        Assert.False(info.TryGetDType(out _));
        Assert.Equal(16, file.GetBytes("ids").Length); // raw bytes stay reachable

        var e = Assert.Throws<CheckpointException>(() => file.ReadAsFloat32("ids"));
        Assert.Contains("tensor 'ids'", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("has dtype I64; supported: F32, BF16, F16", e.Message);
        Assert.Throws<CheckpointException>(() => info.ToEngineDType());
    }

    [Fact]
    public void MissingTensor_NamesTheTensorAndFile()
    {
        var path = _dir.File("ok.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("present", [1], [1], DType.F32)]);
        using var file = SafeTensorsFile.Open(path);
        var e = Assert.Throws<CheckpointException>(() => file.ReadAsFloat32("absent"));
        Assert.Contains("'absent'", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public unsafe void PointerUse_AfterDispose_Throws()
    {
        var path = _dir.File("ok.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("x", [1], [1], DType.F32)]);
        var file = SafeTensorsFile.Open(path);
        var info = file.Tensors["x"];
        file.Dispose();
        file.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => { _ = file.GetBytes("x").Length; });
        Assert.Throws<ObjectDisposedException>(() => { var p = file.GetPointer(info); });
    }

    [Fact]
    public void InfoFromAnotherFile_IsRejectedByGetPointer()
    {
        var a = _dir.File("a.safetensors");
        var b = _dir.File("b.safetensors");
        SafeTensorsWriter.Write(a, [SafeTensorToWrite.FromFloat32("x", [1], [1], DType.F32)]);
        SafeTensorsWriter.Write(b, [SafeTensorToWrite.FromFloat32("x", [64], new float[64], DType.F32)]);
        using var fa = SafeTensorsFile.Open(a);
        using var fb = SafeTensorsFile.Open(b);
        Assert.Throws<ArgumentException>(() => { unsafe { _ = fa.GetPointer(fb.Tensors["x"]); } });
    }
}
