using System.Collections;

namespace MiniMaxSharp.Templates.Jinja;

// The template value model mirrors Python's: null is None, bool, long (int), double (float),
// string (str), List<object?> (list), PyTuple (tuple), PyDict (dict), plus Undefined and callables.

/// <summary>A name or member that does not exist: prints as "", is falsy, iterates as empty.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new("value is undefined");

    public Undefined(string message) => Message = message;

    /// <summary>The error to report when the value is used where a real one is needed.</summary>
    public string Message { get; }

    public override string ToString() => "";
}

/// <summary>An immutable Python tuple; with field names it is a namedtuple (groupby's (grouper, list)).</summary>
internal sealed class PyTuple : IReadOnlyList<object?>
{
    private readonly object?[] _items;
    private readonly string[]? _fieldNames;

    public PyTuple(object?[] items, string[]? fieldNames = null)
    {
        _items = items;
        _fieldNames = fieldNames;
    }

    public bool TryGetField(string name, out object? value)
    {
        int index = _fieldNames is null ? -1 : Array.IndexOf(_fieldNames, name);
        value = index >= 0 ? _items[index] : null;
        return index >= 0;
    }

    public object? this[int index] => _items[index];

    public int Count => _items.Length;

    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();
}

/// <summary>An insertion-ordered Python dict; keys compare as Python does (1 == 1.0 == True).</summary>
internal sealed class PyDict : IEnumerable<KeyValuePair<object, object?>>
{
    private readonly OrderedDictionary<object, object?> _entries = new(PyKeyComparer.Instance);

    public int Count => _entries.Count;

    public IEnumerable<object> Keys => _entries.Keys;

    public IEnumerable<object?> Values => _entries.Values;

    public bool TryGetValue(object? key, out object? value)
    {
        value = null;
        return key is not null && _entries.TryGetValue(key, out value);
    }

    public bool ContainsKey(object? key) => key is not null && _entries.ContainsKey(key);

    public void Set(object? key, object? value)
    {
        if (key is null)
            throw new TemplateException("None is not supported as a dict key");
        if (key is List<object?> or PyDict)
            throw new TemplateException($"unhashable type: '{PyOps.TypeName(key)}'");
        _entries[key] = value;
    }

    public IEnumerator<KeyValuePair<object, object?>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Hashing and equality of dict keys under Python rules.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => PyOps.PyEquals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d when d == Math.Floor(d) && d >= long.MinValue && d <= long.MaxValue => ((long)d).GetHashCode(),
        PyTuple t => t.Aggregate(17, (h, item) => h * 31 + (item is null ? 0 : GetHashCode(item))),
        _ => obj.GetHashCode(),
    };
}

/// <summary>An object with named attributes (namespace(), loop, ...).</summary>
internal interface IPyObject
{
    bool TryGetAttribute(string name, out object? value);
}

/// <summary>Jinja's namespace(): the one mutable object templates can assign into across scopes.</summary>
internal sealed class PyNamespace : IPyObject
{
    public OrderedDictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);

    public bool TryGetAttribute(string name, out object? value) => Attributes.TryGetValue(name, out value);
}

/// <summary>Arguments of a call: positional values and keyword values in call order.</summary>
internal sealed class CallArgs
{
    public CallArgs(List<object?> positional, OrderedDictionary<string, object?> named)
    {
        Positional = positional;
        Named = named;
    }

    public List<object?> Positional { get; }

    public OrderedDictionary<string, object?> Named { get; }

    /// <summary>
    /// Binds the arguments to Python-style parameters (positional or keyword), rejecting surplus
    /// positional values and unknown keywords with an error that names <paramref name="function"/>.
    /// </summary>
    public BoundArgs Bind(string function, params string[] parameters)
    {
        if (Positional.Count > parameters.Length)
            throw new TemplateException($"{function}() takes at most {parameters.Length} argument(s) ({Positional.Count} given)");
        var values = new object?[parameters.Length];
        var present = new bool[parameters.Length];
        for (int i = 0; i < Positional.Count; i++)
        {
            values[i] = Positional[i];
            present[i] = true;
        }
        foreach (var (name, value) in Named)
        {
            int index = Array.IndexOf(parameters, name);
            if (index < 0)
                throw new TemplateException($"{function}() got an unexpected keyword argument '{name}'");
            if (present[index])
                throw new TemplateException($"{function}() got multiple values for argument '{name}'");
            values[index] = value;
            present[index] = true;
        }
        return new BoundArgs(function, parameters, values, present);
    }
}

internal readonly struct BoundArgs
{
    private readonly string _function;
    private readonly string[] _names;
    private readonly object?[] _values;
    private readonly bool[] _present;

    public BoundArgs(string function, string[] names, object?[] values, bool[] present)
    {
        _function = function;
        _names = names;
        _values = values;
        _present = present;
    }

    public bool Has(int index) => _present[index];

    /// <summary>The value, or <paramref name="fallback"/> when the argument was not passed.</summary>
    public object? Get(int index, object? fallback = null) => _present[index] ? _values[index] : fallback;

    public object? Required(int index) => _present[index]
        ? _values[index]
        : throw new TemplateException($"{_function}() missing required argument '{_names[index]}'");
}

/// <summary>A function value: builtin globals, bound methods and macros.</summary>
internal sealed class PyCallable
{
    public PyCallable(string name, Func<CallArgs, object?> invoke)
    {
        Name = name;
        Invoke = invoke;
    }

    public string Name { get; }

    public Func<CallArgs, object?> Invoke { get; }
}
