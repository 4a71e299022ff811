namespace MiniMaxSharp.Tokenizers;

/// <summary>A tokenizer file or an input that cannot be handled; the message names the file, field or offset at fault.</summary>
public sealed class TokenizerException : Exception
{
    public TokenizerException(string message) : base(message) { }

    public TokenizerException(string message, Exception inner) : base(message, inner) { }
}
