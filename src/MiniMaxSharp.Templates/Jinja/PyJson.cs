using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Python's json.dumps over template values (what transformers' tojson filter calls).</summary>
internal static class PyJson
{
    /// <param name="Indent">Per-level indent; null writes everything on one line.</param>
    internal sealed record Options(string? Indent, string ItemSeparator, string KeySeparator, bool SortKeys, bool EnsureAscii);

    public static string Dumps(object? value, Options options)
    {
        var sb = new StringBuilder();
        Write(sb, value, options, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, Options options, int depth)
    {
        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatDouble(d)); break;
            case string s: WriteString(sb, s, options.EnsureAscii); break;
            case List<object?> or PyTuple:
                var items = (IReadOnlyList<object?>)value;
                WriteContainer(sb, '[', ']', items.Count, options, depth, i => Write(sb, items[i], options, depth + 1));
                break;
            case PyDict dict:
                var entries = dict.Select(pair => (Key: KeyString(pair.Key), pair.Value)).ToList();
                if (options.SortKeys)
                    entries = entries.OrderBy(e => e.Key, Comparer<string>.Create(PyString.CompareCodePoints)).ToList();
                WriteContainer(sb, '{', '}', entries.Count, options, depth, i =>
                {
                    WriteString(sb, entries[i].Key, options.EnsureAscii);
                    sb.Append(options.KeySeparator);
                    Write(sb, entries[i].Value, options, depth + 1);
                });
                break;
            case Undefined u:
                throw new TemplateException($"tojson: cannot serialize an undefined value ({u.Message})");
            default:
                throw new TemplateException($"tojson: Object of type {PyOps.TypeName(value)} is not JSON serializable");
        }
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, Options options, int depth, Action<int> writeItem)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (i > 0)
                sb.Append(options.ItemSeparator);
            if (options.Indent is not null)
                NewLine(sb, options.Indent, depth + 1);
            writeItem(i);
        }
        if (options.Indent is not null)
            NewLine(sb, options.Indent, depth);
        sb.Append(close);
    }

    private static void NewLine(StringBuilder sb, string indent, int depth)
    {
        sb.Append('\n');
        for (int i = 0; i < depth; i++)
            sb.Append(indent);
    }

    /// <summary>json.dumps turns non-string keys into strings: True -> "true", None -> "null", 1.0 -> "1.0".</summary>
    private static string KeyString(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        _ => throw new TemplateException($"tojson: keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
    };

    private static string FormatDouble(double d) => double.IsNaN(d) ? "NaN"
        : double.IsPositiveInfinity(d) ? "Infinity"
        : double.IsNegativeInfinity(d) ? "-Infinity"
        : PyOps.FormatFloat(d);

    private static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    // Surrogate pairs come out as two \uXXXX escapes, exactly as Python writes them.
                    if (c < 0x20 || (ensureAscii && c > 0x7f))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
