namespace MiniMaxSharp.Templates.Jinja;

internal enum TokenKind
{
    Text,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    EndOfInput,
}

/// <summary>One lexical token; <see cref="Literal"/> holds the parsed value of string and number tokens.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Line, int Column, object? Literal = null)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsOperator(string value) => Is(TokenKind.Operator, value);

    public bool IsName(string value) => Is(TokenKind.Name, value);

    public string Describe() => Kind switch
    {
        TokenKind.EndOfInput => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.Text => "template text",
        _ => $"'{Value}'",
    };
}
