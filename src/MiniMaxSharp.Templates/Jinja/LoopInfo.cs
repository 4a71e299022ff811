namespace MiniMaxSharp.Templates.Jinja;

/// <summary>The "loop" variable inside a for block.</summary>
internal sealed class LoopInfo : IPyObject
{
    private readonly IReadOnlyList<object?> _items;

    public LoopInfo(IReadOnlyList<object?> items) => _items = items;

    public int Index0 { get; set; }

    public bool TryGetAttribute(string name, out object? value)
    {
        int length = _items.Count;
        bool found = true;
        value = name switch
        {
            "index" => (long)Index0 + 1,
            "index0" => (long)Index0,
            "revindex" => (long)(length - Index0),
            "revindex0" => (long)(length - Index0 - 1),
            "first" => Index0 == 0,
            "last" => Index0 == length - 1,
            "length" => (long)length,
            "depth" => 1L,
            "depth0" => 0L,
            "previtem" => Index0 > 0 ? _items[Index0 - 1] : new Undefined("there is no previous item"),
            "nextitem" => Index0 < length - 1 ? _items[Index0 + 1] : new Undefined("there is no next item"),
            "cycle" => new PyCallable("loop.cycle", args =>
            {
                if (args.Positional.Count == 0)
                    throw new TemplateException("loop.cycle() needs at least one argument");
                return args.Positional[Index0 % args.Positional.Count];
            }),
            _ => found = false,
        };
        return found;
    }
}
