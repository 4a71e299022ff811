using System.Collections.Immutable;

namespace MiniMaxSharp.Backends;

/// <summary>
/// Where one sequence's tokens sit in a packed (varlen) batch: rows [TokenOffset, TokenOffset+TokenCount)
/// of every activation, at positions [StartPosition, StartPosition+TokenCount) of that sequence.
/// </summary>
public readonly record struct SequenceSpan(int TokenOffset, int TokenCount, int StartPosition)
{
    public int EndPosition => StartPosition + TokenCount;
}

/// <summary>The sequences of one forward step, packed one after another without padding.</summary>
public sealed class BatchLayout
{
    public BatchLayout(ImmutableArray<SequenceSpan> sequences)
    {
        int offset = 0;
        foreach (var s in sequences)
        {
            if (s.TokenOffset != offset) throw new ArgumentException("sequence spans must be packed in order without gaps");
            if (s.TokenCount <= 0) throw new ArgumentException("every sequence of a batch needs at least one token");
            if (s.StartPosition < 0) throw new ArgumentException("negative start position");
            offset += s.TokenCount;
        }
        Sequences = sequences;
        TotalTokens = offset;
    }

    public ImmutableArray<SequenceSpan> Sequences { get; }
    public int TotalTokens { get; }
    public int Count => Sequences.Length;

    public static BatchLayout Create(ReadOnlySpan<int> tokenCounts, ReadOnlySpan<int> startPositions)
    {
        var b = ImmutableArray.CreateBuilder<SequenceSpan>(tokenCounts.Length);
        int offset = 0;
        for (int i = 0; i < tokenCounts.Length; i++)
        {
            b.Add(new SequenceSpan(offset, tokenCounts[i], startPositions[i]));
            offset += tokenCounts[i];
        }
        return new BatchLayout(b.MoveToImmutable());
    }
}
