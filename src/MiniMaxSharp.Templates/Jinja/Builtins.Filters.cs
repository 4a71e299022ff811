using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Jinja's builtin filters (value|name(args)), with transformers' tojson.</summary>
internal static partial class Builtins
{
    private static readonly Dictionary<string, Func<object?, CallArgs, object?>> Filters = new(StringComparer.Ordinal)
    {
        ["tojson"] = ToJson,
        ["trim"] = (v, a) => PyString.Strip(PyOps.ToStr(v), OptionalString(a.Bind("trim", "chars").Get(0), "trim"), true, true),
        ["length"] = (v, a) => NoArgs(a, "length", PyOps.Length(v)),
        ["count"] = (v, a) => NoArgs(a, "count", PyOps.Length(v)),
        ["upper"] = (v, a) => NoArgs(a, "upper", PyOps.ToStr(v).ToUpperInvariant()),
        ["lower"] = (v, a) => NoArgs(a, "lower", PyOps.ToStr(v).ToLowerInvariant()),
        ["title"] = (v, a) => NoArgs(a, "title", JinjaTitle(PyOps.ToStr(v))),
        ["capitalize"] = (v, a) => NoArgs(a, "capitalize", PyString.Capitalize(PyOps.ToStr(v))),
        ["replace"] = ReplaceFilter,
        ["join"] = Join,
        ["default"] = Default,
        ["d"] = Default,
        ["first"] = (v, a) => NoArgs(a, "first", PyOps.Iterate(v).Take(1).DefaultIfEmpty(new Undefined("No first item, sequence was empty.")).First()),
        ["last"] = (v, a) => NoArgs(a, "last", PyOps.Iterate(v).DefaultIfEmpty(new Undefined("No last item, sequence was empty.")).Last()),
        ["list"] = (v, a) => NoArgs(a, "list", PyOps.Iterate(v).ToList()),
        ["string"] = (v, a) => NoArgs(a, "string", PyOps.ToStr(v)),
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (v, a) => NoArgs(a, "abs", v switch
        {
            long l => (object)checked(Math.Abs(l)),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw new TemplateException($"bad operand type for abs(): '{PyOps.TypeName(v)}'"),
        }),
        ["round"] = Round,
        ["items"] = (v, a) => NoArgs(a, "items", v switch
        {
            PyDict dict => DictItems(dict),
            Undefined => new List<object?>(),
            _ => throw new TemplateException($"items filter: can only get item pairs from a mapping, not '{PyOps.TypeName(v)}'"),
        }),
        ["dictsort"] = DictSort,
        ["select"] = (v, a) => SelectOrReject(v, a, "select", attribute: false, keep: true),
        ["reject"] = (v, a) => SelectOrReject(v, a, "reject", attribute: false, keep: false),
        ["selectattr"] = (v, a) => SelectOrReject(v, a, "selectattr", attribute: true, keep: true),
        ["rejectattr"] = (v, a) => SelectOrReject(v, a, "rejectattr", attribute: true, keep: false),
        ["map"] = Map,
        ["unique"] = Unique,
        ["reverse"] = (v, a) => NoArgs(a, "reverse", v is string s
            ? string.Concat(PyString.Characters(s).AsEnumerable().Reverse())
            : (object)PyOps.Iterate(v).Reverse().ToList()),
        ["sort"] = Sort,
        ["min"] = (v, a) => MinMax(v, a, "min", sign: -1),
        ["max"] = (v, a) => MinMax(v, a, "max", sign: 1),
        ["sum"] = Sum,
        ["indent"] = Indent,
        ["safe"] = (v, a) => NoArgs(a, "safe", v),
        ["escape"] = (v, a) => NoArgs(a, "escape", HtmlEscape(PyOps.ToStr(v))),
        ["e"] = (v, a) => NoArgs(a, "e", HtmlEscape(PyOps.ToStr(v))),
        ["batch"] = Batch,
        ["groupby"] = GroupBy,
        ["attr"] = (v, a) => Access.GetAttributeOnly(v, RequireString(a.Bind("attr", "name").Required(0), "attr")),
        ["wordcount"] = (v, a) => NoArgs(a, "wordcount", (long)PyString.Split(PyOps.ToStr(v), null, -1).Count),
        ["center"] = (v, a) =>
        {
            string s = PyOps.ToStr(v);
            int width = PyOps.ToIndex(a.Bind("center", "width").Get(0, 80L), "center width");
            int total = Math.Max(0, width - s.Length);
            int left = total / 2 + (total & width & 1); // Python's str.center puts the odd space on the left when width is odd
            return new string(' ', left) + s + new string(' ', total - left);
        },
    };

