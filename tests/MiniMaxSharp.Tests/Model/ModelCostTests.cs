using MiniMaxSharp.Config;
using MiniMaxSharp.Model;

namespace MiniMaxSharp.Tests.Model;

public class ModelCostTests
{
    [Fact]
    public void BuiltInConfigsAreValid()
    {
        foreach (var (name, (_, config)) in BuiltInConfigs.All)
        {
            config.Validate();
            Assert.Equal(config.NumLayers, config.LayerKinds.Length);
            Assert.True(config.NumSoftmaxLayers > 0, name);
        }
    }

    [Fact]
    public void MiniMaxText01HasThePublishedParameterCounts()
    {
        var c = BuiltInConfigs.Get("minimax-text-01");
        // 456B total; 45.9B active per token without the embedding and lm_head (1.23B) that the published figure leaves out.
        Assert.InRange(ModelCost.TotalParams(c) / 1e9, 455.5, 456.5);
        double activeWithoutVocab = (ModelCost.ActiveParams(c) - (double)c.VocabSize * c.HiddenSize) / 1e9;
        Assert.InRange(activeWithoutVocab, 45.85, 46.0);
    }

    [Fact]
    public void ParameterCountEqualsTheTensorsOfARandomModel()
    {
        var c = TestModels.SmallConfig();
        long fromTensors = RandomWeights.Create(c, 1).Values.Sum(t => t.ElementCount);
        Assert.Equal(fromTensors, ModelCost.TotalParams(c));
    }
}
