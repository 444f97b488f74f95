using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>The README's C# snippet, on a small synthetic task instead of Fashion-MNIST.</summary>
    public class ReadmeSnippetTests
    {
        [Test]
        public async Task TheReadmeSnippetRuns()
        {
            var (train, test) = Datasets.SyntheticClassification(1, 700, new[] { 1, 28, 28 }, 10).SplitAt(200);
            var model = new Sequential(1, 28, 28)
                .Conv2d(6, 5).Tanh().MaxPool2d(2).Flatten().Linear(120).Tanh().Linear(10)
                .Build("small-cnn", Initialization.Reference(seed: 0));

            var options = GroupedNewtonOptions.Paper(CurvatureSource.Cycle(model, train));
            options.Damping = 0.3;
            options.CurvaturePeriod = 2;
            options.Warmup = 1;
            var optimizer = Optimizer.Create(model, options);

            var batch = train.Batches(100).First();
            double loss = optimizer.Step(() => Loss.CrossEntropy(model.Forward(batch.Inputs), batch.Labels!));
            IReadOnlyDictionary<string, double> rates = optimizer.LearningRates;
            Assert.That(double.IsFinite(loss), Is.True);
            Assert.That(rates.Keys, Is.EqualTo(model.Parameters.Names));

            var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 2 });
            using var cts = new CancellationTokenSource();
            var history = await trainer.TrainAsync(train, test: test, progress: new Progress<TrainingProgress>(p => { }), cancellationToken: cts.Token);
            Assert.That(history[1].TrainLoss, Is.LessThan(loss));

            var summary = Summary.Compute(model, () => Loss.CrossEntropy(model.Forward(batch.Inputs), batch.Labels!),
                                          Partition.PerLayer(model.Parameters));
            var suggestion = Summary.SuggestLearningRates(summary);
            Assert.That(summary.SubsetNames, Is.EqualTo(new[] { "0", "4", "6" }));
            Assert.That(summary.Hessian.GetLength(0), Is.EqualTo(3));
            Assert.That(suggestion.Converged, Is.True);
            Assert.That(suggestion.LearningRates.Keys, Is.EqualTo(new[] { "0", "4", "6" }));
            var sgd = Optimizer.Create(model, new SgdOptions { Momentum = 0.9 }, suggestion.ToParamGroups());
            Assert.That(sgd.LearningRates, Is.EquivalentTo(suggestion.LearningRates));
        }
    }
}
