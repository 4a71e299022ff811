using System.Text.Json.Nodes;
using MiniMaxSharp.Templates.Jinja;

namespace MiniMaxSharp.Templates.Tests;

/// <summary>Renders template snippets against a fixed set of variables and a fixed clock.</summary>
internal static class JinjaTestSupport
{
    public static readonly DateTime FixedNow = new(2024, 7, 5, 9, 3, 7);

    /// <summary>
    /// d = {"a": 1, "b": [1, 2], "items": 5}, l = [3, 1, 2], n = None, s = "  Hello World  ", f = 2.5,
    /// users = [{name: ann, age: 30, admin: true}, {name: Bob, age: 25, admin: false}, {name: cy, age: 35}].
    /// They arrive as different .NET shapes on purpose (ordered dictionary, int array, JSON node).
    /// </summary>
    public static Dictionary<string, object?> StandardVariables() => new()
    {
        ["d"] = new OrderedDictionary<string, object?> { ["a"] = 1, ["b"] = new List<object?> { 1, 2 }, ["items"] = 5 },
        ["l"] = new[] { 3, 1, 2 },
        ["n"] = null,
        ["s"] = "  Hello World  ",
        ["f"] = 2.5,
        ["users"] = JsonNode.Parse("""
            [{"name": "ann", "age": 30, "admin": true}, {"name": "Bob", "age": 25, "admin": false}, {"name": "cy", "age": 35}]
            """),
    };

    public static string Render(string template) => new JinjaTemplate(template).Render(StandardVariables(), () => FixedNow);

    public static string Render(string template, Dictionary<string, object?> variables) =>
        new JinjaTemplate(template).Render(variables, () => FixedNow);
}
