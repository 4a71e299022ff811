namespace MiniMaxSharp.Templates;

/// <summary>
/// A chat template could not be parsed or rendered. <see cref="Line"/> and <see cref="Column"/>
/// (1-based) locate the offending construct in the template source when known.
/// </summary>
public sealed class TemplateException : Exception
{
    public TemplateException(string message, int? line = null, int? column = null, Exception? inner = null)
        : this(line is null ? message : $"{message} (line {line}, column {column})", message, line, column, false, inner)
    {
    }

    private TemplateException(string fullMessage, string reason, int? line, int? column, bool raisedByTemplate, Exception? inner)
        : base(fullMessage, inner)
    {
        Reason = reason;
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>The error without the position suffix.</summary>
    public string Reason { get; }

    public int? Line { get; }

    public int? Column { get; }

    /// <summary>
    /// True when the template itself called <c>raise_exception(msg)</c>. The message is then exactly
    /// msg (it is meant for the user), while <see cref="Line"/>/<see cref="Column"/> still tell where.
    /// </summary>
    public bool RaisedByTemplate { get; }

    internal static TemplateException Raised(string message, int? line = null, int? column = null) =>
        new(message, message, line, column, true, null);
}
