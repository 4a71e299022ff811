using MiniMaxSharp.Generation;

namespace MiniMaxSharp.Tests.Generation;

/// <summary>OpenAI's frequency and presence penalties: logit -= count × frequency + (count > 0) × presence,
/// counting tokens this sampler generated (never the prompt).</summary>
public class SamplerPenaltyTests
{
    [Fact]
    public void FrequencyPenaltyGrowsWithEachRepeat()
    {
        // Token 0 leads by 1.0: after n picks its logit is 1 - 0.4 n, so it wins at n = 0, 1, 2 and loses at n = 3.
        var sampler = new Sampler(SamplingOptions.Greedy with { FrequencyPenalty = 0.4f });
        var picks = new List<int>();
        for (int i = 0; i < 4; i++)
        {
            float[] logits = [1f, 0f, -5f];
            picks.Add(sampler.Sample(logits, []));
        }
        Assert.Equal([0, 0, 0, 1], picks);
    }

    [Fact]
    public void PresencePenaltyIsAppliedOnceWhateverTheCount()
    {
        var sampler = new Sampler(SamplingOptions.Greedy with { PresencePenalty = 0.6f });
        float[] first = [1f, 0.5f, 0f];
        Assert.Equal(0, sampler.Sample(first, []));
        float[] second = [1f, 0.5f, 0f];
        Assert.Equal(1, sampler.Sample(second, []));     // 1 - 0.6 = 0.4 < 0.5
        Assert.Equal(0.4f, second[0], 6);
        Assert.Equal(0.5f, second[1], 6);
        float[] third = [1f, 0.5f, 0f];
        Assert.Equal(0, sampler.Sample(third, []));      // both penalised once: 0.4 vs -0.1
        Assert.Equal(0.4f, third[0], 6);
        Assert.Equal(-0.1f, third[1], 6);
    }

    [Fact]
    public void PromptTokensAreNotPenalised()
    {
        var sampler = new Sampler(SamplingOptions.Greedy with { FrequencyPenalty = 2f, PresencePenalty = 2f });
        float[] logits = [1f, 0f];
        Assert.Equal(0, sampler.Sample(logits, seen: [0, 0, 0]));
        Assert.Equal(1f, logits[0]);
    }

    [Fact]
    public void NegativePenaltyEncouragesRepeats()
    {
        var sampler = new Sampler(SamplingOptions.Greedy with { FrequencyPenalty = -1f });
        float[] a = [0f, 0.5f];
        Assert.Equal(1, sampler.Sample(a, []));
        float[] b = [2f, 0.5f];
        Assert.Equal(0, sampler.Sample(b, []));
        float[] c = [1.5f, 1.2f];
        Assert.Equal(0, sampler.Sample(c, []));          // both generated once: 2.5 vs 2.2
        Assert.Equal(2.5f, c[0], 6);
        Assert.Equal(2.2f, c[1], 6);
        float[] d = [1.5f, 1.7f];
        Assert.Equal(0, sampler.Sample(d, []));          // token 0 twice: 3.5 vs 2.7
        Assert.Equal(3.5f, d[0], 6);
    }

    [Theory]
    [InlineData(2.5f, 0f)]
    [InlineData(0f, -2.01f)]
    [InlineData(float.NaN, 0f)]
    public void OutOfRangePenaltiesAreRejected(float frequency, float presence)
    {
        var options = SamplingOptions.Greedy with { FrequencyPenalty = frequency, PresencePenalty = presence };
        Assert.Throws<ArgumentOutOfRangeException>(() => options.Validate());
    }
}
