namespace MiniMaxSharp.Tokenizers;

/// <summary>Reusable buffers for one thread's encoding, so that steady-state encoding allocates almost nothing.</summary>
internal sealed class EncodeScratch
{
    [ThreadStatic] private static EncodeScratch? _current;

    public static EncodeScratch ForCurrentThread() => _current ??= new EncodeScratch();

    private readonly Stack<PieceBuffer> _freePieces = new();
    private char[] _text = new char[256];
    private char[] _prepended = new char[256];

    public List<PatternSpan> Spans { get; } = [];
    public List<Segment> Segments { get; } = [];
    public List<Segment> NormalizedSegments { get; } = [];
    public BpeScratch Bpe { get; } = new();

    public PieceBuffer RentPieces()
    {
        var buffer = _freePieces.Count > 0 ? _freePieces.Pop() : new PieceBuffer();
        buffer.Clear();
        return buffer;
    }

    public void ReturnPieces(PieceBuffer buffer)
    {
        buffer.ReleaseIfLarge();
        _freePieces.Push(buffer);
    }

    /// <summary>A scratch char span of at least <paramref name="length"/> chars (valid until the next call).</summary>
    public Span<char> TextBuffer(int length)
    {
        if (_text.Length < length) _text = new char[Math.Max(length, _text.Length * 2)];
        return _text.AsSpan(0, length);
    }

    /// <summary><paramref name="first"/> followed by <paramref name="text"/>, in scratch memory.</summary>
    public ReadOnlySpan<char> Prepend(char first, ReadOnlySpan<char> text)
    {
        if (_prepended.Length < text.Length + 1) _prepended = new char[Math.Max(text.Length + 1, _prepended.Length * 2)];
        _prepended[0] = first;
        text.CopyTo(_prepended.AsSpan(1));
        return _prepended.AsSpan(0, text.Length + 1);
    }
}
