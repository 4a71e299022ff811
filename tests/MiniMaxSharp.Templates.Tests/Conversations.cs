using System.Text.Json;
using System.Text.Json.Nodes;

namespace MiniMaxSharp.Templates.Tests;

/// <summary>Conversations shared by the real-world template tests.</summary>
internal static class Conversations
{
    public static readonly DateTime FixedNow = new(2024, 7, 5, 9, 3, 7);

    public const string WeatherToolJson = """
        {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"},
         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
        """;

    /// <summary>The weather tool as a JsonElement (what a caller holding a parsed document passes).</summary>
    public static JsonElement WeatherToolElement() => JsonDocument.Parse(WeatherToolJson).RootElement.Clone();

    /// <summary>The weather tool as a JsonNode.</summary>
    public static JsonNode WeatherToolNode() => JsonNode.Parse(WeatherToolJson)!;

    public static IReadOnlyList<ChatMessage> Simple() =>
    [
        new("user", "Hi there"),
        new("assistant", "Hello! How can I help?"),
        new("user", "What is 2+2?"),
    ];

    public static IReadOnlyList<ChatMessage> WithSystem() =>
    [
        new("system", "You are a pirate."),
        new("user", "Hello"),
    ];

    /// <summary>Two parallel tool calls, two results, a final answer.</summary>
    public static IReadOnlyList<ChatMessage> ParallelToolCalls() =>
    [
        new("user", "What's the weather in Paris and Zürich?"),
        new("assistant", null)
        {
            ToolCalls =
            [
                new ToolCall("get_weather", JsonNode.Parse("""{"city": "Paris"}""")),
                new ToolCall("get_weather", new OrderedDictionary<string, object?> { ["city"] = "Zürich", ["unit"] = "celsius" }),
            ],
        },
        new("tool", "22°C, sunny") { Name = "get_weather" },
        new("tool", "18°C, cloudy") { Name = "get_weather" },
        new("assistant", "Paris: 22°C and sunny; Zürich: 18°C and cloudy."),
    ];
}
