using MiniMaxSharp.Model;
using MiniMaxSharp.Tests;

namespace MiniMaxSharp.Serving.Tests;

/// <summary>What the scheduler relies on: a sequence's logits in a mixed packed batch (decode tokens of many
/// sequences next to prefill chunks of others) are those of the sequence run alone.</summary>
[Collection(ServingCollection.Name)]
public class PackedBatchTests(ServingTestModel fixture)
{
    [Fact]
    public void SequenceLogitsInAMixedBatchOf32EqualItsLogitsAlone()
    {
        using var text = fixture.Load();
        var model = text.Model;
        int vocab = model.Config.VocabSize;
        var prompts = Enumerable.Range(0, 32).Select(i => TestModels.RandomIds(5 + i % 7, vocab, seed: i)).ToArray();
        var next = Enumerable.Range(0, 32).Select(i => new[] { 10 + i }).ToArray();

        // Alone: prompt, then one decode token; keep the decode step's logits.
        var alone = new float[32][];
        for (int i = 0; i < 32; i++)
        {
            using var seq = model.CreateSequence(64);
            model.Forward([seq], [prompts[i]], LogitsSelection.LastPerSequence);
            alone[i] = model.Forward([seq], [next[i]], LogitsSelection.LastPerSequence);
        }

        // Batched: the first 16 prefill together; then the first 16 decode while the other 16 prefill, in one step.
        var states = Enumerable.Range(0, 32).Select(_ => model.CreateSequence(64)).ToArray();
        try
        {
            model.Forward(states[..16], prompts[..16].Select(p => (ReadOnlyMemory<int>)p).ToArray(), LogitsSelection.LastPerSequence);
            var inputs = Enumerable.Range(0, 32).Select(i => (ReadOnlyMemory<int>)(i < 16 ? next[i] : prompts[i])).ToArray();
            float[] mixed = model.Forward(states, inputs, LogitsSelection.LastPerSequence);
            float[] decodes = model.Forward(states[16..], next[16..].Select(n => (ReadOnlyMemory<int>)n).ToArray(), LogitsSelection.LastPerSequence);
            double worst = 0;
            for (int i = 0; i < 32; i++)
            {
                var batched = i < 16 ? mixed.AsSpan(i * vocab, vocab) : decodes.AsSpan((i - 16) * vocab, vocab);
                worst = Math.Max(worst, TestModels.RelativeError(batched, alone[i]));
                Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(alone[i]), System.Numerics.Tensors.TensorPrimitives.IndexOfMax(batched));
            }
            Assert.True(worst <= 1e-5, $"relative error {worst:E3}");
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
    }
}
