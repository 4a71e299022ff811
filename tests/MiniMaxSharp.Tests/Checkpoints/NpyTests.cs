using System.Buffers.Binary;
using System.Text;
using MiniMaxSharp.Checkpoints;

namespace MiniMaxSharp.Tests.Checkpoints;

public class NpyTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Hand-built .npy bytes: magic, version, header length (2 or 4 bytes), header text, data.</summary>
    private static byte[] BuildNpy(string header, byte[] data, byte major = 1, byte[]? magic = null)
    {
        var headerBytes = Encoding.ASCII.GetBytes(header);
        int lengthSize = major == 1 ? 2 : 4;
        var bytes = new List<byte>();
        bytes.AddRange(magic ?? [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y']);
        bytes.Add(major);
        bytes.Add(0);
        var length = new byte[lengthSize];
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)headerBytes.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)headerBytes.Length);
        bytes.AddRange(length);
        bytes.AddRange(headerBytes);
        bytes.AddRange(data);
        return bytes.ToArray();
    }

    private static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    private string WriteFile(byte[] bytes)
    {
        var path = _dir.File("array.npy");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private void AssertReadFails(byte[] bytes, params string[] messageParts)
    {
        var path = WriteFile(bytes);
        var e = Assert.Throws<CheckpointException>(() => Npy.Read(path));
        Assert.Contains(path, e.Message);
        foreach (var part in messageParts) Assert.Contains(part, e.Message);
    }

    [Theory]
    [InlineData(new int[0])]
    [InlineData(new[] { 5 })]
    [InlineData(new[] { 2, 3 })]
    [InlineData(new[] { 0 })]
    [InlineData(new[] { 2, 0, 3 })]
    [InlineData(new[] { 3, 1, 4, 1, 5 })]
    public void WriteThenRead_RoundTripsAndAlignsData(int[] shape)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        var data = Enumerable.Range(0, count).Select(i => i * 0.5f - 3).ToArray();
        var path = _dir.File("round.npy");
        Npy.Write(path, data, shape);

        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        int dataStart = 10 + BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.Equal(0, dataStart % 64);
        Assert.Equal((byte)'\n', bytes[dataStart - 1]);
        Assert.Equal(dataStart + 4L * count, bytes.LongLength);
        var header = Encoding.ASCII.GetString(bytes, 10, dataStart - 10);
        string tuple = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        Assert.StartsWith($"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}", header);

        var read = Npy.Read(path);
        Assert.Equal(shape, read.Shape);
        Assert.Equal(data, read.Data);
        Assert.Equal(new[] { "round.npy" }, _dir.ListFiles());
    }

    [Fact]
    public void Write_ShapeNotMatchingData_ThrowsAndLeavesNoFile()
    {
        var path = _dir.File("bad.npy");
        var e = Assert.Throws<ArgumentException>(() => Npy.Write(path, new float[5], [2, 3]));
        Assert.Contains("6 elements", e.Message);
        Assert.Empty(_dir.ListFiles());
    }

    [Fact]
    public void Read_Version2Header()
    {
        var path = WriteFile(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", Floats(1.5f, -2f), major: 2));
        var read = Npy.Read(path);
        Assert.Equal(new[] { 2 }, read.Shape);
        Assert.Equal(new[] { 1.5f, -2f }, read.Data);
    }

    [Fact]
    public void Read_ConvertsFloat64AndIntegers()
    {
        var f8 = new byte[16];
        BinaryPrimitives.WriteDoubleLittleEndian(f8, 0.25);
        BinaryPrimitives.WriteDoubleLittleEndian(f8.AsSpan(8), -1e10);
        Assert.Equal(new[] { 0.25f, -1e10f }, Npy.Read(WriteFile(BuildNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", f8))).Data);

        var i4 = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(i4, 7);
        BinaryPrimitives.WriteInt32LittleEndian(i4.AsSpan(4), -3);
        BinaryPrimitives.WriteInt32LittleEndian(i4.AsSpan(8), int.MaxValue);
        var readI4 = Npy.Read(WriteFile(BuildNpy("{'shape': (3,), 'fortran_order': False, 'descr': '<i4'}", i4)));
        Assert.Equal(new[] { 7f, -3f, int.MaxValue }, readI4.Data);

        var i8 = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(i8, -42);
        var readI8 = Npy.Read(WriteFile(BuildNpy("{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (1, 1)}", i8)));
        Assert.Equal(new[] { 1, 1 }, readI8.Shape);
        Assert.Equal(new[] { -42f }, readI8.Data);
    }

    [Fact]
    public void BadMagic() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Floats(1), magic: "PK\x03\x04zz"u8.ToArray()), "bad magic");

    [Fact]
    public void TooShortForMagic() => AssertReadFails([0x93, (byte)'N', (byte)'U'], "bad magic");

    [Fact]
    public void TruncatedData() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", Floats(1, 2, 3, 4)[..13]),
            "truncated", "needs 16 bytes", "has 13");

    [Fact]
    public void TruncatedHeader()
    {
        var bytes = BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Floats(1));
        AssertReadFails(bytes[..30], "truncated .npy header");
    }

    [Fact]
    public void TrailingBytes() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Floats(1, 2)), "4 unexpected bytes");

    [Fact]
    public void FortranOrder() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", Floats(1, 2, 3, 4)), "Fortran");

    [Theory]
    [InlineData(">f4")]
    [InlineData("<f2")]
    [InlineData("|u1")]
    [InlineData("<c8")]
    public void UnsupportedDType(string descr) =>
        AssertReadFails(BuildNpy($"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}", new byte[8]),
            $"unsupported dtype '{descr}'");

    [Theory]
    [InlineData("{'descr': '<f4', 'shape': (1,), }", "'fortran_order'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "'shape'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ", "expected '}'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "expected an integer")]
    [InlineData("{'descr': '<f4', 'fortran_order': None, 'shape': (1,), }", "unsupported value")]
    [InlineData("not a dict", "expected '{'")]
    public void MalformedHeader(string header, string expected) =>
        AssertReadFails(BuildNpy(header, Floats(1)), expected);

    [Fact]
    public void ShapeTooLargeForOneArray() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }", Floats(1)),
            "too many elements");

    [Fact]
    public void UnknownVersion() =>
        AssertReadFails(BuildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Floats(1), major: 9), "version 9.0");
}
