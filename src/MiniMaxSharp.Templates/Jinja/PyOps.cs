using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Python semantics for template values: truthiness, str()/repr(), equality, ordering, arithmetic.</summary>
internal static class PyOps
{
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        Undefined => "Undefined",
        PyNamespace => "Namespace",
        PyCallable => "function",
        _ => value.GetType().Name,
    };

    public static bool IsTruthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        PyTuple t => t.Count > 0,
        PyDict d => d.Count > 0,
        Undefined => false,
        _ => true,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    // ---- str() and repr() ----

    public static string ToStr(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(value),
    };

    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value)
    {
        switch (value)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatFloat(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case Undefined: sb.Append("Undefined"); break;
            case List<object?> list:
                sb.Append('[');
                AppendItems(sb, list);
                sb.Append(']');
                break;
            case PyTuple tuple:
                sb.Append('(');
                AppendItems(sb, tuple);
                if (tuple.Count == 1)
                    sb.Append(',');
                sb.Append(')');
                break;
            case PyDict dict:
                sb.Append('{');
                bool first = true;
                foreach (var (key, item) in dict)
                {
                    if (!first)
                        sb.Append(", ");
                    first = false;
                    AppendRepr(sb, key);
                    sb.Append(": ");
                    AppendRepr(sb, item);
                }
                sb.Append('}');
                break;
            case PyNamespace ns:
                sb.Append("<Namespace {");
                bool firstAttribute = true;
                foreach (var (key, item) in ns.Attributes)
                {
                    if (!firstAttribute)
                        sb.Append(", ");
                    firstAttribute = false;
                    AppendStringRepr(sb, key);
                    sb.Append(": ");
                    AppendRepr(sb, item);
                }
                sb.Append("}>");
                break;
            case PyCallable callable: sb.Append("<function ").Append(callable.Name).Append('>'); break;
            default: sb.Append(value); break;
        }
    }

    private static void AppendItems(StringBuilder sb, IEnumerable<object?> items)
    {
        bool first = true;
        foreach (var item in items)
        {
            if (!first)
                sb.Append(", ");
            first = false;
            AppendRepr(sb, item);
        }
    }

    /// <summary>Python's repr() of a str: single quotes unless the text holds ' but no ".</summary>
    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            switch (c)
            {
                case '\\': sb.Append("\\\\"); continue;
                case '\n': sb.Append("\\n"); continue;
                case '\r': sb.Append("\\r"); continue;
                case '\t': sb.Append("\\t"); continue;
            }
            if (c == quote)
                sb.Append('\\').Append(quote);
            else if (IsPrintable(rune))
                sb.Append(rune.ToString());
            else if (c < 0x100)
                sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else if (c < 0x10000)
                sb.Append("\\u").Append(c.ToString("x4", CultureInfo.InvariantCulture));
            else
                sb.Append("\\U").Append(c.ToString("x8", CultureInfo.InvariantCulture));
        }
        sb.Append(quote);
    }

    /// <summary>Python's str.isprintable() for one character: not "Other" and not a separator other than space.</summary>
    private static bool IsPrintable(Rune rune)
    {
        if (rune.Value == ' ')
            return true;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator
                or UnicodeCategory.ParagraphSeparator => false,
            _ => true,
        };
    }

    /// <summary>Python's repr() of a float: shortest round-trip digits, exponent form outside 1e-4..1e16.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d))
            return "nan";
        if (double.IsInfinity(d))
            return d > 0 ? "inf" : "-inf";
        if (d == 0)
            return double.IsNegative(d) ? "-0.0" : "0.0";

        // "R" yields the shortest round-trip digits; re-lay them out the way Python does.
        string r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        int exponent = 0;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }
        int dot = r.IndexOf('.');
        string digits = dot >= 0 ? r.Remove(dot, 1) : r;
        int pointPosition = (dot >= 0 ? dot : r.Length) + exponent;
        int leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointPosition -= leadingZeros;
        if (digits.Length == 0)
            digits = "0";

        var sb = new StringBuilder();
        if (d < 0)
            sb.Append('-');
        if (pointPosition > 16 || pointPosition < -3)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            int exp = pointPosition - 1;
            sb.Append('e').Append(exp < 0 ? '-' : '+').Append(Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (pointPosition <= 0)
        {
            sb.Append("0.").Append('0', -pointPosition).Append(digits);
        }
        else if (pointPosition >= digits.Length)
        {
            sb.Append(digits).Append('0', pointPosition - digits.Length).Append(".0");
        }
        else
        {
            sb.Append(digits, 0, pointPosition).Append('.').Append(digits, pointPosition, digits.Length - pointPosition);
        }
        return sb.ToString();
    }

    // ---- equality and ordering ----

    public static bool PyEquals(object? a, object? b)
    {
        if (a is null || b is null)
            return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
                return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case Undefined: return b is Undefined;
            case List<object?> la: return b is List<object?> lb && SequenceEquals(la, lb);
            case PyTuple ta: return b is PyTuple tb && SequenceEquals(ta, tb);
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count)
                    return false;
                foreach (var (key, value) in da)
                {
                    if (!db.TryGetValue(key, out var other) || !PyEquals(value, other))
                        return false;
                }
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    private static bool SequenceEquals(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count)
            return false;
        for (int i = 0; i < a.Count; i++)
        {
            if (!PyEquals(a[i], b[i]))
                return false;
        }
        return true;
    }

    /// <summary>Python ordering (&lt;): numbers with numbers, str with str, sequences of the same kind.</summary>
    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                double x = ToDouble(a), y = ToDouble(b);
                return x < y ? -1 : x > y ? 1 : 0;
            }
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb)
            return PyString.CompareCodePoints(sa, sb);
        if ((a is List<object?> && b is List<object?>) || (a is PyTuple && b is PyTuple))
        {
            var la = (IReadOnlyList<object?>)a;
            var lb = (IReadOnlyList<object?>)b!;
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!PyEquals(la[i], lb[i]))
                    return Compare(la[i], lb[i]);
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new TemplateException($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    // ---- conversions ----

    public static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new TemplateException($"expected an integer, got '{TypeName(value)}'"),
    };

    public static double ToDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"expected a number, got '{TypeName(value)}'"),
    };

    /// <summary>An int argument (index, count, width); floats are rejected as Python does.</summary>
    public static int ToIndex(object? value, string what) => value switch
    {
        long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"{what} must be an integer, got '{TypeName(value)}'"),
    };

    // ---- iteration, length, membership ----

    public static IEnumerable<object?> Iterate(object? value) => value switch
    {
        List<object?> list => list.ToArray(),
        PyTuple tuple => tuple,
        PyDict dict => dict.Keys.ToArray(),
        string s => PyString.Characters(s),
        Undefined => [],
        _ => throw new TemplateException($"'{TypeName(value)}' object is not iterable"),
    };

    public static bool IsIterable(object? value) => value is List<object?> or PyTuple or PyDict or string or Undefined;

    public static long Length(object? value) => value switch
    {
        string s => PyString.Length(s),
        List<object?> list => list.Count,
        PyTuple tuple => tuple.Count,
        PyDict dict => dict.Count,
        Undefined => 0,
        _ => throw new TemplateException($"object of type '{TypeName(value)}' has no len()"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub
            ? s.Contains(sub, StringComparison.Ordinal)
            : throw new TemplateException($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        PyDict dict => dict.ContainsKey(item),
        List<object?> list => list.Any(x => PyEquals(x, item)),
        PyTuple tuple => tuple.Any(x => PyEquals(x, item)),
        Undefined => false,
        _ => throw new TemplateException($"argument of type '{TypeName(container)}' is not iterable"),
    };

    // ---- arithmetic ----

    public static object? Add(object? a, object? b)
    {
        if (a is string sa && b is string sb)
            return sa + sb;
        if (a is List<object?> la && b is List<object?> lb)
            return new List<object?>(la.Concat(lb));
        if (a is PyTuple ta && b is PyTuple tb)
            return new PyTuple([.. ta, .. tb]);
        return Numeric("+", a, b, (x, y) => checked(x + y), (x, y) => x + y);
    }

    public static object? Subtract(object? a, object? b) => Numeric("-", a, b, (x, y) => checked(x - y), (x, y) => x - y);

    public static object? Multiply(object? a, object? b)
    {
        if (a is string s && b is long or bool)
            return Repeat(s, ToLong(b));
        if (b is string s2 && a is long or bool)
            return Repeat(s2, ToLong(a));
        if (a is List<object?> list && b is long or bool)
            return RepeatList(list, ToLong(b));
        return Numeric("*", a, b, (x, y) => checked(x * y), (x, y) => x * y);
    }

    private static string Repeat(string s, long count) =>
        count <= 0 ? "" : new StringBuilder(s.Length * (int)count).Insert(0, s, (int)count).ToString();

    private static List<object?> RepeatList(List<object?> list, long count)
    {
        var result = new List<object?>();
        for (long i = 0; i < count; i++)
            result.AddRange(list);
        return result;
    }

    public static object? Divide(object? a, object? b)
    {
        RequireNumbers("/", a, b);
        double y = ToDouble(b);
        if (y == 0)
            throw new TemplateException("division by zero");
        return ToDouble(a) / y;
    }

    public static object? FloorDivide(object? a, object? b)
    {
        RequireNumbers("//", a, b);
        if (a is double || b is double)
        {
            double y = ToDouble(b);
            if (y == 0)
                throw new TemplateException("float floor division by zero");
            return Math.Floor(ToDouble(a) / y);
        }
        long x = ToLong(a), d = ToLong(b);
        if (d == 0)
            throw new TemplateException("integer division or modulo by zero");
        long q = x / d;
        if ((x % d != 0) && ((x < 0) != (d < 0)))
            q--;
        return q;
    }

    public static object? Modulo(object? a, object? b)
    {
        if (a is string)
            throw new TemplateException("printf-style '%' formatting of strings is not supported; use the format filter");
        RequireNumbers("%", a, b);
        if (a is double || b is double)
        {
            double x = ToDouble(a), y = ToDouble(b);
            if (y == 0)
                throw new TemplateException("float modulo by zero");
            double r = x % y;
            if (r != 0 && (r < 0) != (y < 0))
                r += y;
            return r;
        }
        long lx = ToLong(a), ly = ToLong(b);
        if (ly == 0)
            throw new TemplateException("integer division or modulo by zero");
        long m = lx % ly;
        if (m != 0 && (m < 0) != (ly < 0))
            m += ly;
        return m;
    }

    public static object? Power(object? a, object? b)
    {
        RequireNumbers("**", a, b);
        if (a is double || b is double || ToLong(b) < 0)
            return Math.Pow(ToDouble(a), ToDouble(b));
        long result = 1, baseValue = ToLong(a);
        for (long exponent = ToLong(b); exponent > 0; exponent--)
            result = checked(result * baseValue);
        return result;
    }

    public static object? Negate(object? value) => value switch
    {
        long l => (object)checked(-l),
        bool b => b ? -1L : 0L,
        double d => -d,
        _ => throw new TemplateException($"bad operand type for unary -: '{TypeName(value)}'"),
    };

    public static object? Plus(object? value) => value switch
    {
        long or double => value,
        bool b => (object)(b ? 1L : 0L),
        _ => throw new TemplateException($"bad operand type for unary +: '{TypeName(value)}'"),
    };

    private static object? Numeric(string op, object? a, object? b, Func<long, long, long> onLongs, Func<double, double, double> onDoubles)
    {
        RequireNumbers(op, a, b);
        if (a is double || b is double)
            return onDoubles(ToDouble(a), ToDouble(b));
        try
        {
            return onLongs(ToLong(a), ToLong(b));
        }
        catch (OverflowException)
        {
            throw new TemplateException($"integer overflow in '{op}' (values beyond 64 bits are not supported)");
        }
    }

    private static void RequireNumbers(string op, object? a, object? b)
    {
        if (a is Undefined u)
            throw new TemplateException($"{u.Message}");
        if (b is Undefined ub)
            throw new TemplateException($"{ub.Message}");
        if (!IsNumber(a) || !IsNumber(b))
            throw new TemplateException($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }
}
