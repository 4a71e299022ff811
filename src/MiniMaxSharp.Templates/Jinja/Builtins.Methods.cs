using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Methods of str, dict and list values ("text.strip()", "message.get('x')").</summary>
internal static partial class Builtins
{
    // transformers renders in Jinja's immutable sandbox, where these are refused.
    private static readonly HashSet<string> MutatingDictMethods = ["pop", "popitem", "update", "clear", "setdefault"];
    private static readonly HashSet<string> MutatingListMethods = ["append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear"];

    public static bool TryGetMethod(object? target, string name, out object? method)
    {
        method = target switch
        {
            string s => StringMethod(s, name),
            PyDict d => DictMethod(d, name),
            List<object?> or PyTuple => SequenceMethod((IReadOnlyList<object?>)target, name, target is List<object?>),
            _ => null,
        };
        return method is not null;
    }

    private static PyCallable Method(string name, Func<CallArgs, object?> body) => new(name, body);

    private static object? Unsafe(string type, string name) =>
        new Undefined($"access to attribute '{name}' of '{type}' object is unsafe (templates cannot modify values)");

    private static object? DictMethod(PyDict dict, string name) => name switch
    {
        "items" => Method("dict.items", args =>
        {
            args.Bind("items");
            return DictItems(dict);
        }),
        "keys" => Method("dict.keys", args =>
        {
            args.Bind("keys");
            return new List<object?>(dict.Keys);
        }),
        "values" => Method("dict.values", args =>
        {
            args.Bind("values");
            return new List<object?>(dict.Values);
        }),
        "get" => Method("dict.get", args =>
        {
            var a = args.Bind("get", "key", "default");
            return dict.TryGetValue(a.Required(0), out var value) ? value : a.Get(1);
        }),
        "copy" => Method("dict.copy", args =>
        {
            args.Bind("copy");
            var copy = new PyDict();
            foreach (var (key, value) in dict)
                copy.Set(key, value);
            return copy;
        }),
        _ when MutatingDictMethods.Contains(name) => Unsafe("dict", name),
        _ => null,
    };

    internal static List<object?> DictItems(PyDict dict) =>
        dict.Select(pair => (object?)new PyTuple([pair.Key, pair.Value])).ToList();

    private static object? SequenceMethod(IReadOnlyList<object?> items, string name, bool isList) => name switch
    {
        "count" => Method("count", args =>
        {
            var item = args.Bind("count", "value").Required(0);
            return (long)items.Count(x => PyOps.PyEquals(x, item));
        }),
        "index" => Method("index", args =>
        {
            var item = args.Bind("index", "value").Required(0);
            for (int i = 0; i < items.Count; i++)
            {
                if (PyOps.PyEquals(items[i], item))
                    return (long)i;
            }
            throw new TemplateException($"{PyOps.Repr(item)} is not in list");
        }),
        _ when isList && MutatingListMethods.Contains(name) => Unsafe("list", name),
        _ => null,
    };