    public static bool HasFilter(string name) => Filters.ContainsKey(name);

    public static object? ApplyFilter(string name, object? value, CallArgs args) =>
        Filters.TryGetValue(name, out var filter) ? filter(value, args) : throw new TemplateException($"No filter named '{name}'");

    /// <summary>transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).</summary>
    private static object? ToJson(object? value, CallArgs args)
    {
        var a = args.Bind("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
        string? indent = a.Get(1) switch
        {
            null => null,
            long width => new string(' ', (int)Math.Max(0, width)),
            string text => text,
            var other => throw new TemplateException($"tojson: indent must be an int or a string, not '{PyOps.TypeName(other)}'"),
        };
        string itemSeparator = indent is null ? ", " : ",", keySeparator = ": ";
        if (a.Get(2) is { } separators)
        {
            var parts = PyOps.Iterate(separators).ToList();
            if (parts.Count != 2 || parts[0] is not string item || parts[1] is not string key)
                throw new TemplateException("tojson: separators must be a pair of strings (item_separator, key_separator)");
            (itemSeparator, keySeparator) = (item, key);
        }
        return PyJson.Dumps(value, new PyJson.Options(indent, itemSeparator, keySeparator,
            PyOps.IsTruthy(a.Get(3, false)), PyOps.IsTruthy(a.Get(0, false))));
    }

    /// <summary>Jinja's title filter: capitalizes words split at whitespace, '-', and opening brackets.</summary>
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool atWordStart = true;
        foreach (char c in s)
        {
            bool isBoundary = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(isBoundary ? c : atWordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            atWordStart = isBoundary;
        }
        return sb.ToString();
    }

    private static object? ReplaceFilter(object? value, CallArgs args)
    {
        var a = args.Bind("replace", "old", "new", "count");
        return PyString.Replace(PyOps.ToStr(value), PyOps.ToStr(a.Required(0)), PyOps.ToStr(a.Required(1)),
            a.Get(2) is null ? -1 : PyOps.ToLong(a.Get(2)));
    }

    private static object? Join(object? value, CallArgs args)
    {
        var a = args.Bind("join", "d", "attribute");
        string separator = PyOps.ToStr(a.Get(0, ""));
        var items = PyOps.Iterate(value);
        if (a.Get(1) is { } attribute)
            items = items.Select(item => Access.GetPath(item, PyOps.ToStr(attribute)));
        return string.Join(separator, items.Select(PyOps.ToStr));
    }

    private static object? Default(object? value, CallArgs args)
    {
        var a = args.Bind("default", "default_value", "boolean");
        bool useDefault = value is Undefined || (PyOps.IsTruthy(a.Get(1, false)) && !PyOps.IsTruthy(value));
        return useDefault ? a.Get(0, "") : value;
    }

