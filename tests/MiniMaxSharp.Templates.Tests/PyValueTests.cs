using System.Text.Json;
using MiniMaxSharp.Templates.Jinja;

namespace MiniMaxSharp.Templates.Tests;

/// <summary>The Python value model: float repr, str repr, dict keys, conversions from .NET and JSON, strftime.</summary>
public sealed class PyValueTests
{
    [Theory]
    [InlineData(5e-324, "5e-324")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(1e22, "1e+22")]
    [InlineData(123456789012345680000.0, "1.2345678901234568e+20")]
    [InlineData(0.000123, "0.000123")]
    [InlineData(1e16, "1e+16")]
    [InlineData(9999999999999998.0, "9999999999999998.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(100.0, "100.0")]
    [InlineData(-1.5e-10, "-1.5e-10")]
    [InlineData(2.5e-5, "2.5e-05")]
    [InlineData(12345.678, "12345.678")]
    [InlineData(double.NaN, "nan")]
    [InlineData(double.NegativeInfinity, "-inf")]
    public void FloatsPrintLikePythonRepr(double value, string expected) => Assert.Equal(expected, PyOps.FormatFloat(value));

    [Fact]
    public void StringReprEscapesLikePython()
    {
        var list = new List<object?> { "a\u2028b\x7f\xa0 é\t", "x'y", "x'y\"z", "\0😀\u200b" };
        Assert.Equal("['a\\u2028b\\x7f\\xa0 é\\t', \"x'y\", 'x\\'y\"z', '\\x00😀\\u200b']", PyOps.Repr(list));
    }

    [Fact]
    public void DictKeysFollowPythonEquality()
    {
        var dict = new PyDict();
        dict.Set(1L, "int");
        dict.Set(1.0, "float");
        dict.Set(true, "bool");
        dict.Set("1", "str");
        Assert.Equal(2, dict.Count);
        Assert.True(dict.TryGetValue(1.0, out var value));
        Assert.Equal("bool", value);
        Assert.Equal("{1: 'bool', '1': 'str'}", PyOps.Repr(dict));
        Assert.Throws<TemplateException>(() => dict.Set(new List<object?>(), 1L));
    }

    [Fact]
    public void JsonNumbersKeepPythonsIntFloatDistinction()
    {
        var element = JsonDocument.Parse("""{"i": 3, "f": 3.0, "e": 1e2, "s": "x", "n": null, "b": [true, -4]}""").RootElement;
        var value = (PyDict)PyConvert.FromClr(element)!;
        Assert.Equal("{'i': 3, 'f': 3.0, 'e': 100.0, 's': 'x', 'n': None, 'b': [True, -4]}", PyOps.Repr(value));

        var big = JsonDocument.Parse("""{"a": [12345678901234567890]}""").RootElement;
        var e = Assert.Throws<TemplateException>(() => PyConvert.FromClr(big, "tools"));
        Assert.Equal("tools['a'][0]: 12345678901234567890 does not fit in a 64-bit template integer", e.Message);
    }

    [Fact]
    public void JsonNodesBuiltInCodeConvert()
    {
        var node = new System.Text.Json.Nodes.JsonObject
        {
            ["n"] = 5,
            ["x"] = 0.25,
            ["s"] = "é",
            ["list"] = new System.Text.Json.Nodes.JsonArray(1, "two", null),
        };
        Assert.Equal("{'n': 5, 'x': 0.25, 's': 'é', 'list': [1, 'two', None]}", PyOps.Repr(PyConvert.FromClr(node)));
    }

    [Fact]
    public void ClrValuesConvert()
    {
        var value = PyConvert.FromClr(new Dictionary<string, object?>
        {
            ["byte"] = (byte)7,
            ["uint"] = 8u,
            ["float"] = 0.5f,
            ["decimal"] = 1.25m,
            ["char"] = 'c',
            ["array"] = new[] { 1, 2 },
        });
        Assert.Equal("{'byte': 7, 'uint': 8, 'float': 0.5, 'decimal': 1.25, 'char': 'c', 'array': [1, 2]}", PyOps.Repr(value));
        var e = Assert.Throws<TemplateException>(() => PyConvert.FromClr(new Dictionary<string, object?> { ["x"] = ulong.MaxValue }, "vars"));
        Assert.Equal("vars['x']: 18446744073709551615 does not fit in a 64-bit template integer", e.Message);
    }

    [Fact]
    public void StrftimeUsesTheCLocale()
    {
        Assert.Equal("Fri Friday Jul July 05 5  5 09 09 9 03 07 AM 24 2024 187 07 7 5 5 2024-07-05 09:03:07 07/05/24 %",
            Strftime.Format(new DateTime(2024, 7, 5, 9, 3, 7), "%a %A %b %B %d %-d %e %H %I %-I %M %S %p %y %Y %j %m %-m %w %u %F %T %D %%"));
        Assert.Equal("Sun 365 11 PM 23", Strftime.Format(new DateTime(2023, 12, 31, 23, 0, 0), "%a %j %I %p %-H"));
    }

    [Fact]
    public void GenerationBlockRendersItsBody()
    {
        Assert.Equal("a[b]c", JinjaTestSupport.Render("a{% generation %}[{{ 'b' }}]{% endgeneration %}c"));
    }

    [Fact]
    public void MembersOfUndefinedAreUndefined()
    {
        // Jinja raises here; the chat template engine is deliberately lenient (see docs/templates.md).
        Assert.Equal("[]|False|0|none",
            JinjaTestSupport.Render("[{{ nothing.attr.deeper }}]|{{ nothing.attr is defined }}|{{ nothing.a['b'] | length }}|{{ nothing.x or 'none' }}"));
    }
}
