using MiniMaxSharp.Templates.Jinja;

namespace MiniMaxSharp.Templates.Tests;

/// <summary>Syntax and runtime errors: clear messages that name the problem and where it is.</summary>
public sealed class JinjaErrorTests
{
    private static TemplateException ParseError(string template) =>
        Assert.Throws<TemplateException>(() => new JinjaTemplate(template));

    private static TemplateException RenderError(string template) =>
        Assert.Throws<TemplateException>(() => JinjaTestSupport.Render(template));

    [Fact]
    public void SyntaxErrorReportsLineAndColumn()
    {
        var e = ParseError("Hello\n{% if x %}\n{{ x + }}\n{% endif %}");
        Assert.Equal(3, e.Line);
        Assert.Equal(8, e.Column);
        Assert.Contains("Unexpected end of print statement", e.Message);
        Assert.Contains("line 3, column 8", e.Message);
    }

    [Fact]
    public void UnknownTagIsNamed()
    {
        var e = ParseError("ok\n  {% frobnicate x %}");
        Assert.Equal("Unknown tag 'frobnicate'", e.Reason);
        Assert.Equal((2, 6), (e.Line, e.Column));
    }

    [Fact]
    public void UnsupportedTagIsNamed()
    {
        var e = ParseError("{% include 'other.jinja' %}");
        Assert.Equal("Tag 'include' is not supported in chat templates", e.Reason);
    }

    [Fact]
    public void UnknownFilterIsNamedAtParseTime()
    {
        var e = ParseError("{% if false %}{{ x | shout }}{% endif %}");
        Assert.Equal("No filter named 'shout'", e.Reason);
        Assert.Equal((1, 22), (e.Line, e.Column));
    }

    [Fact]
    public void UnknownTestIsNamed()
    {
        var e = ParseError("{{ x is frob }}");
        Assert.Equal("No test named 'frob'", e.Reason);
    }

    [Fact]
    public void UnknownFilterInsideMapIsNamedAtRenderTime()
    {
        var e = RenderError("{{ l | map('shout') | list }}");
        Assert.Contains("No filter named 'shout'", e.Message);
    }

    [Fact]
    public void UnclosedBlockNamesTheOpeningTag()
    {
        var e = ParseError("{% for x in l %}\n{% if x %}{{ x }}\n{% endfor %}");
        Assert.Equal("Unexpected tag 'endfor'", e.Reason);
        Assert.Equal((3, 4), (e.Line, e.Column));

        var open = ParseError("text {% if x %}abc");
        Assert.Contains("'if' opened here was not closed", open.Reason);
        Assert.Equal((1, 9), (open.Line, open.Column));
    }

    [Fact]
    public void StrayEndTagIsReported()
    {
        Assert.Equal("Unexpected tag 'endif'", ParseError("a{% endif %}").Reason);
        Assert.Equal("Unexpected tag 'else'", ParseError("{% for x in l %}{% endfor %}{% else %}").Reason);
    }

    [Theory]
    [InlineData("{{ 'abc }}", "Unterminated string literal", 1, 4)]
    [InlineData("{# never closed", "Missing end of comment tag '#}'", 1, 1)]
    [InlineData("{{ x ", "Unexpected end of template: tag opened here was not closed with '}}'", 1, 1)]
    [InlineData("{{ (1 + 2] }}", "Unexpected ']': '(' opened at line 1, column 4 is not closed", 1, 10)]
    [InlineData("{{ x ? y }}", "Unexpected character '?'", 1, 6)]
    [InlineData("{% set = 1 %}", "Expected a name, got '='", 1, 8)]
    [InlineData("{% for x l %}{% endfor %}", "Expected 'in', got 'l'", 1, 10)]
    [InlineData("{% raw %}never ends", "Missing '{% endraw %}' for this raw block", 1, 1)]
    [InlineData("{{ 99999999999999999999 }}", "Integer literal 99999999999999999999 does not fit in 64 bits", 1, 4)]
    [InlineData("{% macro m(a=1, b) %}{% endmacro %}", "Parameter 'b' without a default follows one with a default", 1, 17)]
    [InlineData("a\n{% break %}", "'break' outside of a loop", 2, 4)]
    [InlineData("{% for x in l %}{% else %}{% continue %}{% endfor %}", "'continue' outside of a loop", 1, 30)]
    [InlineData("{% for x in l %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}", "'break' outside of a loop", 1, 35)]
    public void LexicalAndSyntaxErrors(string template, string reason, int line, int column)
    {
        var e = ParseError(template);
        Assert.Equal(reason, e.Reason);
        Assert.Equal((line, column), (e.Line, e.Column));
    }

    [Fact]
    public void RaiseExceptionCarriesTheTemplateMessageExactly()
    {
        const string template = "{% for m in l %}\n{% if m == 1 %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% endfor %}";
        var e = RenderError(template);
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.Message);
        Assert.Equal(2, e.Line);
    }

    [Theory]
    [InlineData("{{ nothing() }}", "'nothing' is undefined; it cannot be called")]
    [InlineData("{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'")]
    [InlineData("{{ missing + 1 }}", "'missing' is undefined")]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ 5 // 0 }}", "integer division or modulo by zero")]
    [InlineData("{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "integer overflow in '+' (values beyond 64 bits are not supported)")]
    [InlineData("{{ l | join(sep=',') }}", "filter 'join': join() got an unexpected keyword argument 'sep'")]
    [InlineData("{{ nothing | tojson }}", "filter 'tojson': tojson: cannot serialize an undefined value ('nothing' is undefined)")]
    [InlineData("{% set d.x = 1 %}", "Cannot assign attribute 'x' on 'd': only namespace() objects support attribute assignment")]
    [InlineData("{{ l.append(4) }}", "access to attribute 'append' of 'list' object is unsafe (templates cannot modify values); it cannot be called")]
    [InlineData("{% for a, b in l %}{% endfor %}", "cannot unpack non-iterable int object")]
    [InlineData("{% set a, b = [1, 2, 3] %}", "cannot unpack 3 values into 2 targets")]
    [InlineData("{{ n.strip() }}", "'None' has no attribute 'strip'; it cannot be called")]
    [InlineData("{% for x in 5 %}{% endfor %}", "'int' object is not iterable")]
    [InlineData("{{ range(10000000000) }}", "range() of 10000000000 items exceeds the limit of 10000000")]
    [InlineData("{{ strftime_now('%Q') }}", "strftime_now: unsupported format code '%Q'")]
    [InlineData("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "macro 'm' takes at most 1 argument(s) (2 given)")]
    [InlineData("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", "macro 'm' takes no keyword argument 'b'")]
    [InlineData("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}", "macro 'r': maximum call depth 200 exceeded")]
    public void RuntimeErrors(string template, string reason)
    {
        var e = RenderError(template);
        Assert.Equal(reason, e.Reason);
        Assert.NotNull(e.Line);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void RuntimeErrorPointsAtTheFailingExpression()
    {
        var e = RenderError("line one\n  {{ d.a ~ (1 + 'x') }}");
        Assert.Equal((2, 15), (e.Line, e.Column)); // the failing "+" operator
    }

    [Fact]
    public void SortingMixedTypesIsATypeErrorNotACrash()
    {
        var e = RenderError("{{ [1, 'a'] | sort }}");
        Assert.StartsWith("filter 'sort': '<' not supported between instances of ", e.Reason);
        Assert.Equal((1, 15), (e.Line, e.Column));
    }
}
