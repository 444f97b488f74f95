using System;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>A user's own arrays as data sets, models saved and reloaded on their own, predictions.</summary>
    public class OwnDataTests
    {
        /// <summary>Three Gaussian blobs in 4-D, labelled by blob: separable, so a small MLP learns them.</summary>
        internal static (float[] Samples, int[] Labels) Blobs(int count, int seed)
        {
            var rng = new Random(seed);
            var samples = new float[count * 4];
            var labels = new int[count];
            for (int i = 0; i < count; i++)
            {
                int c = i % 3;
                labels[i] = c;
                for (int k = 0; k < 4; k++)
                    samples[i * 4 + k] = (float)((k == c ? 3.0 : 0.0) + 0.5 * (rng.NextDouble() - 0.5));
            }
            return (samples, labels);
        }

        [Test]
        public void FromArraysKeepsSamplesLabelsAndShape()
        {
            var samples = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();
            var data = Dataset.FromArrays(samples, new[] { 2, 3 }, new[] { 1, 0 }, 2);
            Assert.That(data.Count, Is.EqualTo(2));
            Assert.That(data.SampleShape, Is.EqualTo(new[] { 2, 3 }));
            Assert.That(data.Labels(), Is.EqualTo(new[] { 1, 0 }));
            var x = data.Inputs();
            Assert.That(x.Shape, Is.EqualTo(new[] { 2, 2, 3 }));
            Assert.That(x.ToFloatArray(), Is.EqualTo(samples));
            // the arrays are copied: changing them afterwards changes nothing
            samples[0] = 99;
            Assert.That(data.Inputs().ToFloatArray()[0], Is.EqualTo(0f));
            Assert.That(data.Inputs(DType.Float64).ToArray()[5], Is.EqualTo(5.0));
        }

        [Test]
        public void FromArraysOfDoublesAndRegressionTargets()
        {
            var xs = new[] { 0.5, 1.5, 2.5, 3.5 };
            var c = Dataset.FromArrays(xs, new[] { 2 }, new[] { 0, 1 }, 2);
            Assert.That(c.Inputs(DType.Float64).ToArray(), Is.EqualTo(xs));
            var r = Dataset.FromArrays(xs, new[] { 1 }, new[] { 1.0, 2.0, 3.0, 4.0 }, new[] { 1 });
            Assert.That(r.IsClassification, Is.False);
            Assert.That(r.Count, Is.EqualTo(4));
            Assert.That(r.Targets(), Is.EqualTo(new[] { 1f, 2f, 3f, 4f }));
            var rf = Dataset.FromArrays(new float[] { 1, 2, 3, 4 }, new[] { 2 }, new float[] { 7, 8, 9, 10 }, new[] { 2 });
            var batch = rf.Batches(2, shuffle: false).Single();
            Assert.That(batch.Targets!.Shape, Is.EqualTo(new[] { 2, 2 }));
            Assert.That(batch.Targets!.ToFloatArray(), Is.EqualTo(new float[] { 7, 8, 9, 10 }));
        }

        [Test]
        public void MismatchedLengthsNameBothNumbers()
        {
            var e = Assert.Throws<ArgumentException>(() => Dataset.FromArrays(new float[10], new[] { 4 }, new int[2], 3))!;
            Assert.That(e.Message, Does.Contain("10").And.Contain("[4]").And.Contain("4 values"));
            e = Assert.Throws<ArgumentException>(() => Dataset.FromArrays(new float[12], new[] { 4 }, new int[2], 3))!;
            Assert.That(e.Message, Does.Contain("3 samples").And.Contain("2 labels"));
            e = Assert.Throws<ArgumentException>(() => Dataset.FromArrays(new float[8], new[] { 4 }, new[] { 0, 3 }, 3))!;
            Assert.That(e.Message, Does.Contain("label 3").And.Contain("0 .. 2"));
            e = Assert.Throws<ArgumentException>(() => Dataset.FromArrays(new float[8], new[] { 4 }, new float[3], new[] { 2 }))!;
            Assert.That(e.Message, Does.Contain("need 4").And.Contain("got 3"));
            e = Assert.Throws<ArgumentException>(() => Dataset.FromArrays(new float[10], new[] { 2, 2, 2 }, new int[1], 2))!;
            Assert.That(e.Message, Does.Contain("[2, 2, 2]"), "C# messages write shapes as [a, b, c]");
            Assert.Throws<ArgumentNullException>(() => Dataset.FromArrays((float[])null!, new[] { 4 }, new int[0], 3));
        }

        [Test]
        public void TakeSplitNormalizeAndCurvatureWorkOnArrays()
        {
            var (xs, ys) = Blobs(30, 1);
            var data = Dataset.FromArrays(xs, new[] { 4 }, ys, 3);
            var (train, valid) = data.SplitAt(10);
            Assert.That(train.Count, Is.EqualTo(20));
            Assert.That(valid.Labels(), Is.EqualTo(ys.Skip(20).ToArray()));
            Assert.That(data.Take(5).Inputs().ToFloatArray(), Is.EqualTo(xs.Take(20).ToArray()));
            var (mean, std) = data.ChannelStats();
            var normal = data.Normalize(mean, std);
            var z = normal.Inputs(DType.Float64).ToArray();
            Assert.That(z.Average(), Is.EqualTo(0.0).Within(1e-6));
            Assert.That(Math.Sqrt(z.Select(v => v * v).Average()), Is.EqualTo(1.0).Within(1e-5));

            var model = Models.Mlp(new[] { 4, 8, 3 });
            var gn = Optimizer.Create(model, new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, train, batchSize: 10), CurvaturePeriod = 1 });
            var x = train.Inputs();
            var labels = Tensor.FromLabels(train.Labels());
            for (int i = 0; i < 3; i++) gn.Step(() => Loss.CrossEntropy(model.Forward(x), labels));
            // one curvature update per step, each on a batch cycled from the array data set
            Assert.That(gn.History.Count, Is.EqualTo(3));
            Assert.That(gn.History.SelectMany(h => h.Rates.Values).All(double.IsFinite));
        }

        [Test]
        public void TrainedModelSavedAndReloadedPredictsTheSame()
        {
            var (xs, ys) = Blobs(150, 2);
            var (train, test) = Dataset.FromArrays(xs, new[] { 4 }, ys, 3).SplitAt(30);
            var model = Models.Mlp(new[] { 4, 16, 3 });
            var optimizer = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1, Momentum = 0.9 });
            new Trainer(model, optimizer, new TrainerOptions { Epochs = 5, BatchSize = 20 }).Train(train);
            var predicted = model.Predict(test.Inputs());
            double accuracy = predicted.Zip(test.Labels()).Count(p => p.First == p.Second) / (double)test.Count;
            Assert.That(accuracy, Is.GreaterThanOrEqualTo(0.9));
            // Predict is the argmax of Forward
            var logits = model.Forward(test.Inputs()).ToArray();
            for (int i = 0; i < test.Count; i++)
            {
                var row = logits.Skip(3 * i).Take(3).ToArray();
                Assert.That(predicted[i], Is.EqualTo(Array.IndexOf(row, row.Max())));
            }

            var dir = Path.Combine(Path.GetTempPath(), "gn-owndata-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                var file = Path.Combine(dir, "model.gnts");
                model.SaveParameters(file);
                var fresh = Models.Mlp(new[] { 4, 16, 3 }, init: new Initialization { Seed = 5 });
                Assert.That(fresh.Predict(test.Inputs()), Is.Not.EqualTo(predicted).Or.Not.EqualTo(test.Labels()));
                fresh.LoadParameters(file);
                Assert.That(Fixtures.Flat(fresh.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
                Assert.That(fresh.Predict(test.Inputs()), Is.EqualTo(predicted));

                using var ms = new MemoryStream();
                model.SaveParameters(ms);
                ms.Position = 0;
                var other = Models.Mlp(new[] { 4, 16, 3 }, init: new Initialization { Seed = 7 });
                other.LoadParameters(ms);
                Assert.That(Fixtures.Flat(other.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
            }
            finally { Directory.Delete(dir, true); }
        }

        [Test]
        public void LoadingIntoAnotherArchitectureNamesTheParameterAndBothShapes()
        {
            var model = Models.Mlp(new[] { 4, 16, 3 });
            using var ms = new MemoryStream();
            model.SaveParameters(ms);
            var wider = Models.Mlp(new[] { 4, 12, 3 });
            var before = Fixtures.Flat(wider.Parameters);
            ms.Position = 0;
            var e = Assert.Throws<InvalidDataException>(() => wider.LoadParameters(ms))!;
            Assert.That(e.Message, Does.Contain("'1.weight'").And.Contain("[16, 4]").And.Contain("[12, 4]"));
            Assert.That(Fixtures.Flat(wider.Parameters), Is.EqualTo(before), "a refused load changes nothing");
            var deeper = Models.Mlp(new[] { 4, 16, 3, 3 });
            ms.Position = 0;
            e = Assert.Throws<InvalidDataException>(() => deeper.LoadParameters(ms))!;
            Assert.That(e.Message, Does.Contain("not in the file"));
            var corrupt = ms.ToArray();
            corrupt[corrupt.Length / 2] ^= 0xFF;
            Assert.Throws<InvalidDataException>(() => model.LoadParameters(new MemoryStream(corrupt)));
        }

        [Test]
        public void PredictProbabilitiesIsTheSoftmaxOfTheLogits()
        {
            var model = Fixtures.Mlp();
            var x = Fixtures.All(Fixtures.Task(count: 7)).Inputs;
            var p = model.PredictProbabilities(x);
            Assert.That(p.Shape, Is.EqualTo(new[] { 7, 4 }));
            var logits = model.Forward(x).ToArray();
            var probs = p.ToArray();
            for (int i = 0; i < 7; i++)
            {
                var row = logits.Skip(4 * i).Take(4).ToArray();
                double z = row.Sum(v => Math.Exp(v - row.Max()));
                for (int k = 0; k < 4; k++)
                    Assert.That(probs[4 * i + k], Is.EqualTo(Math.Exp(row[k] - row.Max()) / z).Within(1e-6));
            }
            Assert.Throws<ArgumentException>(() => model.Predict(Tensor.Zeros(DType.Float32, 3, 5)));
        }

        [Test]
        public void OptimizerStateThroughAStreamResumesBitForBit()
        {
            var data = Fixtures.Task(count: 100);
            var batch = Fixtures.All(data);
            Model Run(int steps, Action<Optimizer>? midway = null)
            {
                var model = Fixtures.Mlp();
                var opt = Optimizer.Create(model, new AdamOptions { LearningRate = 0.01 });
                for (int i = 0; i < steps; i++)
                {
                    opt.Step(Fixtures.LossOn(model, batch));
                    if (i == 2 && midway is not null) midway(opt);
                }
                return model;
            }
            var straight = Run(6);
            var resumed = Run(6, opt =>
            {
                // save the state, then replace the optimizer by a fresh one that reads it
                using var ms = new MemoryStream();
                opt.SaveState(ms);
                ms.Position = 0;
                var fresh = Optimizer.Create(opt.Parameters, new AdamOptions { LearningRate = 0.01 });
                fresh.LoadState(ms);
                Assert.That(fresh.StepCount, Is.EqualTo(opt.StepCount));
                // loading into the original optimizer gives the same state back
                ms.Position = 0;
                opt.LoadState(ms);
            });
            Assert.That(Fixtures.Flat(resumed.Parameters), Is.EqualTo(Fixtures.Flat(straight.Parameters)));
            var sgd = Optimizer.Create(Fixtures.Mlp(), new SgdOptions());
            using var adamState = new MemoryStream();
            Optimizer.Create(Fixtures.Mlp(), new AdamOptions()).SaveState(adamState);
            adamState.Position = 0;
            Assert.Throws<InvalidDataException>(() => sgd.LoadState(adamState));
        }

        [Test]
        public void GroupedNewtonLearningRatesShowTheRestoredRates()
        {
            var data = Fixtures.Task(count: 200);
            var model = Fixtures.Mlp();
            var gn = Optimizer.Create(model, new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, data, 50), CurvaturePeriod = 2 });
            var batch = Fixtures.All(data);
            for (int i = 0; i < 4; i++) gn.Step(Fixtures.LossOn(model, batch));
            var rates = gn.LearningRates;
            Assert.That(rates.Values.Any(r => r > 0), "the run has nonzero rates to restore");
            using var ms = new MemoryStream();
            gn.SaveState(ms);
            var model2 = Fixtures.Mlp();
            var fresh = Optimizer.Create(model2, new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model2, data, 50), CurvaturePeriod = 2 });
            Assert.That(fresh.LearningRates.Values, Is.All.EqualTo(0.0));
            ms.Position = 0;
            fresh.LoadState(ms);
            Assert.That(fresh.LearningRates, Is.EqualTo(rates));
        }

        [Test]
        public void FilesAreNotWrittenIntoMissingFolders()
        {
            var model = Fixtures.Mlp();
            var dir = Path.Combine(Path.GetTempPath(), "gn-nofolder-" + Guid.NewGuid().ToString("N"));
            var e = Assert.Throws<DirectoryNotFoundException>(() => model.SaveParameters(Path.Combine(dir, "sub", "m.gnts")))!;
            Assert.That(e.Message, Does.Contain("does not exist"));
            Assert.That(Directory.Exists(dir), Is.False, "no folder is created");
            Directory.CreateDirectory(dir);
            try
            {
                var file = Path.Combine(dir, "m.gnts");
                model.SaveParameters(file);
                e = Assert.Throws<DirectoryNotFoundException>(() => model.SaveParameters(Path.Combine(file, "x.gnts")))!;
                Assert.That(e.Message, Does.Contain($"'{file}' is a file, not a folder"));
                var bad = Assert.Throws<InvalidDataException>(() => model.LoadParameters(dir))!;
                Assert.That(bad.Message, Does.Contain("is a folder"));
                var opt = Optimizer.Create(model, new SgdOptions());
                Assert.Throws<FileNotFoundException>(() => opt.LoadState(Path.Combine(dir, "none.state")));
                Assert.Throws<DirectoryNotFoundException>(() => opt.SaveState(Path.Combine(dir, "a", "b.state")));
            }
            finally { Directory.Delete(dir, true); }
        }
    }
}
