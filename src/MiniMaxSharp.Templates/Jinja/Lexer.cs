using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>
/// Splits template source into text and tag tokens, applying Jinja's whitespace control with the
/// settings Hugging Face compiles chat templates with: trim_blocks (drop the first newline after a
/// block or comment tag), lstrip_blocks (drop spaces/tabs between a line start and a block or
/// comment tag), "-" markers (strip all whitespace on that side) and "+" markers (disable both).
/// A single trailing newline of the template is dropped, as Jinja does by default.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", "<=", ">=",
        "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}",
    ];

    private readonly string _source;
    private readonly int[] _lineStarts;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(string source)
    {
        _source = source;
        var starts = new List<int> { 0 };
        for (int i = 0; i < source.Length; i++)
        {
            if (source[i] == '\n')
                starts.Add(i + 1);
        }
        _lineStarts = [.. starts];
    }

    public static List<Token> Tokenize(string source)
    {
        string normalized = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (normalized.EndsWith('\n'))
            normalized = normalized[..^1];
        var lexer = new Lexer(normalized);
        lexer.Run();
        return lexer._tokens;
    }

    private (int Line, int Column) Position(int offset)
    {
        int index = Array.BinarySearch(_lineStarts, offset);
        if (index < 0)
            index = ~index - 1;
        return (index + 1, offset - _lineStarts[index] + 1);
    }

    private TemplateException Error(string message, int offset)
    {
        var (line, column) = Position(offset);
        return new TemplateException(message, line, column);
    }

    private void Add(TokenKind kind, string value, int offset, object? literal = null)
    {
        var (line, column) = Position(offset);
        _tokens.Add(new Token(kind, value, line, column, literal));
    }

    private void Run()
    {
        bool lineStarting = true;
        while (_pos < _source.Length)
        {
            int open = FindTagStart(_pos);
            if (open < 0)
            {
                Add(TokenKind.Text, _source[_pos..], _pos);
                break;
            }
            char kind = _source[open + 1];
            char sign = open + 2 < _source.Length && _source[open + 2] is '-' or '+' ? _source[open + 2] : '\0';
            string text = _source[_pos..open];
            if (sign == '-')
            {
                text = text.TrimEnd();
            }
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: whitespace alone on the line before a block or comment tag goes.
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && text.AsSpan(lineStart).Trim(" \t\v\f").IsEmpty)
                    text = text[..lineStart];
            }
            if (text.Length > 0)
                Add(TokenKind.Text, text, _pos);

            int afterOpen = open + 2 + (sign == '\0' ? 0 : 1);
            switch (kind)
            {
                case '#': _pos = SkipComment(open, afterOpen); break;
                case '%' when TryRawBlock(open, afterOpen): break;
                case '%': LexTag(open, afterOpen, isBlock: true); break;
                default: LexTag(open, afterOpen, isBlock: false); break;
            }
            lineStarting = _pos > 0 && _source[_pos - 1] == '\n';
        }
    }

    private int FindTagStart(int from)
    {
        for (int i = _source.IndexOf('{', from); i >= 0 && i + 1 < _source.Length; i = _source.IndexOf('{', i + 1))
        {
            if (_source[i + 1] is '{' or '%' or '#')
                return i;
        }
        return -1;
    }

    /// <summary>Consumes what follows a closing tag: all whitespace after "-", else one newline (trim_blocks) unless "+".</summary>
    private int AfterTagEnd(int end, char sign, bool trimNewline)
    {
        if (sign == '-')
        {
            while (end < _source.Length && char.IsWhiteSpace(_source[end]))
                end++;
        }
        else if (sign != '+' && trimNewline && end < _source.Length && _source[end] == '\n')
        {
            end++;
        }
        return end;
    }

    private int SkipComment(int open, int afterOpen)
    {
        int close = _source.IndexOf("#}", afterOpen, StringComparison.Ordinal);
        if (close < 0)
            throw Error("Missing end of comment tag '#}'", open);
        char sign = close > afterOpen && _source[close - 1] is '-' or '+' ? _source[close - 1] : '\0';
        return AfterTagEnd(close + 2, sign, trimNewline: true);
    }

    /// <summary>{% raw %}...{% endraw %} emits its content as text without interpreting it.</summary>
    private bool TryRawBlock(int open, int afterOpen)
    {
        int i = SkipSpaces(afterOpen);
        if (!MatchWord(i, "raw"))
            return false;
        i = SkipSpaces(i + 3);
        char beginSign = '\0';
        if (i < _source.Length && _source[i] is '-' or '+')
            beginSign = _source[i++];
        if (!_source.AsSpan(i).StartsWith("%}"))
            return false;
        int contentStart = i + 2;
        if (beginSign == '-')
            contentStart = AfterTagEnd(contentStart, '-', false);

        for (int search = _source.IndexOf("{%", contentStart, StringComparison.Ordinal); search >= 0;
             search = _source.IndexOf("{%", search + 2, StringComparison.Ordinal))
        {
            int j = search + 2;
            char endOpenSign = j < _source.Length && _source[j] is '-' or '+' ? _source[j] : '\0';
            if (endOpenSign != '\0')
                j++;
            j = SkipSpaces(j);
            if (!MatchWord(j, "endraw"))
                continue;
            j = SkipSpaces(j + 6);
            char endSign = '\0';
            if (j < _source.Length && _source[j] is '-' or '+')
                endSign = _source[j++];
            if (!_source.AsSpan(j).StartsWith("%}"))
                continue;
            string content = _source[contentStart..search];
            if (endOpenSign == '-')
                content = content.TrimEnd();
            else if (endOpenSign != '+')
            {
                int lineStart = content.LastIndexOf('\n') + 1;
                if (lineStart > 0 && content.AsSpan(lineStart).Trim(" \t\v\f").IsEmpty)
                    content = content[..lineStart];
            }
            if (content.Length > 0)
                Add(TokenKind.Text, content, contentStart);
            _pos = AfterTagEnd(j + 2, endSign, trimNewline: true);
            return true;
        }
        throw Error("Missing '{% endraw %}' for this raw block", open);
    }

    private int SkipSpaces(int i)
    {
        while (i < _source.Length && char.IsWhiteSpace(_source[i]))
            i++;
        return i;
    }

    private bool MatchWord(int i, string word) =>
        _source.AsSpan(i).StartsWith(word, StringComparison.Ordinal)
        && (i + word.Length >= _source.Length || !IsNameChar(_source[i + word.Length]));

    private static bool IsNameStart(char c) => c == '_' || char.IsLetter(c);

    private static bool IsNameChar(char c) => c == '_' || char.IsLetterOrDigit(c);

    private void LexTag(int open, int position, bool isBlock)
    {
        Add(isBlock ? TokenKind.BlockBegin : TokenKind.VariableBegin, isBlock ? "{%" : "{{", open);
        string close = isBlock ? "%}" : "}}";
        var brackets = new Stack<(char Bracket, int Offset)>();
        int i = position;
        while (true)
        {
            while (i < _source.Length && char.IsWhiteSpace(_source[i]))
                i++;
            if (i >= _source.Length)
                throw Error($"Unexpected end of template: tag opened here was not closed with '{close}'", open);

            if (brackets.Count == 0)
            {
                char sign = _source[i] is '-' or '+' ? _source[i] : '\0';
                int closeAt = sign == '\0' ? i : i + 1;
                if ((sign != '+' || isBlock) && _source.AsSpan(closeAt).StartsWith(close))
                {
                    Add(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, close, i);
                    _pos = AfterTagEnd(closeAt + 2, sign, trimNewline: isBlock);
                    return;
                }
            }

            char c = _source[i];
            if (IsNameStart(c))
            {
                int start = i;
                while (i < _source.Length && IsNameChar(_source[i]))
                    i++;
                Add(TokenKind.Name, _source[start..i], start);
            }
            else if (char.IsAsciiDigit(c))
            {
                i = LexNumber(i);
            }
            else if (c is '\'' or '"')
            {
                i = LexString(i);
            }
            else
            {
                string? op = Operators.FirstOrDefault(o => _source.AsSpan(i).StartsWith(o, StringComparison.Ordinal));
                if (op is null)
                    throw Error($"Unexpected character '{c}'", i);
                if (op is "(" or "[" or "{")
                {
                    brackets.Push((op[0], i));
                }
                else if (op is ")" or "]" or "}")
                {
                    char expected = op == ")" ? '(' : op == "]" ? '[' : '{';
                    if (brackets.Count == 0)
                        throw Error($"Unexpected '{op}'", i);
                    var (bracket, bracketOffset) = brackets.Pop();
                    if (bracket != expected)
                        throw Error($"Unexpected '{op}': '{bracket}' opened at {Describe(bracketOffset)} is not closed", i);
                }
                Add(TokenKind.Operator, op, i);
                i += op.Length;
            }
        }
    }

    private string Describe(int offset)
    {
        var (line, column) = Position(offset);
        return $"line {line}, column {column}";
    }

    private int LexNumber(int start)
    {
        int i = ScanDigits(start);
        bool isFloat = false;
        if (i + 1 < _source.Length && _source[i] == '.' && char.IsAsciiDigit(_source[i + 1]))
        {
            isFloat = true;
            i = ScanDigits(i + 1);
        }
        if (i < _source.Length && _source[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < _source.Length && _source[j] is '+' or '-')
                j++;
            if (j < _source.Length && char.IsAsciiDigit(_source[j]))
            {
                isFloat = true;
                i = ScanDigits(j);
            }
        }
        string text = _source[start..i];
        string digits = text.Replace("_", "");
        if (isFloat)
        {
            Add(TokenKind.Float, text, start, double.Parse(digits, NumberStyles.Float, CultureInfo.InvariantCulture));
        }
        else
        {
            if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                throw Error($"Integer literal {text} does not fit in 64 bits", start);
            Add(TokenKind.Integer, text, start, value);
        }
        return i;
    }

    /// <summary>Digits with single underscores between them, as in Python literals (1_000).</summary>
    private int ScanDigits(int i)
    {
        while (i < _source.Length && (char.IsAsciiDigit(_source[i])
                   || (_source[i] == '_' && i + 1 < _source.Length && char.IsAsciiDigit(_source[i + 1]))))
            i++;
        return i;
    }

    private int LexString(int start)
    {
        char quote = _source[start];
        var sb = new StringBuilder();
        int i = start + 1;
        while (true)
        {
            if (i >= _source.Length)
                throw Error("Unterminated string literal", start);
            char c = _source[i];
            if (c == quote)
                break;
            if (c != '\\')
            {
                sb.Append(c);
                i++;
                continue;
            }
            if (i + 1 >= _source.Length)
                throw Error("Unterminated string literal", start);
            char e = _source[i + 1];
            i += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break; // a backslash-newline continues the literal
                case 'x': i = AppendCodePoint(sb, i, 2, start); break;
                case 'u': i = AppendCodePoint(sb, i, 4, start); break;
                case 'U': i = AppendCodePoint(sb, i, 8, start); break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes verbatim
            }
        }
        Add(TokenKind.String, _source[start..(i + 1)], start, sb.ToString());
        return i + 1;
    }

    private int AppendCodePoint(StringBuilder sb, int i, int digits, int literalStart)
    {
        if (i + digits > _source.Length
            || !int.TryParse(_source.AsSpan(i, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || code > 0x10FFFF)
            throw Error($"Invalid \\{(digits == 2 ? "x" : digits == 4 ? "u" : "U")} escape in string literal", literalStart);
        if (code is >= 0xD800 and <= 0xDFFF)
            sb.Append((char)code);
        else
            sb.Append(char.ConvertFromUtf32(code));
        return i + digits;
    }
}
