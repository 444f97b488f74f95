using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>K-FAC, K-BFGS and K-BFGS(L): the layer-wise optimizers, stepped on a batch.</summary>
    public class LayerwiseTests
    {
        static IEnumerable<TestCaseData> Methods()
        {
            yield return new TestCaseData("kfac").SetName("KfacLowersTheLoss");
            yield return new TestCaseData("kbfgs").SetName("KbfgsLowersTheLoss");
            yield return new TestCaseData("kbfgs-l").SetName("KbfgsLLowersTheLoss");
        }

        static OptimizerOptions Options(string which) => which switch
        {
            "kfac" => new KfacOptions { LearningRate = 0.05, Damping = 0.1, InverseInterval = 5, InverseWarmup = 3 },
            "kbfgs" => new KbfgsOptions { LearningRate = 0.1 },
            _ => new KbfgsOptions { LearningRate = 0.1, Limited = true, Memory = 5 },
        };

        [TestCaseSource(nameof(Methods))]
        public void LayerwiseMethodsLowerTheLoss(string which)
        {
            var model = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(200));
            var opt = Optimizer.Create(model, Options(which));
            Assert.That(opt.Name, Is.EqualTo(which));
            Assert.That(opt.NeedsModel, Is.True);
            var first = opt.Step(batch.Inputs, o => Loss.CrossEntropy(o, batch.Labels!));
            for (int i = 0; i < 19; i++) opt.Step(batch.Inputs, o => Loss.CrossEntropy(o, batch.Labels!));
            var final = Fixtures.LossOn(model, batch)().ToScalar();
            Assert.That(final, Is.LessThan(0.9 * first), $"{which}: {first} → {final}");
            Assert.That(opt.StepCount, Is.EqualTo(20));
            var e = Assert.Throws<InvalidOperationException>(() => opt.Step(Fixtures.LossOn(model, batch)))!;
            Assert.That(e.Message, Does.Contain("Step(input, lossOfOutput)"));
        }

        [Test]
        public void KfacTrainsThroughTheTrainerAndWarnsAboutLargeLayers()
        {
            var model = Fixtures.Mlp();
            var data = Fixtures.Task(400);
            // the first layer's A factor is 21 × 21: above the limit, it falls back to SGD with momentum
            var opt = Optimizer.Create(model, new KfacOptions { LearningRate = 0.05, MaxFactorSize = 20, Fisher = KfacFisher.SampledCategorical });
            var warnings = new List<string>();
            opt.Warning += (sender, message) => { Assert.That(sender, Is.SameAs(opt)); warnings.Add(message); };
            var before = model.Evaluate(data).Loss;
            new Trainer(model, opt, new TrainerOptions { Epochs = 2, BatchSize = 50 }).Train(data);
            Assert.That(model.Evaluate(data).Loss, Is.LessThan(before));
            Assert.That(warnings, Has.Some.Contains("MaxFactorSize"));
        }

        [Test]
        public void KfacStateGivesTheSameNextSteps()
        {
            var batch = Fixtures.All(Fixtures.Task(100));
            var model = Fixtures.Mlp();
            var opt = Optimizer.Create(model, Options("kfac"));
            Func<Tensor, Tensor> loss = o => Loss.CrossEntropy(o, batch.Labels!);
            for (int i = 0; i < 4; i++) opt.Step(batch.Inputs, loss);
            var path = Path.Combine(Path.GetTempPath(), $"facade-kfac-{Guid.NewGuid():N}.bin");
            try
            {
                opt.SaveState(path);
                var snapshot = model.Parameters.Snapshot();
                for (int i = 0; i < 3; i++) opt.Step(batch.Inputs, loss);
                var fresh = Fixtures.Mlp(seed: 9);
                fresh.Parameters.Assign(snapshot);
                var reloaded = Optimizer.Create(fresh, Options("kfac"));
                reloaded.LoadState(path);
                for (int i = 0; i < 3; i++) reloaded.Step(batch.Inputs, loss);
                Assert.That(Fixtures.Flat(fresh.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
            }
            finally
            {
                File.Delete(path);
            }
        }

        [Test]
        public void LayerwiseOptionsAreValidated()
        {
            var model = Fixtures.Mlp();
            void Rejects(OptimizerOptions o, string param) =>
                Assert.That(Assert.Catch<ArgumentException>(() => Optimizer.Create(model, o))!.ParamName, Is.EqualTo(param));
            Rejects(new KfacOptions { Damping = 0 }, "Damping");
            Rejects(new KfacOptions { KlClip = -1 }, "KlClip");
            Rejects(new KfacOptions { InverseInterval = 0 }, "InverseInterval");
            Rejects(new KbfgsOptions { Mu1 = 1.0 }, "Mu1");
            Rejects(new KbfgsOptions { Lambda = 1.5 }, "Lambda");
            Rejects(new KbfgsOptions { Limited = true, Memory = 0 }, "Memory");
            var cnn = KbfgsOptions.Cnn();
            Assert.That((cnn.SecondStage, cnn.AStatistic, cnn.Name), Is.EqualTo((KbfgsSecondStage.LevenbergMarquardt, KbfgsAStatistic.MiniBatch, "kbfgs")));
            Assert.That(new KfacOptions().WeightDecay, Is.EqualTo(1e-5));
            // layer-wise methods need the model
            var ps = ParameterSet.Create(("w", Tensor.Scalar(1.0)));
            Assert.Throws<ArgumentException>(() => Optimizer.Create(ps, new KfacOptions()));
            Assert.Throws<ArgumentException>(() => Optimizer.Create(model, new KbfgsOptions(), new[] { new ParamGroup("all", model.Parameters.Names, 0.1) }));
        }
    }
}
