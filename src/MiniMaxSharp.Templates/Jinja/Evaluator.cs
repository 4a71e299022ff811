using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Walks the syntax tree and writes the output of one render.</summary>
internal sealed class Evaluator
{
    private const int MaxCallDepth = 200;

    private readonly Dictionary<string, object?> _globals;
    private int _callDepth;

    public Evaluator(Dictionary<string, object?> globals) => _globals = globals;

    /// <summary>Variables visible at one point: loops and macros open a child scope, if-blocks do not.</summary>
    private sealed class Scope
    {
        private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

        public Scope(Scope? parent) => Parent = parent;

        public Scope? Parent { get; }

        public bool TryGet(string name, out object? value)
        {
            for (var scope = this; scope is not null; scope = scope.Parent)
            {
                if (scope._variables.TryGetValue(name, out value))
                    return true;
            }
            value = null;
            return false;
        }

        public void Set(string name, object? value) => _variables[name] = value;
    }

    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    public string Render(IReadOnlyList<Node> template, IReadOnlyDictionary<string, object?> variables)
    {
        var root = new Scope(null);
        foreach (var (name, value) in variables)
            root.Set(name, value);
        var output = new StringBuilder();
        ExecuteOutsideLoop(template, new Scope(root), output);
        return output.ToString();
    }

    /// <summary>Runs a body that is not a loop body; the parser rejects break/continue there.</summary>
    private void ExecuteOutsideLoop(IReadOnlyList<Node> body, Scope scope, StringBuilder output)
    {
        if (ExecuteBody(body, scope, output) != Flow.Normal)
            throw new InvalidOperationException("break/continue escaped a loop; the parser should have rejected it");
    }