    private static object? StringMethod(string s, string name) => name switch
    {
        "strip" or "lstrip" or "rstrip" => Method(name, args =>
        {
            var chars = args.Bind(name, "chars").Get(0);
            return PyString.Strip(s, OptionalString(chars, name), name != "rstrip", name != "lstrip");
        }),
        "split" => Method("split", args =>
        {
            var a = args.Bind("split", "sep", "maxsplit");
            return PyString.Split(s, OptionalString(a.Get(0), "split"), a.Has(1) ? PyOps.ToLong(a.Get(1)) : -1);
        }),
        "splitlines" => Method("splitlines", args =>
        {
            args.Bind("splitlines");
            return PyString.SplitLines(s).Cast<object?>().ToList();
        }),
        "startswith" or "endswith" => Method(name, args =>
        {
            var affix = args.Bind(name, "prefix").Required(0);
            var candidates = affix is PyTuple tuple ? tuple.ToList() : [affix];
            return candidates.Any(c => c is string text
                ? (name == "startswith" ? s.StartsWith(text, StringComparison.Ordinal) : s.EndsWith(text, StringComparison.Ordinal))
                : throw new TemplateException($"{name}() argument must be str or a tuple of str, not {PyOps.TypeName(c)}"));
        }),
        "upper" => Method("upper", args => NoArgs(args, "upper", s.ToUpperInvariant())),
        "lower" => Method("lower", args => NoArgs(args, "lower", s.ToLowerInvariant())),
        "title" => Method("title", args => NoArgs(args, "title", PyString.PythonTitle(s))),
        "capitalize" => Method("capitalize", args => NoArgs(args, "capitalize", PyString.Capitalize(s))),
        "isdigit" => Method("isdigit", args => NoArgs(args, "isdigit", s.Length > 0 && s.All(char.IsDigit))),
        "isalpha" => Method("isalpha", args => NoArgs(args, "isalpha", s.Length > 0 && s.All(char.IsLetter))),
        "isspace" => Method("isspace", args => NoArgs(args, "isspace", s.Length > 0 && s.All(PyString.IsSpace))),
        "replace" => Method("replace", args =>
        {
            var a = args.Bind("replace", "old", "new", "count");
            return PyString.Replace(s, RequireString(a.Required(0), "replace"), RequireString(a.Required(1), "replace"),
                a.Has(2) ? PyOps.ToLong(a.Get(2)) : -1);
        }),
        "find" => Method("find", args =>
        {
            string sub = RequireString(args.Bind("find", "sub").Required(0), "find");
            int index = s.IndexOf(sub, StringComparison.Ordinal);
            return index < 0 ? -1L : (long)PyString.Length(s[..index]);
        }),
        "count" => Method("count", args =>
        {
            string sub = RequireString(args.Bind("count", "sub").Required(0), "count");
            if (sub.Length == 0)
                return PyString.Length(s) + 1;
            long count = 0;
            for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal))
                count++;
            return count;
        }),
        "join" => Method("join", args =>
            string.Join(s, PyOps.Iterate(args.Bind("join", "iterable").Required(0)).Select(item =>
                item as string ?? throw new TemplateException($"join(): expected str items, got '{PyOps.TypeName(item)}'")))),
        "format" => Method("format", args => FormatBraces(s, args)),
        _ => null,
    };

    private static object? NoArgs(CallArgs args, string name, object? result)
    {
        args.Bind(name);
        return result;
    }

    private static string? OptionalString(object? value, string function) => value switch
    {
        null => null,
        string s => s,
        _ => throw new TemplateException($"{function}(): expected a string argument, got '{PyOps.TypeName(value)}'"),
    };

    private static string RequireString(object? value, string function) =>
        OptionalString(value, function) ?? throw new TemplateException($"{function}(): expected a string argument, got None");

    /// <summary>str.format with "{}", "{0}" and "{name}" fields (no format specifications).</summary>
    private static string FormatBraces(string format, CallArgs args)
    {
        var sb = new StringBuilder();
        int automatic = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < format.Length && format[i + 1] == '}')
            {
                sb.Append('}');
                i++;
            }
            else if (c == '{')
            {
                int close = format.IndexOf('}', i);
                if (close < 0)
                    throw new TemplateException("format(): single '{' encountered in format string");
                string field = format[(i + 1)..close];
                if (field.Contains(':') || field.Contains('!'))
                    throw new TemplateException($"format(): format specifications are not supported ('{{{field}}}')");
                object? value;
                if (field.Length == 0)
                    value = automatic < args.Positional.Count ? args.Positional[automatic++] : throw new TemplateException("format(): not enough arguments");
                else if (int.TryParse(field, out int index))
                    value = index < args.Positional.Count ? args.Positional[index] : throw new TemplateException($"format(): no argument {index}");
                else
                    value = args.Named.TryGetValue(field, out var named) ? named : throw new TemplateException($"format(): no argument named '{field}'");
                sb.Append(PyOps.ToStr(value));
                i = close;
            }
            else if (c == '}')
            {
                throw new TemplateException("format(): single '}' encountered in format string");
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }
}