    private static object? ToInt(object? value, CallArgs args)
    {
        var a = args.Bind("int", "default", "base");
        object? fallback = a.Get(0, 0L);
        int numberBase = a.Has(1) ? PyOps.ToIndex(a.Get(1), "int base") : 10;
        switch (value)
        {
            case long or bool:
                return PyOps.ToLong(value);
            case double d:
                return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)d : fallback;
            case string s:
                string text = s.Trim().Replace("_", "");
                try
                {
                    if (numberBase == 10)
                    {
                        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed))
                            return parsed;
                        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double real)
                               && double.IsFinite(real) && Math.Abs(real) < 9.2e18 ? (long)real : fallback;
                    }
                    if (numberBase is 2 or 8 or 16)
                        return Convert.ToInt64(text, numberBase);
                    throw new TemplateException($"int filter: base {numberBase} is not supported (use 2, 8, 10 or 16)");
                }
                catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
                {
                    return fallback;
                }
            default:
                return fallback;
        }
    }

    private static object? ToFloat(object? value, CallArgs args)
    {
        object? fallback = args.Bind("float", "default").Get(0, 0.0);
        return value switch
        {
            double or long or bool => PyOps.ToDouble(value),
            string s when ParsePythonFloat(s.Trim()) is { } parsed => parsed,
            _ => fallback,
        };
    }

    private static double? ParsePythonFloat(string text) => text.ToLowerInvariant() switch
    {
        "inf" or "+inf" or "infinity" or "+infinity" => double.PositiveInfinity,
        "-inf" or "-infinity" => double.NegativeInfinity,
        "nan" or "+nan" or "-nan" => double.NaN,
        _ => double.TryParse(text.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : null,
    };

    /// <summary>round(value, precision=0, method='common'); 'common' is Python's round (half to even, exact).</summary>
    private static object? Round(object? value, CallArgs args)
    {
        var a = args.Bind("round", "precision", "method");
        int precision = PyOps.ToIndex(a.Get(0, 0L), "round precision");
        string method = PyOps.ToStr(a.Get(1, "common"));
        if (method is not ("common" or "ceil" or "floor"))
            throw new TemplateException("round: method must be 'common', 'ceil' or 'floor'");
        if (method == "common" && value is long or bool)
            return PyOps.ToLong(value);
        double x = PyOps.ToDouble(value);
        if (method != "common")
        {
            double scale = Math.Pow(10, precision);
            return (method == "ceil" ? Math.Ceiling(x * scale) : Math.Floor(x * scale)) / scale;
        }
        if (!double.IsFinite(x) || precision > 300)
            return x;
        if (precision < 0)
        {
            double scale = Math.Pow(10, -precision);
            return Math.Round(x / scale, MidpointRounding.ToEven) * scale;
        }
        // Round the exact decimal expansion (as Python does), not x * 10^precision, which is inexact.
        string exact = x.ToString("F" + (precision + 25), CultureInfo.InvariantCulture);
        int dot = exact.IndexOf('.');
        string kept = exact[..(dot + 1 + precision)];
        string rest = exact[(dot + 1 + precision)..];
        int comparison = rest[0] > '5' ? 1 : rest[0] < '5' ? -1 : rest.AsSpan(1).TrimEnd('0').IsEmpty ? 0 : 1;
        string rounded = kept.TrimEnd('.');
        char lastDigit = rounded[^1];
        if (comparison > 0 || (comparison == 0 && (lastDigit - '0') % 2 == 1))
            rounded = IncrementLastDigit(rounded);
        double result = double.Parse(rounded, NumberStyles.Float, CultureInfo.InvariantCulture);
        return result == 0 && x < 0 ? -0.0 : result;
    }

    /// <summary>Adds one unit in the last place to a decimal string such as "-2.67" (carrying as needed).</summary>
    private static string IncrementLastDigit(string number)
    {
        var digits = number.ToCharArray();
        for (int i = digits.Length - 1; i >= 0; i--)
        {
            if (digits[i] is '.' or '-')
                continue;
            if (digits[i] != '9')
            {
                digits[i]++;
                return new string(digits);
            }
            digits[i] = '0';
        }
        string text = new(digits);
        return text.StartsWith('-') ? "-1" + text[1..] : "1" + text;
    }

    private static object? DictSort(object? value, CallArgs args)
    {
        var a = args.Bind("dictsort", "case_sensitive", "by", "reverse");
        if (value is not PyDict dict)
            throw new TemplateException($"dictsort: expected a dict, got '{PyOps.TypeName(value)}'");
        bool caseSensitive = PyOps.IsTruthy(a.Get(0, false));
        string by = PyOps.ToStr(a.Get(1, "key"));
        if (by is not ("key" or "value"))
            throw new TemplateException("dictsort: 'by' must be 'key' or 'value'");
        var items = DictItems(dict);
        return SortedBy(items, item => SortKey(((PyTuple)item!)[by == "key" ? 0 : 1], caseSensitive), PyOps.IsTruthy(a.Get(2, false)));
    }

    private static object? SortKey(object? value, bool caseSensitive) =>
        !caseSensitive && value is string s ? s.ToLowerInvariant() : value;

    private static List<object?> SortedBy(IEnumerable<object?> items, Func<object?, object?> key, bool reverse)
    {
        var comparer = Comparer<object?>.Create(PyOps.Compare);
        try
        {
            // OrderBy is stable, like Python's sort; reverse keeps equal items in order too.
            return reverse ? items.OrderByDescending(key, comparer).ToList() : items.OrderBy(key, comparer).ToList();
        }
        catch (InvalidOperationException e) when (e.InnerException is TemplateException inner)
        {
            // The sort wraps what the comparer throws ("'<' not supported between ...").
            throw new TemplateException(inner.Reason, inner: e);
        }
    }

    private static object? Sort(object? value, CallArgs args)
    {
        var a = args.Bind("sort", "reverse", "case_sensitive", "attribute");
        bool caseSensitive = PyOps.IsTruthy(a.Get(1, false));
        string? attribute = a.Get(2) is { } name ? PyOps.ToStr(name) : null;
        return SortedBy(PyOps.Iterate(value),
            item => SortKey(attribute is null ? item : Access.GetPath(item, attribute), caseSensitive), PyOps.IsTruthy(a.Get(0, false)));
    }

    private static object? Unique(object? value, CallArgs args)
    {
        var a = args.Bind("unique", "case_sensitive", "attribute");
        bool caseSensitive = PyOps.IsTruthy(a.Get(0, false));
        string? attribute = a.Get(1) is { } name ? PyOps.ToStr(name) : null;
        var seen = new HashSet<object>(PyKeyComparer.Instance);
        var result = new List<object?>();
        foreach (var item in PyOps.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : Access.GetPath(item, attribute), caseSensitive) ?? NoneKey;
            if (seen.Add(key))
                result.Add(item);
        }
        return result;
    }

    private static readonly object NoneKey = new();

    private static object? MinMax(object? value, CallArgs args, string name, int sign)
    {
        var a = args.Bind(name, "case_sensitive", "attribute");
        bool caseSensitive = PyOps.IsTruthy(a.Get(0, false));
        string? attribute = a.Get(1) is { } attr ? PyOps.ToStr(attr) : null;
        object? best = null, bestKey = null;
        bool any = false;
        foreach (var item in PyOps.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : Access.GetPath(item, attribute), caseSensitive);
            if (!any || PyOps.Compare(key, bestKey) * sign > 0)
            {
                best = item;
                bestKey = key;
                any = true;
            }
        }
        return any ? best : new Undefined($"No aggregated item, sequence was empty.");
    }

    private static object? Sum(object? value, CallArgs args)
    {
        var a = args.Bind("sum", "attribute", "start");
        string? attribute = a.Get(0) is { } attr ? PyOps.ToStr(attr) : null;
        object? total = a.Get(1, 0L);
        foreach (var item in PyOps.Iterate(value))
            total = PyOps.Add(total, attribute is null ? item : Access.GetPath(item, attribute));
        return total;
    }

    private static object? SelectOrReject(object? value, CallArgs args, string name, bool attribute, bool keep)
    {
        int first = attribute ? 1 : 0;
        if (args.Named.Count > 0)
            throw new TemplateException($"{name}() does not take keyword arguments");
        if (attribute && args.Positional.Count == 0)
            throw new TemplateException($"{name}() missing required argument 'attribute'");
        string? path = attribute ? PyOps.ToStr(args.Positional[0]) : null;
        string? test = args.Positional.Count > first ? PyOps.ToStr(args.Positional[first]) : null;
        if (test is not null && !HasTest(test))
            throw new TemplateException($"No test named '{test}'");
        var testArgs = args.Positional.Skip(first + 1).ToList();
        var result = new List<object?>();
        foreach (var item in PyOps.Iterate(value))
        {
            var subject = path is null ? item : Access.GetPath(item, path);
            bool passed = test is null ? PyOps.IsTruthy(subject) : ApplyTest(test, subject, testArgs);
            if (passed == keep)
                result.Add(item);
        }
        return result;
    }

    private static object? Map(object? value, CallArgs args)
    {
        if (args.Named.TryGetValue("attribute", out var attribute))
        {
            var a = args.Bind("map", "attribute", "default");
            if (args.Positional.Count > 0)
                throw new TemplateException("map(attribute=...) takes no positional arguments");
            string path = PyOps.ToStr(attribute);
            return PyOps.Iterate(value).Select(item =>
            {
                var mapped = Access.GetPath(item, path);
                return mapped is Undefined && a.Has(1) ? a.Get(1) : mapped;
            }).ToList();
        }
        if (args.Positional.Count == 0)
            throw new TemplateException("map() needs a filter name or attribute=...");
        string filter = PyOps.ToStr(args.Positional[0]);
        if (!HasFilter(filter))
            throw new TemplateException($"No filter named '{filter}'");
        var filterArgs = new CallArgs(args.Positional.Skip(1).ToList(), args.Named);
        return PyOps.Iterate(value).Select(item => ApplyFilter(filter, item, filterArgs)).ToList();
    }

    /// <summary>Jinja's indent: lines after the first get the prefix; blank lines only when blank=true.</summary>
    private static object? Indent(object? value, CallArgs args)
    {
        var a = args.Bind("indent", "width", "first", "blank");
        string prefix = a.Get(0, 4L) switch
        {
            string text => text,
            var width => new string(' ', PyOps.ToIndex(width, "indent width")),
        };
        var lines = PyString.SplitLines(PyOps.ToStr(value) + "\n");
        string result;
        if (PyOps.IsTruthy(a.Get(2, false)))
        {
            result = string.Join("\n" + prefix, lines);
        }
        else
        {
            result = lines[0];
            if (lines.Count > 1)
                result += "\n" + string.Join("\n", lines.Skip(1).Select(line => line.Length > 0 ? prefix + line : line));
        }
        return PyOps.IsTruthy(a.Get(1, false)) ? prefix + result : result;
    }

    private static string HtmlEscape(string s) => s
        .Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    private static object? Batch(object? value, CallArgs args)
    {
        var a = args.Bind("batch", "linecount", "fill_with");
        int size = PyOps.ToIndex(a.Required(0), "batch size");
        if (size <= 0)
            throw new TemplateException("batch: linecount must be positive");
        var batches = new List<object?>();
        List<object?>? current = null;
        foreach (var item in PyOps.Iterate(value))
        {
            current ??= [];
            current.Add(item);
            if (current.Count == size)
            {
                batches.Add(current);
                current = null;
            }
        }
        if (current is not null)
        {
            if (a.Has(1))
            {
                while (current.Count < size)
                    current.Add(a.Get(1));
            }
            batches.Add(current);
        }
        return batches;
    }

    /// <summary>groupby(attribute, default=None, case_sensitive=False): sorted (grouper, list) namedtuples.</summary>
    private static object? GroupBy(object? value, CallArgs args)
    {
        var a = args.Bind("groupby", "attribute", "default", "case_sensitive");
        string path = PyOps.ToStr(a.Required(0));
        bool caseSensitive = PyOps.IsTruthy(a.Get(2, false));
        object? Key(object? item)
        {
            var key = Access.GetPath(item, path);
            return key is Undefined && a.Has(1) ? a.Get(1) : key;
        }
        var groups = new List<object?>();
        List<object?>? members = null;
        object? groupKey = null, grouper = null;
        foreach (var item in SortedBy(PyOps.Iterate(value), item => SortKey(Key(item), caseSensitive), reverse: false))
        {
            var key = SortKey(Key(item), caseSensitive);
            if (members is null || !PyOps.PyEquals(key, groupKey))
            {
                if (members is not null)
                    groups.Add(new PyTuple([grouper, members], GroupFields));
                members = [];
                groupKey = key;
                grouper = Key(item);
            }
            members.Add(item);
        }
        if (members is not null)
            groups.Add(new PyTuple([grouper, members], GroupFields));
        return groups;
    }

    private static readonly string[] GroupFields = ["grouper", "list"];
}
