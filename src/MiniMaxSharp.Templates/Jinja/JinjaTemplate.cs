namespace MiniMaxSharp.Templates.Jinja;

/// <summary>
/// A parsed Jinja2 template (the subset Hugging Face chat templates use), rendered with
/// trim_blocks and lstrip_blocks as transformers compiles chat templates.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Node> _nodes;

    /// <summary>Parses <paramref name="source"/>; syntax errors throw <see cref="TemplateException"/> with line and column.</summary>
    public JinjaTemplate(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        _nodes = Parser.Parse(source);
    }

    public string Source { get; }

    /// <summary>
    /// Renders with the given variables. Values may be null, bool, integers, floating point numbers,
    /// strings, dictionaries, sequences and System.Text.Json elements or nodes.
    /// </summary>
    /// <param name="now">Clock for strftime_now; defaults to the local time.</param>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? now = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var converted = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in variables)
            converted[name] = PyConvert.FromClr(value, name);
        var evaluator = new Evaluator(Builtins.CreateGlobals(now ?? (() => DateTime.Now)));
        return evaluator.Render(_nodes, converted);
    }
}
