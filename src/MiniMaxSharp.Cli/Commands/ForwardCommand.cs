using System.CommandLine;
using System.Text.Json;
using MiniMaxSharp.Checkpoints;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Cli.Commands;

/// <summary><c>minimax forward</c>: logits of token sequences, as a NumPy file (for checking against references).</summary>
internal static class ForwardCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var input = new Option<FileInfo>("--input") { Description = "JSON file with \"input_ids\": a list of equally long token-id lists", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write float32 logits [batch, seq, vocab] (.npy)", Required = true };
        var decodeFrom = new Option<int?>("--decode-from") { Description = "Prefill the first P tokens, then feed each later token as one decode step" };
        var chunk = new Option<int?>("--prefill-chunk") { Description = "Prefill in chunks of N tokens" };
        var threads = CommonOptions.Threads();
        var backend = CommonOptions.Backend();
        var cmd = new Command("forward", "Write the logits of token sequences to a .npy file") { model, input, output, decodeFrom, chunk, threads, backend };
        cmd.SetAction(r => CommonOptions.Run(() =>
        {
            var ids = ReadInputIds(r.GetValue(input)!.FullName);
            int T = ids[0].Length;
            int prefill = r.GetValue(decodeFrom) ?? T;
            if (prefill < 1 || prefill > T) throw new ArgumentException($"--decode-from {prefill} must be in 1..{T}");
            int chunkSize = r.GetValue(chunk) ?? prefill;
            if (chunkSize < 1) throw new ArgumentException($"--prefill-chunk {chunkSize} must be positive");
            using var m = ModelLoader.Load(r.GetValue(model)!, BackendFactory.Create(r.GetValue(backend)!, r.GetValue(threads)));
            float[] logits = Run(m, ids, prefill, chunkSize);
            Npy.Write(r.GetValue(output)!.FullName, logits, [ids.Length, T, m.Config.VocabSize]);
            Console.Error.WriteLine($"wrote logits [{ids.Length}, {T}, {m.Config.VocabSize}] to {r.GetValue(output)!.FullName}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Logits [B, T, V]: positions below <paramref name="prefill"/> in chunks, the rest one decode step at a time.</summary>
    internal static float[] Run(MiniMaxModel m, int[][] ids, int prefill, int chunkSize)
    {
        int B = ids.Length, T = ids[0].Length, V = m.Config.VocabSize;
        var result = new float[(long)B * T * V];
        var states = ids.Select(_ => m.CreateSequence(T)).ToArray();
        try
        {
            for (int at = 0; at < T;)
            {
                int n = at < prefill ? Math.Min(chunkSize, prefill - at) : 1;
                var rows = m.Forward(states, ids.Select(s => (ReadOnlyMemory<int>)s.AsMemory(at, n)).ToArray(), LogitsSelection.All);
                for (int b = 0; b < B; b++)
                    Array.Copy(rows, (long)b * n * V, result, ((long)b * T + at) * V, (long)n * V);
                at += n;
            }
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
        return result;
    }

    internal static int[][] ReadInputIds(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}");
        }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("input_ids", out var rows) || rows.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{path}: expected an object with \"input_ids\": a list of token-id lists");
        var result = new List<int[]>();
        foreach (var row in rows.EnumerateArray())
        {
            if (row.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{path}: input_ids[{result.Count}] is not a list");
            result.Add(row.EnumerateArray().Select((v, j) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id) ? id
                : throw new InvalidDataException($"{path}: input_ids[{result.Count}][{j}] is not an integer")).ToArray());
        }
        if (result.Count == 0 || result[0].Length == 0) throw new InvalidDataException($"{path}: input_ids is empty");
        if (result.Any(r => r.Length != result[0].Length))
            throw new InvalidDataException($"{path}: the input_ids lists differ in length ({string.Join(", ", result.Select(r => r.Length).Distinct())})");
        return [.. result];
    }
}
