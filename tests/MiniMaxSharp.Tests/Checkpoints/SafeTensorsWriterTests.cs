using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Tensors;

namespace MiniMaxSharp.Tests.Checkpoints;

public class SafeTensorsWriterTests
{
    private static float[] SampleValues(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 8 - 4);
        return values;
    }

    [Fact]
    public void F32_RoundTripsExactly()
    {
        using var dir = new TempDirectory();
        var path = dir.File("f32.safetensors");
        var a = SampleValues(6, 1);
        var b = new[] { 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, float.MaxValue, 1e-40f };
        SafeTensorsWriter.Write(path, [
            SafeTensorToWrite.FromFloat32("a", [2, 3], a, DType.F32),
            SafeTensorToWrite.FromFloat32("b.special", [7], b, DType.F32),
        ]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new long[] { 2, 3 }, file.Tensors["a"].Shape);
        Assert.Equal(SafeTensorsDType.F32, file.Tensors["a"].DType);
        Assert.Equal(a, file.ReadAsFloat32("a"));
        // Compare bit patterns so -0 and denormals count.
        Assert.Equal(MemoryMarshal.Cast<float, uint>(b).ToArray(), MemoryMarshal.Cast<float, uint>(file.ReadAsFloat32("b.special")).ToArray());
    }

    [Fact]
    public void BF16_RoundTripsAndRoundsToNearestEven()
    {
        using var dir = new TempDirectory();
        var path = dir.File("bf16.safetensors");
        // 1 + 2^-8 lies exactly between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
        // 1 + 3·2^-8 lies between 1 + 2^-7 (odd mantissa) and 1 + 2^-6: ties go to 1 + 2^-6.
        var values = new[] { 1f, -2.5f, 1f + MathF.Pow(2, -8), 1f + 3 * MathF.Pow(2, -8), 3.14159265f, float.NaN, float.NegativeInfinity };
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("w", [7], values, DType.BF16)]);

        using var file = SafeTensorsFile.Open(path);
        var info = file.Tensors["w"];
        Assert.Equal(SafeTensorsDType.BF16, info.DType);
        Assert.Equal(DType.BF16, info.ToEngineDType());
        Assert.Equal(14, info.ByteLength);
        var read = file.ReadAsFloat32("w");
        Assert.Equal(1f, read[0]);
        Assert.Equal(-2.5f, read[1]);
        Assert.Equal(1f, read[2]);
        Assert.Equal(1f + MathF.Pow(2, -6), read[3]);
        Assert.Equal(3.140625f, read[4]); // 0x4049: the nearest bf16 to pi
        Assert.True(float.IsNaN(read[5]));
        Assert.Equal(float.NegativeInfinity, read[6]);
        Assert.Equal((ushort)0x4049, BinaryPrimitives.ReadUInt16LittleEndian(file.GetBytes("w")[8..]));
    }

    [Fact]
    public void F16_RoundTripsThroughHalf()
    {
        using var dir = new TempDirectory();
        var path = dir.File("f16.safetensors");
        var values = SampleValues(33, 2).Append(65504f).Append(1e-7f).Append(70000f).ToArray();
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("h", [values.Length], values, DType.F16)]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(SafeTensorsDType.F16, file.Tensors["h"].DType);
        var read = file.ReadAsFloat32("h");
        for (int i = 0; i < values.Length; i++) Assert.Equal((float)(Half)values[i], read[i]);
        Assert.Equal(65504f, read[^3]);
        Assert.Equal(float.PositiveInfinity, read[^1]); // beyond the F16 range
        Assert.True(Math.Abs(read[0] - values[0]) <= Math.Abs(values[0]) * 1e-3f);
    }

    [Fact]
    public void Layout_FollowsHuggingFaceRules()
    {
        using var dir = new TempDirectory();
        var path = dir.File("layout.safetensors");
        var tensors = new[]
        {
            SafeTensorToWrite.FromFloat32("z.first", [3], [1, 2, 3], DType.F32),
            SafeTensorToWrite.FromFloat32("a.second", [1, 3], [4, 5, 6], DType.BF16),
            SafeTensorToWrite.FromFloat32("m.scalar", [], [7], DType.F16),
            SafeTensorToWrite.FromFloat32("empty", [0, 4], [], DType.F32),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode <ok>" };
        SafeTensorsWriter.Write(path, tensors, metadata);

        // Check the bytes with an independent parse rather than with SafeTensorsFile.
        var bytes = File.ReadAllBytes(path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, (8 + headerLength) % 8);
        var header = bytes.AsSpan(8, (int)headerLength);
        int jsonEnd = header.LastIndexOf((byte)'}') + 1;
        Assert.True(header[jsonEnd..].IndexOfAnyExcept((byte)' ') < 0, "padding must be spaces");
        Assert.True(header.Length - jsonEnd < 8);

        using var doc = JsonDocument.Parse(header.ToArray());
        var root = doc.RootElement;
        Assert.Equal("pt", root.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal("ünïcode <ok>", root.GetProperty("__metadata__").GetProperty("note").GetString());
        long expectedBegin = 0;
        foreach (var t in tensors)
        {
            var entry = root.GetProperty(t.Name);
            Assert.Equal(DTypeInfo.SafeTensorsName(t.DType), entry.GetProperty("dtype").GetString());
            Assert.Equal(t.Shape, entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
            var offsets = entry.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Assert.Equal(new[] { expectedBegin, expectedBegin + t.Data.Length }, offsets);
            // Tensors are stored in the given order, back to back.
            Assert.Equal(t.Data.ToArray(), bytes.AsSpan(8 + (int)headerLength + (int)expectedBegin, t.Data.Length).ToArray());
            expectedBegin += t.Data.Length;
        }
        Assert.Equal(8 + (long)headerLength + expectedBegin, bytes.LongLength);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(new[] { 7f }, file.ReadAsFloat32("m.scalar"));
        Assert.Empty(file.Tensors["m.scalar"].Shape);
        Assert.Empty(file.ReadAsFloat32("empty"));
        Assert.Equal(0, file.Tensors["empty"].ElementCount);
    }

    [Fact]
    public void Write_ReplacesExistingFileAndLeavesNoTemporaryFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("model.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("x", [1], [1], DType.F32)]);
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("y", [2], [2, 3], DType.F32)]);

        Assert.Equal(new[] { "model.safetensors" }, dir.ListFiles());
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { "y" }, file.Tensors.Keys);
        Assert.Equal(new[] { 2f, 3f }, file.ReadAsFloat32("y"));
    }

    [Fact]
    public void Write_WrongDataLength_ThrowsAndLeavesNoFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("bad.safetensors");
        var tensors = new[]
        {
            SafeTensorToWrite.FromFloat32("good", [2], [1, 2], DType.F32),
            new SafeTensorToWrite("short", DType.BF16, [2, 2], new byte[6]),
        };
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsWriter.Write(path, tensors));
        Assert.Contains("'short'", e.Message);
        Assert.Contains("6 bytes", e.Message);
        Assert.Contains("needs 8", e.Message);
        Assert.Empty(dir.ListFiles());
    }

    [Fact]
    public void Write_WrongDataLength_KeepsThePreviousFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("keep.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32("old", [1], [42], DType.F32)]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<CheckpointException>(() =>
            SafeTensorsWriter.Write(path, [new SafeTensorToWrite("new", DType.F32, [3], new byte[4])]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(new[] { "keep.safetensors" }, dir.ListFiles());
    }

    [Fact]
    public void Write_RejectsDuplicateNamesAndNegativeShapes()
    {
        using var dir = new TempDirectory();
        var path = dir.File("dup.safetensors");
        var dup = Assert.Throws<CheckpointException>(() => SafeTensorsWriter.Write(path, [
            SafeTensorToWrite.FromFloat32("x", [1], [1], DType.F32),
            SafeTensorToWrite.FromFloat32("x", [1], [2], DType.F32),
        ]));
        Assert.Contains("'x' is given twice", dup.Message);

        var negative = Assert.Throws<CheckpointException>(() =>
            SafeTensorsWriter.Write(path, [new SafeTensorToWrite("neg", DType.F32, [-1], Array.Empty<byte>())]));
        Assert.Contains("negative", negative.Message);
        Assert.Empty(dir.ListFiles());
    }

    [Fact]
    public void FromFloat32_RejectsCountNotMatchingShape()
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensorToWrite.FromFloat32("t", [2, 3], new float[5], DType.BF16));
        Assert.Contains("'t'", e.Message);
        Assert.Contains("6 elements", e.Message);
    }

    [Fact]
    public void AtomicWriter_FailureMidWriteDeletesTheTemporaryFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("partial.bin");
        File.WriteAllText(path, "previous");
        string? temporary = null;
        Action writeThenFail = () =>
        {
            using var writer = new AtomicFileWriter(path);
            temporary = writer.TemporaryPath;
            writer.Stream.Write(Encoding.ASCII.GetBytes("half of the new content"));
            Assert.True(File.Exists(temporary));
            Assert.Equal(dir.Path, Path.GetDirectoryName(temporary));
            throw new InvalidOperationException("simulated failure while writing");
        };
        Assert.Throws<InvalidOperationException>(writeThenFail);
        Assert.NotNull(temporary);
        Assert.False(File.Exists(temporary));
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal(new[] { "partial.bin" }, dir.ListFiles());
    }
}
