namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Jinja's builtin tests (value is name(args)).</summary>
internal static partial class Builtins
{
    private static readonly Dictionary<string, Func<object?, IReadOnlyList<object?>, bool>> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, a) => NoTestArgs(a, "defined", v is not Undefined),
        ["undefined"] = (v, a) => NoTestArgs(a, "undefined", v is Undefined),
        ["none"] = (v, a) => NoTestArgs(a, "none", v is null),
        ["boolean"] = (v, a) => NoTestArgs(a, "boolean", v is bool),
        ["true"] = (v, a) => NoTestArgs(a, "true", v is true),
        ["false"] = (v, a) => NoTestArgs(a, "false", v is false),
        ["integer"] = (v, a) => NoTestArgs(a, "integer", v is long),
        ["float"] = (v, a) => NoTestArgs(a, "float", v is double),
        ["number"] = (v, a) => NoTestArgs(a, "number", PyOps.IsNumber(v)),
        ["string"] = (v, a) => NoTestArgs(a, "string", v is string),
        ["mapping"] = (v, a) => NoTestArgs(a, "mapping", v is PyDict),
        ["iterable"] = (v, a) => NoTestArgs(a, "iterable", PyOps.IsIterable(v)),
        ["sequence"] = (v, a) => NoTestArgs(a, "sequence", v is string or List<object?> or PyTuple or PyDict),
        ["callable"] = (v, a) => NoTestArgs(a, "callable", v is PyCallable),
        ["odd"] = (v, a) => NoTestArgs(a, "odd", (long)PyOps.Modulo(RequireInteger(v, "odd"), 2L)! == 1),
        ["even"] = (v, a) => NoTestArgs(a, "even", (long)PyOps.Modulo(RequireInteger(v, "even"), 2L)! == 0),
        ["divisibleby"] = (v, a) => PyOps.PyEquals(PyOps.Modulo(v, OneTestArg(a, "divisibleby")), 0L),
        ["eq"] = (v, a) => PyOps.PyEquals(v, OneTestArg(a, "eq")),
        ["equalto"] = (v, a) => PyOps.PyEquals(v, OneTestArg(a, "equalto")),
        ["=="] = (v, a) => PyOps.PyEquals(v, OneTestArg(a, "==")),
        ["ne"] = (v, a) => !PyOps.PyEquals(v, OneTestArg(a, "ne")),
        ["!="] = (v, a) => !PyOps.PyEquals(v, OneTestArg(a, "!=")),
        ["lt"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "lt")) < 0,
        ["lessthan"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "lessthan")) < 0,
        ["<"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "<")) < 0,
        ["le"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "le")) <= 0,
        ["<="] = (v, a) => PyOps.Compare(v, OneTestArg(a, "<=")) <= 0,
        ["gt"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "gt")) > 0,
        ["greaterthan"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "greaterthan")) > 0,
        [">"] = (v, a) => PyOps.Compare(v, OneTestArg(a, ">")) > 0,
        ["ge"] = (v, a) => PyOps.Compare(v, OneTestArg(a, "ge")) >= 0,
        [">="] = (v, a) => PyOps.Compare(v, OneTestArg(a, ">=")) >= 0,
        ["in"] = (v, a) => PyOps.Contains(OneTestArg(a, "in"), v),
        ["sameas"] = (v, a) => SameAs(v, OneTestArg(a, "sameas")),
        ["lower"] = (v, a) => NoTestArgs(a, "lower", v is string s && s.Any(char.IsLetter) && s == s.ToLowerInvariant()),
        ["upper"] = (v, a) => NoTestArgs(a, "upper", v is string s && s.Any(char.IsLetter) && s == s.ToUpperInvariant()),
    };

    public static bool HasTest(string name) => Tests.ContainsKey(name);

    public static bool ApplyTest(string name, object? value, IReadOnlyList<object?> args) =>
        Tests.TryGetValue(name, out var test) ? test(value, args) : throw new TemplateException($"No test named '{name}'");

    private static bool NoTestArgs(IReadOnlyList<object?> args, string name, bool result) =>
        args.Count == 0 ? result : throw new TemplateException($"Test '{name}' takes no arguments");

    private static object? OneTestArg(IReadOnlyList<object?> args, string name) =>
        args.Count == 1 ? args[0] : throw new TemplateException($"Test '{name}' takes exactly one argument ({args.Count} given)");

    private static object? RequireInteger(object? value, string test) => value is long or bool
        ? value
        : throw new TemplateException($"Test '{test}' needs an integer, got '{PyOps.TypeName(value)}'");

    /// <summary>Python's "is": scalars by value (as interned in CPython), containers by identity.</summary>
    private static bool SameAs(object? a, object? b) => a switch
    {
        null => b is null,
        bool x => b is bool y && x == y,
        long x => b is long y && x == y,
        string x => b is string y && x == y,
        _ => ReferenceEquals(a, b),
    };
}
