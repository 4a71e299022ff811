namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Recursive-descent parser from tokens to the syntax tree, following Jinja's grammar and precedence.</summary>
internal sealed class Parser
{
    private static readonly HashSet<string> UnsupportedTags =
        ["include", "extends", "import", "from", "block", "endblock", "with", "endwith", "autoescape", "endautoescape", "do"];

    private readonly List<Token> _tokens;
    private int _index;
    private int _loopDepth; // break/continue are only valid inside a for body (macro bodies start afresh)

    private Parser(List<Token> tokens) => _tokens = tokens;

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new Parser(Lexer.Tokenize(source));
        var (body, endTag) = parser.ParseBody([]);
        if (endTag is not null)
            throw parser.Error($"Unexpected tag '{endTag.Value.Value}'", endTag.Value);
        return body;
    }

    private Token Current => _tokens.Count > _index ? _tokens[_index] : EndToken();

    private Token Peek(int ahead = 1) => _tokens.Count > _index + ahead ? _tokens[_index + ahead] : EndToken();

    private Token EndToken()
    {
        var last = _tokens.Count > 0 ? _tokens[^1] : new Token(TokenKind.EndOfInput, "", 1, 1);
        return new Token(TokenKind.EndOfInput, "", last.Line, last.Column);
    }

    private Token Next()
    {
        var token = Current;
        _index++;
        return token;
    }

    private TemplateException Error(string message, Token at) => new(message, at.Line, at.Column);

    private Token Expect(TokenKind kind, string? value = null)
    {
        var token = Current;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            string wanted = value is not null ? $"'{value}'" : kind switch
            {
                TokenKind.Name => "a name",
                TokenKind.BlockEnd => "end of statement block '%}'",
                TokenKind.VariableEnd => "end of print statement '}}'",
                _ => kind.ToString(),
            };
            throw Error($"Expected {wanted}, got {token.Describe()}", token);
        }
        return Next();
    }

    private bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op))
            return false;
        _index++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name))
            return false;
        _index++;
        return true;
    }

    // ---- statements ----

    /// <summary>
    /// Parses nodes until a block tag whose name is in <paramref name="endTags"/> (left unconsumed
    /// after its "{%" and name) or the end of input (then the returned tag is null).
    /// </summary>
    private (List<Node> Body, Token? EndTag) ParseBody(string[] endTags)
    {
        var body = new List<Node>();
        while (Current.Kind != TokenKind.EndOfInput)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Text:
                    body.Add(new TextNode(token.Value, token.Line, token.Column));
                    _index++;
                    break;
                case TokenKind.VariableBegin:
                    _index++;
                    var expression = ParseTuple(allowConditional: true);
                    Expect(TokenKind.VariableEnd);
                    body.Add(new OutputNode(expression, token.Line, token.Column));
                    break;
                case TokenKind.BlockBegin:
                    var tag = Peek();
                    if (tag.Kind != TokenKind.Name)
                        throw Error($"Expected a tag name after '{{%', got {tag.Describe()}", tag);
                    if (endTags.Contains(tag.Value))
                    {
                        _index += 2;
                        return (body, tag);
                    }
                    _index += 2;
                    body.Add(ParseStatement(tag));
                    break;
                default:
                    throw Error($"Unexpected {token.Describe()}", token);
            }
        }
        return (body, null);
    }

    private List<Node> ParseBodyUntil(string openingTag, Token opening, string[] endTags, out string endTagName)
    {
        var (body, end) = ParseBody(endTags);
        if (end is null)
            throw Error($"Unexpected end of template: '{openingTag}' opened here was not closed; expected {string.Join(" or ", endTags.Select(t => $"'{t}'"))}", opening);
        endTagName = end.Value.Value;
        return body;
    }

    /// <summary>A body that runs as its own function (macro, caller): loops around it do not count.</summary>
    private List<Node> ParseDetachedBody(string openingTag, Token opening, string endTag)
    {
        int outerLoopDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseBodyUntil(openingTag, opening, [endTag], out _);
        _loopDepth = outerLoopDepth;
        return body;
    }

    private Node ParseStatement(Token tag)
    {
        switch (tag.Value)
        {
            case "if": return ParseIf(tag);
            case "for": return ParseFor(tag);
            case "set": return ParseSet(tag);
            case "macro": return ParseMacro(tag);
            case "call": return ParseCallBlock(tag);
            case "filter": return ParseFilterBlock(tag);
            case "break" or "continue":
                if (_loopDepth == 0)
                    throw Error($"'{tag.Value}' outside of a loop", tag);
                Expect(TokenKind.BlockEnd);
                return tag.Value == "break" ? new BreakNode(tag.Line, tag.Column) : new ContinueNode(tag.Line, tag.Column);
            case "generation":
                // transformers' assistant-mask marker: renders its body unchanged.
                Expect(TokenKind.BlockEnd);
                var generated = ParseBodyUntil("generation", tag, ["endgeneration"], out _);
                Expect(TokenKind.BlockEnd);
                return new IfNode([new IfBranch(new LiteralExpr(true, tag.Line, tag.Column), generated)], null, tag.Line, tag.Column);
        }
        if (UnsupportedTags.Contains(tag.Value))
            throw Error($"Tag '{tag.Value}' is not supported in chat templates", tag);
        if (tag.Value.StartsWith("end", StringComparison.Ordinal) || tag.Value is "else" or "elif")
            throw Error($"Unexpected tag '{tag.Value}'", tag);
        throw Error($"Unknown tag '{tag.Value}'", tag);
    }

    private IfNode ParseIf(Token tag)
    {
        var branches = new List<IfBranch>();
        IReadOnlyList<Node>? elseBody = null;
        var condition = ParseExpression();
        Expect(TokenKind.BlockEnd);
        while (true)
        {
            var body = ParseBodyUntil("if", tag, ["elif", "else", "endif"], out string end);
            branches.Add(new IfBranch(condition, body));
            if (end == "elif")
            {
                condition = ParseExpression();
                Expect(TokenKind.BlockEnd);
                continue;
            }
            Expect(TokenKind.BlockEnd);
            if (end == "else")
            {
                elseBody = ParseBodyUntil("if", tag, ["endif"], out _);
                Expect(TokenKind.BlockEnd);
            }
            return new IfNode(branches, elseBody, tag.Line, tag.Column);
        }
    }

    private ForNode ParseFor(Token tag)
    {
        var target = ParseAssignTarget(allowAttribute: false);
        Expect(TokenKind.Name, "in");
        var iterable = ParseTuple(allowConditional: false);
        Expr? filter = null;
        if (SkipName("if"))
            filter = ParseExpression();
        if (Current.IsName("recursive"))
            throw Error("Recursive for loops are not supported", Current);
        Expect(TokenKind.BlockEnd);
        _loopDepth++;
        var body = ParseBodyUntil("for", tag, ["else", "endfor"], out string end);
        _loopDepth--;
        Expect(TokenKind.BlockEnd);
        IReadOnlyList<Node>? elseBody = null;
        if (end == "else")
        {
            elseBody = ParseBodyUntil("for", tag, ["endfor"], out _);
            Expect(TokenKind.BlockEnd);
        }
        return new ForNode(target, iterable, filter, body, elseBody, tag.Line, tag.Column);
    }

    private Node ParseSet(Token tag)
    {
        var target = ParseAssignTarget(allowAttribute: true);
        if (SkipOperator("="))
        {
            var value = ParseTuple(allowConditional: true);
            Expect(TokenKind.BlockEnd);
            return new SetNode(target, value, tag.Line, tag.Column);
        }
        var filters = new List<FilterExpr>();
        while (Current.IsOperator("|"))
        {
            _index++;
            filters.Add(ParseFilterCall(null));
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseBodyUntil("set", tag, ["endset"], out _);
        Expect(TokenKind.BlockEnd);
        return new SetBlockNode(target, body, filters, tag.Line, tag.Column);
    }

    private MacroNode ParseMacro(Token tag)
    {
        string name = Expect(TokenKind.Name).Value;
        var parameters = ParseParameterList();
        Expect(TokenKind.BlockEnd);
        var body = ParseDetachedBody("macro", tag, "endmacro");
        if (Current.Kind == TokenKind.Name)
            _index++; // {% endmacro name %}
        Expect(TokenKind.BlockEnd);
        return new MacroNode(name, parameters, body, tag.Line, tag.Column);
    }

    private List<MacroParameter> ParseParameterList()
    {
        var parameters = new List<MacroParameter>();
        Expect(TokenKind.Operator, "(");
        while (!SkipOperator(")"))
        {
            if (parameters.Count > 0)
                Expect(TokenKind.Operator, ",");
            if (SkipOperator(")"))
                break;
            var nameToken = Expect(TokenKind.Name);
            Expr? defaultValue = SkipOperator("=") ? ParseExpression() : null;
            if (defaultValue is null && parameters.Any(p => p.Default is not null))
                throw Error($"Parameter '{nameToken.Value}' without a default follows one with a default", nameToken);
            parameters.Add(new MacroParameter(nameToken.Value, defaultValue));
        }
        return parameters;
    }

    private CallBlockNode ParseCallBlock(Token tag)
    {
        var callerParameters = Current.IsOperator("(") ? ParseParameterList() : [];
        var callToken = Current;
        if (ParseExpression() is not CallExpr call)
            throw Error("Expected a macro call after 'call'", callToken);
        Expect(TokenKind.BlockEnd);
        var body = ParseDetachedBody("call", tag, "endcall");
        Expect(TokenKind.BlockEnd);
        return new CallBlockNode(call, callerParameters, body, tag.Line, tag.Column);
    }

    private FilterBlockNode ParseFilterBlock(Token tag)
    {
        var filters = new List<FilterExpr> { ParseFilterCall(null) };
        while (SkipOperator("|"))
            filters.Add(ParseFilterCall(null));
        Expect(TokenKind.BlockEnd);
        var body = ParseBodyUntil("filter", tag, ["endfilter"], out _);
        Expect(TokenKind.BlockEnd);
        return new FilterBlockNode(filters, body, tag.Line, tag.Column);
    }

    private Target ParseAssignTarget(bool allowAttribute)
    {
        var first = Current;
        var items = new List<Target>();
        bool isTuple = false;
        bool parenthesized = SkipOperator("(");
        while (true)
        {
            var nameToken = Expect(TokenKind.Name);
            if (allowAttribute && SkipOperator("."))
            {
                var attribute = Expect(TokenKind.Name);
                items.Add(new AttributeTarget(nameToken.Value, attribute.Value, nameToken.Line, nameToken.Column));
            }
            else
            {
                items.Add(new NameTarget(nameToken.Value, nameToken.Line, nameToken.Column));
            }
            if (!SkipOperator(","))
                break;
            isTuple = true;
            if (!(Current.Kind == TokenKind.Name && !Current.IsName("in")))
                break;
        }
        if (parenthesized)
            Expect(TokenKind.Operator, ")");
        return isTuple || parenthesized && items.Count > 1
            ? new TupleTarget(items, first.Line, first.Column)
            : items[0];
    }

    // ---- expressions ----

    /// <summary>An expression, or a bare tuple "a, b" where Jinja allows one (print statements, set, for).</summary>
    private Expr ParseTuple(bool allowConditional)
    {
        var first = Current;
        var item = allowConditional ? ParseExpression() : ParseOr();
        if (!Current.IsOperator(","))
            return item;
        var items = new List<Expr> { item };
        while (SkipOperator(","))
        {
            if (Current.Kind is TokenKind.BlockEnd or TokenKind.VariableEnd || Current.IsName("if"))
                break;
            items.Add(allowConditional ? ParseExpression() : ParseOr());
        }
        return new TupleExpr(items, first.Line, first.Column);
    }

    private Expr ParseExpression()
    {
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            var token = Next();
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseExpression() : null;
            expr = new ConditionalExpr(test, expr, otherwise, token.Line, token.Column);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var token = Next();
            left = new BinaryExpr("or", left, ParseAnd(), token.Line, token.Column);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var token = Next();
            left = new BinaryExpr("and", left, ParseNot(), token.Line, token.Column);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var token = Next();
            return new UnaryExpr("not", ParseNot(), token.Line, token.Column);
        }
        return ParseCompare();
    }

    private static readonly HashSet<string> CompareOperators = ["==", "!=", "<", ">", "<=", ">="];

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOperators.Contains(Current.Value))
            {
                string op = Next().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (Current.IsName("in"))
            {
                _index++;
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                _index += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, first.Line, first.Column);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParseConcat(), token.Line, token.Column);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var first = ParseMath2();
        if (!Current.IsOperator("~"))
            return first;
        var parts = new List<Expr> { first };
        while (SkipOperator("~"))
            parts.Add(ParseMath2());
        return new ConcatExpr(parts, first.Line, first.Column);
    }

    private Expr ParseMath2()
    {
        var left = ParsePower();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParsePower(), token.Line, token.Column);
        }
        return left;
    }

    private Expr ParsePower()
    {
        var left = ParseUnary(withFilters: true);
        while (Current.IsOperator("**"))
        {
            var token = Next();
            left = new BinaryExpr("**", left, ParseUnary(withFilters: true), token.Line, token.Column);
        }
        return left;
    }

    /// <summary>Unary minus binds tighter than filters and ** (Jinja: -2**2 == 4, -x|abs == abs(-x)).</summary>
    private Expr ParseUnary(bool withFilters)
    {
        var token = Current;
        Expr node;
        if (token.IsOperator("-") || token.IsOperator("+"))
        {
            _index++;
            node = new UnaryExpr(token.Value, ParseUnary(withFilters: false), token.Line, token.Column);
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        return withFilters ? ParseFilterAndTests(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Line, token.Column),
                    "false" or "False" => new LiteralExpr(false, token.Line, token.Column),
                    "none" or "None" => new LiteralExpr(null, token.Line, token.Column),
                    _ => new NameExpr(token.Value, token.Line, token.Column),
                };
            case TokenKind.String:
                // Adjacent string literals concatenate, as in Python.
                string text = (string)token.Literal!;
                while (Current.Kind == TokenKind.String)
                    text += (string)Next().Literal!;
                return new LiteralExpr(text, token.Line, token.Column);
            case TokenKind.Integer:
            case TokenKind.Float:
                return new LiteralExpr(token.Literal, token.Line, token.Column);
            case TokenKind.Operator when token.Value == "(":
                if (SkipOperator(")"))
                    return new TupleExpr([], token.Line, token.Column);
                var inner = ParseExpression();
                if (Current.IsOperator(","))
                {
                    var items = new List<Expr> { inner };
                    while (SkipOperator(","))
                    {
                        if (Current.IsOperator(")"))
                            break;
                        items.Add(ParseExpression());
                    }
                    inner = new TupleExpr(items, token.Line, token.Column);
                }
                Expect(TokenKind.Operator, ")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                var listItems = new List<Expr>();
                while (!SkipOperator("]"))
                {
                    if (listItems.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (SkipOperator("]"))
                            break;
                    }
                    listItems.Add(ParseExpression());
                }
                return new ListExpr(listItems, token.Line, token.Column);
            case TokenKind.Operator when token.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!SkipOperator("}"))
                {
                    if (pairs.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (SkipOperator("}"))
                            break;
                    }
                    var key = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    pairs.Add((key, ParseExpression()));
                }
                return new DictExpr(pairs, token.Line, token.Column);
            default:
                throw Error($"Unexpected {token.Describe()}", token);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var token = Current;
            if (token.IsOperator("."))
            {
                _index++;
                var member = Next();
                node = member.Kind switch
                {
                    TokenKind.Name => new AttributeExpr(node, member.Value, token.Line, token.Column),
                    TokenKind.Integer => new ItemExpr(node, new LiteralExpr(member.Literal, member.Line, member.Column), token.Line, token.Column),
                    _ => throw Error($"Expected an attribute name after '.', got {member.Describe()}", member),
                };
            }
            else if (token.IsOperator("["))
            {
                _index++;
                node = ParseSubscript(node, token);
            }
            else if (token.IsOperator("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr node, Token open)
    {
        Expr? start = null, stop = null, step = null;
        bool isSlice = false;
        if (!Current.IsOperator(":"))
            start = ParseExpression();
        if (SkipOperator(":"))
        {
            isSlice = true;
            if (!Current.IsOperator(":") && !Current.IsOperator("]"))
                stop = ParseExpression();
            if (SkipOperator(":") && !Current.IsOperator("]"))
                step = ParseExpression();
        }
        Expect(TokenKind.Operator, "]");
        return isSlice
            ? new SliceExpr(node, start, stop, step, open.Line, open.Column)
            : new ItemExpr(node, start!, open.Line, open.Column);
    }

    private (List<Expr> Arguments, List<(string, Expr)> Keywords) ParseArguments()
    {
        Expect(TokenKind.Operator, "(");
        var arguments = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        while (!SkipOperator(")"))
        {
            if (arguments.Count + keywords.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
                if (SkipOperator(")"))
                    break;
            }
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                string name = Next().Value;
                _index++;
                keywords.Add((name, ParseExpression()));
            }
            else
            {
                if (keywords.Count > 0)
                    throw Error("Positional argument follows keyword argument", Current);
                if (Current.IsOperator("*") || Current.IsOperator("**"))
                    throw Error("Argument unpacking (*args, **kwargs) is not supported", Current);
                arguments.Add(ParseExpression());
            }
        }
        return (arguments, keywords);
    }

    private CallExpr ParseCall(Expr callee)
    {
        var token = Current;
        var (arguments, keywords) = ParseArguments();
        return new CallExpr(callee, arguments, keywords, token.Line, token.Column);
    }

    private Expr ParseFilterAndTests(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                _index++;
                node = ParseFilterCall(node);
            }
            else if (Current.IsName("is"))
            {
                _index++;
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private FilterExpr ParseFilterCall(Expr? input)
    {
        var nameToken = Expect(TokenKind.Name);
        string name = nameToken.Value;
        if (!Builtins.HasFilter(name))
            throw Error($"No filter named '{name}'", nameToken);
        var arguments = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        if (Current.IsOperator("("))
            (arguments, keywords) = ParseArguments();
        return new FilterExpr(input, name, arguments, keywords, nameToken.Line, nameToken.Column);
    }

    private TestExpr ParseTest(Expr input)
    {
        bool negated = SkipName("not");
        var nameToken = Expect(TokenKind.Name);
        string name = nameToken.Value;
        if (!Builtins.HasTest(name))
            throw Error($"No test named '{name}'", nameToken);
        var arguments = new List<Expr>();
        if (Current.IsOperator("("))
        {
            var (positional, keywords) = ParseArguments();
            if (keywords.Count > 0)
                throw Error($"Test '{name}' does not take keyword arguments", nameToken);
            arguments = positional;
        }
        else if (Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                     || Current.IsOperator("[") || Current.IsOperator("{"))
        {
            // "x is divisibleby 3", "x is sameas none": one argument without parentheses.
            if (!(Current.IsName("else") || Current.IsName("or") || Current.IsName("and") || Current.IsName("if")
                  || Current.IsName("is") || Current.IsName("in") || Current.IsName("not")))
                arguments.Add(ParsePostfix(ParsePrimary()));
        }
        return new TestExpr(input, name, arguments, negated, nameToken.Line, nameToken.Column);
    }
}