    private Flow ExecuteBody(IReadOnlyList<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            var flow = Execute(node, scope, output);
            if (flow != Flow.Normal)
                return flow;
        }
        return Flow.Normal;
    }

    private Flow Execute(Node node, Scope scope, StringBuilder output)
    {
        try
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    return Flow.Normal;
                case OutputNode print:
                    output.Append(PyOps.ToStr(Evaluate(print.Value, scope)));
                    return Flow.Normal;
                case IfNode conditional:
                    foreach (var branch in conditional.Branches)
                    {
                        if (PyOps.IsTruthy(Evaluate(branch.Condition, scope)))
                            return ExecuteBody(branch.Body, scope, output);
                    }
                    return conditional.ElseBody is null ? Flow.Normal : ExecuteBody(conditional.ElseBody, scope, output);
                case ForNode loop:
                    ExecuteFor(loop, scope, output);
                    return Flow.Normal;
                case SetNode set:
                    Assign(set.Target, Evaluate(set.Value, scope), scope);
                    return Flow.Normal;
                case SetBlockNode setBlock:
                    object? captured = RenderToString(setBlock.Body, scope);
                    foreach (var filter in setBlock.Filters)
                        captured = ApplyFilter(filter, captured, scope);
                    Assign(setBlock.Target, captured, scope);
                    return Flow.Normal;
                case MacroNode macro:
                    scope.Set(macro.Name, MakeMacro(macro.Name, macro.Parameters, macro.Body, scope));
                    return Flow.Normal;
                case CallBlockNode callBlock:
                    var caller = MakeMacro("caller", callBlock.CallerParameters, callBlock.Body, scope);
                    output.Append(PyOps.ToStr(EvaluateCall(callBlock.Call, scope, caller)));
                    return Flow.Normal;
                case FilterBlockNode filterBlock:
                    object? filtered = RenderToString(filterBlock.Body, scope);
                    foreach (var filter in filterBlock.Filters)
                        filtered = ApplyFilter(filter, filtered, scope);
                    output.Append(PyOps.ToStr(filtered));
                    return Flow.Normal;
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
                default:
                    throw new InvalidOperationException($"Unhandled node {node.GetType().Name}");
            }
        }
        catch (TemplateException e) when (e.Line is null)
        {
            throw Locate(e, node);
        }
        catch (OverflowException e)
        {
            throw new TemplateException("integer overflow (values beyond 64 bits are not supported)", node.Line, node.Column, e);
        }
        catch (Exception e) when (e is not TemplateException)
        {
            // A defect in the interpreter still surfaces as a template error with a position, never a crash.
            throw new TemplateException($"internal error while rendering ({e.GetType().Name}: {e.Message})", node.Line, node.Column, e);
        }
    }

    private static TemplateException Locate(TemplateException e, Node node) => e.RaisedByTemplate
        ? TemplateException.Raised(e.Reason, node.Line, node.Column)
        : new TemplateException(e.Reason, node.Line, node.Column, e);

    private string RenderToString(IReadOnlyList<Node> body, Scope scope)
    {
        var sb = new StringBuilder();
        ExecuteOutsideLoop(body, scope, sb);
        return sb.ToString();
    }

    private void ExecuteFor(ForNode loop, Scope scope, StringBuilder output)
    {
        var iterable = Evaluate(loop.Iterable, scope);
        var filterScope = new Scope(scope);
        var items = new List<object?>();
        foreach (var item in PyOps.Iterate(iterable))
        {
            if (loop.Filter is not null)
            {
                Assign(loop.Target, item, filterScope);
                if (!PyOps.IsTruthy(Evaluate(loop.Filter, filterScope)))
                    continue;
            }
            items.Add(item);
        }
        if (items.Count == 0)
        {
            if (loop.ElseBody is not null)
                ExecuteOutsideLoop(loop.ElseBody, scope, output);
            return;
        }
        var info = new LoopInfo(items);
        for (int i = 0; i < items.Count; i++)
        {
            // Each iteration starts from the enclosing values: a set in one iteration is not seen by the next.
            var iterationScope = new Scope(scope);
            info.Index0 = i;
            iterationScope.Set("loop", info);
            Assign(loop.Target, items[i], iterationScope);
            if (ExecuteBody(loop.Body, iterationScope, output) == Flow.Break)
                break;
        }
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameTarget name:
                scope.Set(name.Name, value);
                break;
            case AttributeTarget attribute:
                if (!scope.TryGet(attribute.Object, out var obj) || obj is not PyNamespace ns)
                    throw new TemplateException($"Cannot assign attribute '{attribute.Attribute}' on '{attribute.Object}': only namespace() objects support attribute assignment",
                        attribute.Line, attribute.Column);
                ns.Attributes[attribute.Attribute] = value;
                break;
            case TupleTarget tuple:
                if (!PyOps.IsIterable(value) || value is Undefined)
                    throw new TemplateException($"cannot unpack non-iterable {PyOps.TypeName(value)} object", tuple.Line, tuple.Column);
                var values = PyOps.Iterate(value).ToList();
                if (values.Count != tuple.Items.Count)
                    throw new TemplateException($"cannot unpack {values.Count} values into {tuple.Items.Count} targets", tuple.Line, tuple.Column);
                for (int i = 0; i < values.Count; i++)
                    Assign(tuple.Items[i], values[i], scope);
                break;
        }
    }

    private PyCallable MakeMacro(string name, IReadOnlyList<MacroParameter> parameters, IReadOnlyList<Node> body, Scope definitionScope) =>
        new(name, args => InvokeMacro(name, parameters, body, definitionScope, args));

    private string InvokeMacro(string name, IReadOnlyList<MacroParameter> parameters, IReadOnlyList<Node> body, Scope definitionScope, CallArgs args)
    {
        if (args.Positional.Count > parameters.Count)
            throw new TemplateException($"macro '{name}' takes at most {parameters.Count} argument(s) ({args.Positional.Count} given)");
        var macroScope = new Scope(definitionScope);
        var named = new Dictionary<string, object?>(args.Named, StringComparer.Ordinal);
        if (named.Remove("caller", out var callerValue))
            macroScope.Set("caller", callerValue);
        for (int i = 0; i < parameters.Count; i++)
        {
            var parameter = parameters[i];
            object? value;
            if (i < args.Positional.Count)
            {
                if (named.ContainsKey(parameter.Name))
                    throw new TemplateException($"macro '{name}' got multiple values for argument '{parameter.Name}'");
                value = args.Positional[i];
            }
            else if (named.Remove(parameter.Name, out var keywordValue))
            {
                value = keywordValue;
            }
            else
            {
                value = parameter.Default is null
                    ? new Undefined($"parameter '{parameter.Name}' was not provided")
                    : Evaluate(parameter.Default, macroScope);
            }
            macroScope.Set(parameter.Name, value);
        }
        if (named.Count > 0)
            throw new TemplateException($"macro '{name}' takes no keyword argument '{named.Keys.First()}'");
        if (++_callDepth > MaxCallDepth)
        {
            _callDepth = 0;
            throw new TemplateException($"macro '{name}': maximum call depth {MaxCallDepth} exceeded");
        }
        try
        {
            return RenderToString(body, macroScope);
        }
        finally
        {
            _callDepth--;
        }
    }

    // ---- expressions ----

    private object? Evaluate(Expr expr, Scope scope)
    {
        try
        {
            return EvaluateUnlocated(expr, scope);
        }
        catch (TemplateException e) when (e.Line is null)
        {
            throw Locate(e, expr);
        }
    }

    private object? EvaluateUnlocated(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case LiteralExpr literal:
                return literal.Value;
            case NameExpr name:
                if (scope.TryGet(name.Name, out var value) || _globals.TryGetValue(name.Name, out value))
                    return value;
                return new Undefined($"'{name.Name}' is undefined");
            case ListExpr list:
                return list.Items.Select(item => Evaluate(item, scope)).ToList();
            case TupleExpr tuple:
                return new PyTuple(tuple.Items.Select(item => Evaluate(item, scope)).ToArray());
            case DictExpr dict:
                var result = new PyDict();
                foreach (var (key, item) in dict.Items)
                    result.Set(Evaluate(key, scope), Evaluate(item, scope));
                return result;
            case AttributeExpr attribute:
                return Access.GetAttribute(Evaluate(attribute.Object, scope), attribute.Attribute);
            case ItemExpr item:
                return Access.GetItem(Evaluate(item.Object, scope), Evaluate(item.Index, scope));
            case SliceExpr slice:
                return Access.Slice(Evaluate(slice.Object, scope), EvaluateOptional(slice.Start, scope),
                    EvaluateOptional(slice.Stop, scope), EvaluateOptional(slice.Step, scope));
            case CallExpr call:
                return EvaluateCall(call, scope, caller: null);
            case FilterExpr filter:
                return ApplyFilter(filter, filter.Input is null ? null : Evaluate(filter.Input, scope), scope);
            case TestExpr test:
                bool passed = Builtins.ApplyTest(test.Name, Evaluate(test.Input, scope),
                    test.Arguments.Select(argument => Evaluate(argument, scope)).ToList());
                return passed != test.Negated;
            case UnaryExpr unary:
                var operand = Evaluate(unary.Operand, scope);
                return unary.Operator switch
                {
                    "not" => !PyOps.IsTruthy(operand),
                    "-" => PyOps.Negate(operand),
                    _ => PyOps.Plus(operand),
                };
            case BinaryExpr binary:
                return EvaluateBinary(binary, scope);
            case CompareExpr compare:
                var left = Evaluate(compare.First, scope);
                foreach (var (op, operandExpr) in compare.Rest)
                {
                    var right = Evaluate(operandExpr, scope);
                    if (!Compare(op, left, right))
                        return false;
                    left = right;
                }
                return true;
            case ConcatExpr concat:
                return string.Concat(concat.Parts.Select(part => PyOps.ToStr(Evaluate(part, scope))));
            case ConditionalExpr conditional:
                if (PyOps.IsTruthy(Evaluate(conditional.Test, scope)))
                    return Evaluate(conditional.Then, scope);
                return conditional.Otherwise is null
                    ? new Undefined("the conditional expression has no else branch")
                    : Evaluate(conditional.Otherwise, scope);
            default:
                throw new InvalidOperationException($"Unhandled expression {expr.GetType().Name}");
        }
    }

    private object? EvaluateOptional(Expr? expr, Scope scope) => expr is null ? null : Evaluate(expr, scope);

    private object? EvaluateBinary(BinaryExpr binary, Scope scope)
    {
        var left = Evaluate(binary.Left, scope);
        switch (binary.Operator)
        {
            case "and":
                return PyOps.IsTruthy(left) ? Evaluate(binary.Right, scope) : left;
            case "or":
                return PyOps.IsTruthy(left) ? left : Evaluate(binary.Right, scope);
        }
        var right = Evaluate(binary.Right, scope);
        return binary.Operator switch
        {
            "+" => PyOps.Add(left, right),
            "-" => PyOps.Subtract(left, right),
            "*" => PyOps.Multiply(left, right),
            "/" => PyOps.Divide(left, right),
            "//" => PyOps.FloorDivide(left, right),
            "%" => PyOps.Modulo(left, right),
            "**" => PyOps.Power(left, right),
            _ => throw new InvalidOperationException($"Unknown operator {binary.Operator}"),
        };
    }

    private static bool Compare(string op, object? left, object? right) => op switch
    {
        "==" => PyOps.PyEquals(left, right),
        "!=" => !PyOps.PyEquals(left, right),
        "<" => PyOps.Compare(left, right) < 0,
        "<=" => PyOps.Compare(left, right) <= 0,
        ">" => PyOps.Compare(left, right) > 0,
        ">=" => PyOps.Compare(left, right) >= 0,
        "in" => PyOps.Contains(right, left),
        "not in" => !PyOps.Contains(right, left),
        _ => throw new InvalidOperationException($"Unknown comparison {op}"),
    };

    private object? EvaluateCall(CallExpr call, Scope scope, PyCallable? caller)
    {
        var callee = Evaluate(call.Callee, scope);
        var positional = call.Arguments.Select(argument => Evaluate(argument, scope)).ToList();
        var named = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, argument) in call.KeywordArguments)
            named[name] = Evaluate(argument, scope);
        if (caller is not null)
            named["caller"] = caller;
        return callee switch
        {
            PyCallable function => function.Invoke(new CallArgs(positional, named)),
            Undefined undefined => throw new TemplateException($"{undefined.Message}; it cannot be called"),
            _ => throw new TemplateException($"'{PyOps.TypeName(callee)}' object is not callable"),
        };
    }

    private object? ApplyFilter(FilterExpr filter, object? input, Scope scope)
    {
        var positional = filter.Arguments.Select(argument => Evaluate(argument, scope)).ToList();
        var named = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, argument) in filter.KeywordArguments)
            named[name] = Evaluate(argument, scope);
        try
        {
            return Builtins.ApplyFilter(filter.Name, input, new CallArgs(positional, named));
        }
        catch (TemplateException e) when (e.Line is null && !e.RaisedByTemplate)
        {
            throw new TemplateException($"filter '{filter.Name}': {e.Reason}", filter.Line, filter.Column, e);
        }
    }
}
