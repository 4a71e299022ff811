namespace MiniMaxSharp.Templates.Jinja;

// Syntax tree of a parsed template. Every node remembers where it starts (1-based) for error messages.

internal abstract record Node(int Line, int Column);

// ---- statements ----

internal sealed record TextNode(string Text, int Line, int Column) : Node(Line, Column);

internal sealed record OutputNode(Expr Value, int Line, int Column) : Node(Line, Column);

internal sealed record IfBranch(Expr Condition, IReadOnlyList<Node> Body);

internal sealed record IfNode(IReadOnlyList<IfBranch> Branches, IReadOnlyList<Node>? ElseBody, int Line, int Column) : Node(Line, Column);

internal sealed record ForNode(Target Target, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? ElseBody, int Line, int Column)
    : Node(Line, Column);

internal sealed record SetNode(Target Target, Expr Value, int Line, int Column) : Node(Line, Column);

/// <summary>{% set name %}body{% endset %}, optionally piped through filters.</summary>
internal sealed record SetBlockNode(Target Target, IReadOnlyList<Node> Body, IReadOnlyList<FilterExpr> Filters, int Line, int Column) : Node(Line, Column);

internal sealed record MacroParameter(string Name, Expr? Default);

internal sealed record MacroNode(string Name, IReadOnlyList<MacroParameter> Parameters, IReadOnlyList<Node> Body, int Line, int Column) : Node(Line, Column);

/// <summary>{% call(params) macro(args) %}body{% endcall %}: the body becomes the macro's caller().</summary>
internal sealed record CallBlockNode(CallExpr Call, IReadOnlyList<MacroParameter> CallerParameters, IReadOnlyList<Node> Body, int Line, int Column)
    : Node(Line, Column);

/// <summary>{% filter name %}body{% endfilter %}; each filter's Input is null and receives the rendered body.</summary>
internal sealed record FilterBlockNode(IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Node> Body, int Line, int Column) : Node(Line, Column);

internal sealed record BreakNode(int Line, int Column) : Node(Line, Column);

internal sealed record ContinueNode(int Line, int Column) : Node(Line, Column);

// ---- assignment targets ----

internal abstract record Target(int Line, int Column);

internal sealed record NameTarget(string Name, int Line, int Column) : Target(Line, Column);

/// <summary>{% set ns.attr = ... %}: only namespace objects accept it.</summary>
internal sealed record AttributeTarget(string Object, string Attribute, int Line, int Column) : Target(Line, Column);

internal sealed record TupleTarget(IReadOnlyList<Target> Items, int Line, int Column) : Target(Line, Column);

// ---- expressions ----

internal abstract record Expr(int Line, int Column) : Node(Line, Column);

internal sealed record LiteralExpr(object? Value, int Line, int Column) : Expr(Line, Column);

internal sealed record NameExpr(string Name, int Line, int Column) : Expr(Line, Column);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record AttributeExpr(Expr Object, string Attribute, int Line, int Column) : Expr(Line, Column);

internal sealed record ItemExpr(Expr Object, Expr Index, int Line, int Column) : Expr(Line, Column);

internal sealed record SliceExpr(Expr Object, Expr? Start, Expr? Stop, Expr? Step, int Line, int Column) : Expr(Line, Column);

internal sealed record CallExpr(Expr Callee, IReadOnlyList<Expr> Arguments, IReadOnlyList<(string Name, Expr Value)> KeywordArguments, int Line, int Column)
    : Expr(Line, Column);

/// <summary>value|name(args); Input is null inside {% filter %} blocks and block sets.</summary>
internal sealed record FilterExpr(Expr? Input, string Name, IReadOnlyList<Expr> Arguments, IReadOnlyList<(string Name, Expr Value)> KeywordArguments, int Line, int Column)
    : Expr(Line, Column);

internal sealed record TestExpr(Expr Input, string Name, IReadOnlyList<Expr> Arguments, bool Negated, int Line, int Column) : Expr(Line, Column);

internal sealed record UnaryExpr(string Operator, Expr Operand, int Line, int Column) : Expr(Line, Column);

internal sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int Line, int Column) : Expr(Line, Column);

/// <summary>a &lt; b &lt;= c: each comparison uses the previous right operand, as in Python.</summary>
internal sealed record CompareExpr(Expr First, IReadOnlyList<(string Operator, Expr Operand)> Rest, int Line, int Column) : Expr(Line, Column);

internal sealed record ConcatExpr(IReadOnlyList<Expr> Parts, int Line, int Column) : Expr(Line, Column);

/// <summary>then if test else otherwise; without else the result is undefined when the test fails.</summary>
internal sealed record ConditionalExpr(Expr Test, Expr Then, Expr? Otherwise, int Line, int Column) : Expr(Line, Column);
