using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>Summary.SuggestLearningRates as the README uses it, on the reference MLP.</summary>
    public class RateSuggestionTests
    {
        static (Model, Batch) ReferenceMlp()
        {
            var (train, _) = Datasets.SyntheticClassification(3, 60, new[] { 1, 28, 28 }, 10).SplitAt(50);
            var model = Models.Mlp(new[] { 1, 28, 28 }, new[] { 784, 1024, 200, 100, 10 }, Activation.Tanh, Initialization.Reference(seed: 0));
            return (model, train.Batches(50).First());
        }

        [Test]
        public void TheReadmeExampleRunsOnTheReferenceMlpAndWarnsAboutMomentum()
        {
            var (model, batch) = ReferenceMlp();
            Func<Tensor> loss = () => Loss.CrossEntropy(model.Forward(batch.Inputs), batch.Labels!);
            var summary = Summary.Compute(model, loss, Partition.PerLayer(model.Parameters));
            var raw = Summary.SuggestLearningRates(summary, keepNegative: true);
            var suggestion = Summary.SuggestLearningRates(summary);
            Assert.That(suggestion.Converged, Is.True);
            // the default clips each negative η to 0 and keeps the others exactly
            Assert.That(suggestion.Eta, Is.EqualTo(raw.Eta.Select(v => Math.Max(0.0, v)).ToArray()));
            Assert.That(suggestion.LearningRates.Values.All(v => v >= 0), Is.True);

            var warnings = new List<string>();
            var sgd = Optimizer.Create(model, new SgdOptions { Momentum = 0.9 }, suggestion.ToParamGroups());
            sgd.Warning += (_, w) => warnings.Add(w);
            Assert.That(sgd.LearningRates, Is.EquivalentTo(suggestion.LearningRates));
            sgd.Step(loss);
            sgd.Step(loss);
            Assert.That(warnings.Count, Is.EqualTo(1), string.Join("\n", warnings));
            Assert.That(warnings[0], Does.Contain("plain gradient"));

            // without momentum the rates are used as they were meant: no warning
            var plainWarnings = new List<string>();
            var plain = Optimizer.Create(model, new SgdOptions(), suggestion.ToParamGroups());
            plain.Warning += (_, w) => plainWarnings.Add(w);
            plain.Step(loss);
            Assert.That(plainWarnings, Is.Empty);
        }
    }
}
