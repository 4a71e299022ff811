namespace MiniMaxSharp.Templates.Jinja;

/// <summary>
/// Attribute, item and slice access with Jinja's lookup order: "a.b" tries the attribute (a method)
/// first and then the item; "a['b']" tries the item first and then the attribute. Missing members are
/// undefined rather than errors, and members of undefined are undefined too.
/// </summary>
internal static class Access
{
    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case Undefined undefined:
                return undefined;
            case PyDict dict:
                if (Builtins.TryGetMethod(dict, name, out var method))
                    return method;
                return dict.TryGetValue(name, out var value) ? value : Missing(target, name);
            case IPyObject obj:
                return obj.TryGetAttribute(name, out var attribute) ? attribute : Missing(target, name);
            case PyTuple tuple when tuple.TryGetField(name, out var field):
                return field;
            default:
                return Builtins.TryGetMethod(target, name, out var bound) ? bound : Missing(target, name);
        }
    }

    /// <summary>The attr filter: like "a.b" but never falls back to the dict item.</summary>
    public static object? GetAttributeOnly(object? target, string name) => target switch
    {
        Undefined undefined => undefined,
        IPyObject obj => obj.TryGetAttribute(name, out var attribute) ? attribute : Missing(target, name),
        _ => Builtins.TryGetMethod(target, name, out var method) ? method : Missing(target, name),
    };

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined undefined:
                return undefined;
            case PyDict dict:
                if (dict.TryGetValue(key, out var value))
                    return value;
                return key is string name && Builtins.TryGetMethod(dict, name, out var method) ? method : Missing(target, PyOps.ToStr(key));
            case List<object?> or PyTuple or string when key is long or bool:
                var sequence = AsSequence(target);
                long index = PyOps.ToLong(key);
                if (index < 0)
                    index += sequence.Count;
                return index >= 0 && index < sequence.Count
                    ? sequence[(int)index]
                    : new Undefined($"{PyOps.TypeName(target)} index out of range");
            default:
                return key is string attribute ? GetAttribute(target, attribute) : Missing(target, PyOps.ToStr(key));
        }
    }

    /// <summary>Follows "a.b.0"-style paths (selectattr, map(attribute=...), sort(attribute=...)).</summary>
    public static object? GetPath(object? target, string path)
    {
        foreach (var part in path.Split('.'))
        {
            target = long.TryParse(part, out long index) && target is not PyDict
                ? GetItem(target, index)
                : GetItem(target, part);
        }
        return target;
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        if (target is Undefined)
            return target;
        var sequence = AsSequence(target);
        long stepValue = step is null ? 1 : PyOps.ToLong(step);
        if (stepValue == 0)
            throw new TemplateException("slice step cannot be zero");
        int count = sequence.Count;
        long begin = Adjust(start, count, stepValue, isStart: true);
        long end = Adjust(stop, count, stepValue, isStart: false);
        var items = new List<object?>();
        for (long i = begin; stepValue > 0 ? i < end : i > end; i += stepValue)
            items.Add(sequence[(int)i]);
        return target switch
        {
            string => string.Concat(items.Cast<string>()),
            PyTuple => new PyTuple([.. items]),
            _ => items,
        };
    }

    /// <summary>Clamps a slice bound as Python's slice.indices() does.</summary>
    private static long Adjust(object? bound, int count, long step, bool isStart)
    {
        if (bound is null)
            return isStart ? (step > 0 ? 0 : count - 1) : (step > 0 ? count : -1);
        long value = PyOps.ToLong(bound);
        if (value < 0)
        {
            value += count;
            if (value < 0)
                value = step > 0 ? 0 : -1;
        }
        else if (value >= count)
        {
            value = step > 0 ? count : count - 1;
        }
        return value;
    }

    private static IReadOnlyList<object?> AsSequence(object? target) => target switch
    {
        List<object?> list => list,
        PyTuple tuple => tuple,
        string s => PyString.Characters(s),
        _ => throw new TemplateException($"'{PyOps.TypeName(target)}' object is not subscriptable"),
    };

    private static Undefined Missing(object? target, string name) =>
        new($"'{(target is null ? "None" : PyOps.TypeName(target) + " object")}' has no attribute '{name}'");
}
