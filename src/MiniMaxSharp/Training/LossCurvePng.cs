using System.Buffers.Binary;
using System.IO.Compression;
using MiniMaxSharp.Checkpoints;

namespace MiniMaxSharp.Training;

/// <summary>
/// Draws loss curves (training in blue, evaluation in orange) on a white canvas with light grid lines, and writes it
/// as a PNG (8-bit RGB, zlib-compressed scanlines, CRC-32 per chunk) atomically. Dependency-free on purpose: a
/// picture of two polylines needs no imaging library.
/// </summary>
public static class LossCurvePng
{
    public const int Width = 640, Height = 400;
    private const int Margin = 30;
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public static void Write(string path, IReadOnlyList<LossPoint> train, IReadOnlyList<LossPoint> eval)
    {
        using var file = new AtomicFileWriter(path);
        file.Stream.Write(Encode(Draw(train, eval), Width, Height));
        file.Commit();
    }

    /// <summary>RGB pixels, row-major, of the plot.</summary>
    public static byte[] Draw(IReadOnlyList<LossPoint> train, IReadOnlyList<LossPoint> eval)
    {
        var rgb = new byte[Width * Height * 3];
        Array.Fill(rgb, (byte)255);
        var all = train.Concat(eval).Where(p => double.IsFinite(p.Loss)).ToArray();
        if (all.Length == 0) return rgb;
        double maxStep = Math.Max(1, all.Max(p => p.Step)), lo = all.Min(p => p.Loss), hi = all.Max(p => p.Loss);
        if (hi - lo < 1e-9) (lo, hi) = (lo - 0.5, hi + 0.5);
        int plotW = Width - 2 * Margin, plotH = Height - 2 * Margin;
        (int X, int Y) At(LossPoint p) => (Margin + (int)Math.Round(p.Step / maxStep * plotW), Margin + (int)Math.Round((hi - p.Loss) / (hi - lo) * plotH));
        for (int i = 0; i <= 4; i++)
        {
            // grid: 5 horizontal and 5 vertical lines, the frame included
            int y = Margin + i * plotH / 4, x = Margin + i * plotW / 4;
            Line(rgb, Margin, y, Margin + plotW, y, (220, 220, 220));
            Line(rgb, x, Margin, x, Margin + plotH, (220, 220, 220));
        }
        Polyline(rgb, train, At, (31, 119, 180));
        Polyline(rgb, eval, At, (255, 127, 14));
        return rgb;
    }

    private static void Polyline(byte[] rgb, IReadOnlyList<LossPoint> points, Func<LossPoint, (int X, int Y)> at, (byte R, byte G, byte B) color)
    {
        var finite = points.Where(p => double.IsFinite(p.Loss)).Select(at).ToArray();
        for (int i = 0; i < finite.Length; i++)
        {
            var (x1, y1) = finite[Math.Max(0, i - 1)];
            var (x2, y2) = finite[i];
            for (int d = -1; d <= 1; d++) Line(rgb, x1, y1 + d, x2, y2 + d, color);   // 3 pixels thick
        }
    }

    /// <summary>Bresenham line, clipped to the canvas.</summary>
    private static void Line(byte[] rgb, int x0, int y0, int x1, int y1, (byte R, byte G, byte B) c)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            if (x0 >= 0 && x0 < Width && y0 >= 0 && y0 < Height)
            {
                int o = (y0 * Width + x0) * 3;
                (rgb[o], rgb[o + 1], rgb[o + 2]) = c;
            }
            if (x0 == x1 && y0 == y1) return;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }

    /// <summary>A PNG file of 8-bit RGB pixels: signature, IHDR, one IDAT (filter 0 on every row), IEND.</summary>
    public static byte[] Encode(byte[] rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3) throw new ArgumentException($"{rgb.Length} bytes are not {width}x{height} RGB pixels");
        using var png = new MemoryStream();
        png.Write(Signature);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;   // bit depth
        header[9] = 2;   // colour type: RGB
        Chunk(png, "IHDR", header);
        using (var compressed = new MemoryStream())
        {
            using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                for (int y = 0; y < height; y++)
                {
                    z.WriteByte(0);   // filter: none
                    z.Write(rgb, y * width * 3, width * 3);
                }
            }
            Chunk(png, "IDAT", compressed.ToArray());
        }
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        var typeAndData = new byte[4 + data.Length];
        for (int i = 0; i < 4; i++) typeAndData[i] = (byte)type[i];
        data.CopyTo(typeAndData, 4);
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(typeAndData));
        s.Write(word);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>CRC-32 (ISO 3309 / PNG) of the bytes.</summary>
    public static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
