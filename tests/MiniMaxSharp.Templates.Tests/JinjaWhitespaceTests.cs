namespace MiniMaxSharp.Templates.Tests;

/// <summary>
/// Whitespace handling with transformers' settings (trim_blocks, lstrip_blocks), "-" and "+" markers,
/// comments, raw blocks and the dropped trailing newline; expectations match Jinja2's output.
/// </summary>
public sealed class JinjaWhitespaceTests
{
    [Theory]
    [InlineData("{% if true %}\nyes\n{% endif %}\n", "yes\n")]
    [InlineData("  {% if true %}\n  x\n  {% endif %}\ndone", "  x\ndone")]
    [InlineData("a  {% if true %}b{% endif %}  c", "a  b  c")]
    [InlineData("line\n    {% for x in l %}\n    {{ x }}\n    {% endfor %}\nend", "line\n    3\n    1\n    2\nend")]
    [InlineData("a   {%- if true -%}   b   {%- endif -%}   c", "abc")]
    [InlineData("a\n\n  {{- 'x' -}}  \n\nb", "axb")]
    [InlineData("a {{ 'x' }} b", "a x b")]
    [InlineData("  {{ 'x' }}\n", "  x")]
    [InlineData("{% if true +%}\nkept newline{% endif %}", "\nkept newline")]
    [InlineData("  {%+ if true %}kept indent{% endif %}", "  kept indent")]
    [InlineData("{# comment #}\nnext", "next")]
    [InlineData("  {# indented comment #}\nnext", "next")]
    [InlineData("a{#- trimmed -#}  b", "ab")]
    [InlineData("x\n{%- if true %}\ny\n{%- endif %}\nz", "xyz")]
    [InlineData("text\n", "text")]
    [InlineData("text\n\n", "text\n")]
    [InlineData("\t{% set y = 1 %}\n{{ y }}", "1")]
    [InlineData("a\r\nb {% if true %}\r\nc{% endif %}", "a\nb c")]
    [InlineData("{% for m in l %}\n  {%- if m > 1 %}\n    [{{ m }}]\n  {%- endif %}\n{% endfor %}", "    [3]    [2]")]
    [InlineData("{% raw %}\n  {{ x }}\n{% endraw %}\nafter", "\n  {{ x }}\nafter")]
    [InlineData("{%- raw -%}   {{ x }}   {%- endraw -%}   after", "{{ x }}after")]
    [InlineData("{% macro m() %}\n  body\n{% endmacro %}\n[{{ m() }}]", "[  body\n]")]
    [InlineData("{{ 'a' }}\n{{ 'b' }}\n", "a\nb")]
    [InlineData("{% set x %}\n  inner\n{% endset %}\n[{{ x }}]", "[  inner\n]")]
    public void AppliesJinjaWhitespaceRules(string template, string expected) =>
        Assert.Equal(expected, JinjaTestSupport.Render(template));
}
