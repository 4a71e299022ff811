namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Global functions: Jinja's range/namespace/dict plus transformers' raise_exception and strftime_now.</summary>
internal static partial class Builtins
{
    private const long MaxRangeLength = 10_000_000;

    /// <summary>The globals of one render; <paramref name="now"/> supplies the clock of strftime_now.</summary>
    public static Dictionary<string, object?> CreateGlobals(Func<DateTime> now) => new(StringComparer.Ordinal)
    {
        ["range"] = new PyCallable("range", Range),
        ["namespace"] = new PyCallable("namespace", Namespace),
        ["dict"] = new PyCallable("dict", Dict),
        ["raise_exception"] = new PyCallable("raise_exception", args =>
            throw TemplateException.Raised(PyOps.ToStr(args.Bind("raise_exception", "message").Required(0)))),
        ["strftime_now"] = new PyCallable("strftime_now", args =>
            Strftime.Format(now(), RequireString(args.Bind("strftime_now", "format").Required(0), "strftime_now"))),
    };

    private static object? Range(CallArgs args)
    {
        if (args.Named.Count > 0)
            throw new TemplateException("range() takes no keyword arguments");
        var p = args.Positional;
        if (p.Count is 0 or > 3)
            throw new TemplateException($"range expected 1 to 3 arguments, got {p.Count}");
        long start = p.Count == 1 ? 0 : RangeArgument(p[0]);
        long stop = RangeArgument(p[p.Count == 1 ? 0 : 1]);
        long step = p.Count == 3 ? RangeArgument(p[2]) : 1;
        if (step == 0)
            throw new TemplateException("range() arg 3 must not be zero");
        long length = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (length > MaxRangeLength)
            throw new TemplateException($"range() of {length} items exceeds the limit of {MaxRangeLength}");
        var items = new List<object?>((int)length);
        for (long i = 0, value = start; i < length; i++, value += step)
            items.Add(value);
        return items;
    }

    private static long RangeArgument(object? value) => value is long or bool
        ? PyOps.ToLong(value)
        : throw new TemplateException($"'{PyOps.TypeName(value)}' object cannot be interpreted as an integer");

    private static object? Namespace(CallArgs args)
    {
        var ns = new PyNamespace();
        foreach (var initial in args.Positional)
        {
            if (initial is not PyDict dict)
                throw new TemplateException($"namespace() positional arguments must be dicts, got '{PyOps.TypeName(initial)}'");
            foreach (var (key, value) in dict)
                ns.Attributes[PyOps.ToStr(key)] = value;
        }
        foreach (var (name, value) in args.Named)
            ns.Attributes[name] = value;
        return ns;
    }

    private static object? Dict(CallArgs args)
    {
        var dict = new PyDict();
        if (args.Positional.Count > 1)
            throw new TemplateException($"dict expected at most 1 argument, got {args.Positional.Count}");
        if (args.Positional.Count == 1)
        {
            if (args.Positional[0] is not PyDict source)
                throw new TemplateException($"dict() argument must be a dict, got '{PyOps.TypeName(args.Positional[0])}'");
            foreach (var (key, value) in source)
                dict.Set(key, value);
        }
        foreach (var (name, value) in args.Named)
            dict.Set(name, value);
        return dict;
    }
}
