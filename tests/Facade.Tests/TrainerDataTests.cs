using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    public class DataTests
    {
        [Test]
        public void SyntheticTasksSplitsAndBatches()
        {
            var data = Datasets.SyntheticClassification(1, 250, new[] { 2, 5 }, 3);
            Assert.That((data.Count, data.Classes, data.IsClassification), Is.EqualTo((250, 3, true)));
            Assert.That(data.SampleShape, Is.EqualTo(new[] { 2, 5 }));
            Assert.That(data.Labels(), Has.All.InRange(0, 2));
            Assert.That(Datasets.SyntheticClassification(1, 250, new[] { 2, 5 }, 3).Labels(), Is.EqualTo(data.Labels()));
            var (train, validation) = data.SplitAt(50);
            Assert.That((train.Count, validation.Count), Is.EqualTo((200, 50)));
            Assert.That(validation.Labels(), Is.EqualTo(data.Labels().Skip(200).ToArray()));
            var (a, b) = data.Split(0.2, seed: 3);
            Assert.That((a.Count, b.Count), Is.EqualTo((200, 50)));
            Assert.That(data.Take(10).Labels(), Is.EqualTo(data.Labels().Take(10).ToArray()));
            var batches = data.Batches(100, shuffle: true, seed: 4, epoch: 1).ToList();
            Assert.That(batches.Select(x => x.Size), Is.EqualTo(new[] { 100, 100, 50 }));
            Assert.That(batches[0].Inputs.Shape, Is.EqualTo(new[] { 100, 2, 5 }));
            Assert.That(batches[0].Labels!.DType, Is.EqualTo(DType.Int32));
            Assert.That(batches[0].Targets, Is.Null);
            Assert.That(batches.SelectMany(x => x.Labels!.ToIntArray()).OrderBy(x => x), Is.EqualTo(data.Labels().OrderBy(x => x)));
            var (mean, std) = data.ChannelStats();
            var normalized = data.Normalize(mean, std);
            var (m2, s2) = normalized.ChannelStats();
            Assert.That(m2, Has.All.EqualTo(0.0).Within(1e-5));
            Assert.That(s2, Has.All.EqualTo(1.0).Within(1e-4));
            Assert.That(data.ToString(), Does.Contain("250 samples"));

            var reg = Datasets.SyntheticRegression(2, 30, 4, 2, noise: 0.1);
            Assert.That((reg.IsClassification, reg.Classes), Is.EqualTo((false, 0)));
            var rb = reg.Batches(30, shuffle: false, dtype: DType.Float64).Single();
            Assert.That(rb.Targets!.Shape, Is.EqualTo(new[] { 30, 2 }));
            Assert.That(rb.Labels, Is.Null);
            Assert.Throws<InvalidOperationException>(() => reg.Labels());
            Assert.Throws<ArgumentOutOfRangeException>(() => data.Take(251));
            Assert.Throws<ArgumentOutOfRangeException>(() => data.Batches(0).ToList());
            Assert.Throws<ArgumentException>(() => data.Normalize(new[] { 0.0 }, new[] { 0.0 }));
            Assert.Throws<ArgumentException>(() => Datasets.SyntheticClassification(1, 10, new[] { 3 }, 0));
        }

        [Test]
        public async Task MissingOrUnknownDataSetsGiveClearErrors()
        {
            var dir = Path.Combine(Path.GetTempPath(), "facade-no-data-" + Guid.NewGuid().ToString("N"));
            var e = Assert.ThrowsAsync<FileNotFoundException>(() => Datasets.LoadMnistAsync(dir))!;
            Assert.That(e.Message, Does.Contain(dir));
            Assert.Throws<ArgumentException>(() => Datasets.LoadAsync("imagenet"));
            Assert.That(Datasets.Names, Is.EquivalentTo(new[] { "fashion-mnist", "mnist", "cifar10", "fashion-mnist-mini" }));
            Assert.Throws<ArgumentException>(() => Datasets.IsAvailable("imagenet"));
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            Assert.That(async () => await Datasets.LoadCifar10Async(dir, cts.Token), Throws.InstanceOf<OperationCanceledException>());
            await Task.CompletedTask;
        }

        [Test]
        public async Task FashionMnistLoadsWhenInstalled()
        {
            if (!Datasets.IsAvailable("fashion-mnist")) Assert.Ignore("Fashion-MNIST is not installed here");
            var (train, test) = await Datasets.LoadFashionMnistAsync();
            Assert.That((train.Count, test.Count, train.Classes), Is.EqualTo((60000, 10000, 10)));
            Assert.That(train.SampleShape, Is.EqualTo(new[] { 1, 28, 28 }));
            var pair = await Datasets.LoadAsync("fashion-mnist", "/usr/share/datasets/fashion-mnist");
            Assert.That(pair.Test.Labels().Take(20), Is.EqualTo(test.Labels().Take(20)));
        }
    }

    public class TrainerTests
    {
        [Test]
        public async Task TrainAsyncLowersTheLossAndReportsProgress()
        {
            var model = Fixtures.Mlp();
            var (train, validation) = Fixtures.Task(600).SplitAt(100);
            var opt = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1, Momentum = 0.9 });
            var reports = new List<TrainingProgress>();
            var progress = new SyncProgress<TrainingProgress>(reports.Add);
            var folder = Path.Combine(Path.GetTempPath(), "facade-ckpt-" + Guid.NewGuid().ToString("N"));
            try
            {
                var trainer = new Trainer(model, opt, new TrainerOptions { Epochs = 3, BatchSize = 50, CheckpointFolder = folder, MetricsPath = Path.Combine(folder, "m.jsonl") });
                var before = model.Evaluate(validation);
                var history = await trainer.TrainAsync(train, validation, progress: progress);
                Assert.That(history.Select(h => h.Epoch), Is.EqualTo(new[] { 1, 2, 3 }));
                Assert.That(history[^1].TrainLoss, Is.LessThan(history[0].TrainLoss));
                Assert.That(history[^1].Validation!.Loss, Is.LessThan(before.Loss));
                Assert.That(history[^1].Test, Is.Null);
                Assert.That(history[^1].Steps, Is.EqualTo(10));
                Assert.That(history[^1].TrainAccuracy, Is.InRange(0.0, 1.0));
                Assert.That(history[^1].LearningRates["all"], Is.EqualTo(0.1));
                Assert.That(history[^1].WallSeconds, Is.GreaterThan(0));
                // the model holds the trained parameters
                Assert.That(model.Evaluate(validation).Loss, Is.EqualTo(history[^1].Validation!.Loss).Within(1e-6));
                Assert.That(trainer.CompletedEpochs, Is.EqualTo(3));
                Assert.That(opt.StepCount, Is.EqualTo(30));
                Assert.That(reports.Count(r => r.Kind == TrainingProgressKind.StepCompleted), Is.EqualTo(30));
                Assert.That(reports.Count(r => r.Kind == TrainingProgressKind.EpochCompleted), Is.EqualTo(3));
                var ckpt = reports.Where(r => r.Kind == TrainingProgressKind.CheckpointWritten).ToList();
                Assert.That(ckpt.Count, Is.EqualTo(3));
                Assert.That(File.Exists(ckpt[^1].CheckpointPath), Is.True);
                Assert.That(File.ReadAllLines(Path.Combine(folder, "m.jsonl")).Length, Is.EqualTo(3));
                var epochReport = reports.Last(r => r.Kind == TrainingProgressKind.EpochCompleted);
                Assert.That(epochReport.Metrics!.TrainLoss, Is.EqualTo(history[^1].TrainLoss));
                Assert.That(reports.First().Step, Is.EqualTo(1));
                // another call continues with the following epochs
                var more = trainer.Train(train, test: validation);
                Assert.That(more.Select(h => h.Epoch), Is.EqualTo(new[] { 4, 5, 6 }));
                Assert.That(more[0].Test, Is.Not.Null);
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
            }
        }

        [Test]
        public void ResumingFromACheckpointRepeatsTheUninterruptedRun()
        {
            var data = Fixtures.Task(300);
            var folder = Path.Combine(Path.GetTempPath(), "facade-resume-" + Guid.NewGuid().ToString("N"));
            try
            {
                var model = Fixtures.Mlp();
                var opt = Optimizer.Create(model, new AdamOptions { LearningRate = 0.01 });
                var full = new Trainer(model, opt, new TrainerOptions { Epochs = 2, BatchSize = 50, CheckpointFolder = folder }).Train(data);
                var latest = Trainer.LatestCheckpoint(folder);
                Assert.That(Path.GetFileName(latest), Is.EqualTo("epoch-0002.ckpt"));

                var model2 = Fixtures.Mlp(seed: 7);
                var opt2 = Optimizer.Create(model2, new AdamOptions { LearningRate = 0.01 });
                var trainer2 = new Trainer(model2, opt2, new TrainerOptions { Epochs = 1, BatchSize = 50 });
                Assert.That(trainer2.LoadCheckpoint(Path.Combine(folder, "epoch-0001.ckpt")), Is.EqualTo(1));
                Assert.That(trainer2.CompletedEpochs, Is.EqualTo(1));
                var resumed = trainer2.Train(data);
                Assert.That(resumed.Single().Epoch, Is.EqualTo(2));
                Assert.That(resumed.Single().TrainLoss, Is.EqualTo(full[1].TrainLoss));
                Assert.That(Fixtures.Flat(model2.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));

                var path = Path.Combine(folder, "manual.ckpt");
                trainer2.SaveCheckpoint(path);
                var sgdModel = Fixtures.Mlp();
                var wrongKind = new Trainer(sgdModel, Optimizer.Create(sgdModel, new SgdOptions()));
                var before = Fixtures.Flat(sgdModel.Parameters);
                Assert.Throws<InvalidDataException>(() => wrongKind.LoadCheckpoint(path));
                Assert.That(Fixtures.Flat(sgdModel.Parameters), Is.EqualTo(before));
                Assert.Throws<FileNotFoundException>(() => wrongKind.LoadCheckpoint(path + ".none"));
                Assert.That(Trainer.LatestCheckpoint(Path.Combine(folder, "nothing-here")), Is.Null);
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
            }
        }

        [Test]
        public void AnAutoencoderTrainsOnReconstruction()
        {
            // inputs in [0, 1] so that they are valid binary cross-entropy targets
            var raw = Datasets.SyntheticClassification(3, 300, new[] { 16 }, 2);
            var (mean, std) = raw.ChannelStats();
            var data = raw.Normalize(new[] { mean[0] - 4 * std[0] }, new[] { 8 * std[0] });
            var model = new Sequential(16).Linear(8).Relu().Linear(4).Linear(8).Relu().Linear(16).Build("tiny-autoencoder");
            var opt = Optimizer.Create(model, new SofimOptions { LearningRate = 0.05, Direction = SofimDirection.Gradient, Scope = SofimScope.Tensor });
            var trainer = new Trainer(model, opt, new TrainerOptions { Epochs = 4, BatchSize = 30, Objective = Objective.Reconstruction });
            var before = model.Evaluate(data, Objective.Reconstruction);
            var history = trainer.Train(data);
            Assert.That(double.IsNaN(history[^1].TrainAccuracy), Is.True);
            Assert.That(model.Evaluate(data, Objective.Reconstruction).Loss, Is.LessThan(before.Loss));
            Assert.That(double.IsNaN(before.Accuracy), Is.True);
        }

        [Test]
        public void GroupedNewtonTrainsThroughTheTrainer()
        {
            var model = Fixtures.Mlp();
            var data = Fixtures.Task(600);
            var gn = Optimizer.Create(model, new GroupedNewtonOptions
            {
                Curvature = CurvatureSource.Cycle(model, data, batchSize: 100),
                Variant = GroupedNewtonVariant.UniformAverage, Cubic = true, Damping = 0.3, ClipNegativeRates = true,
                CurvaturePeriod = 3, AveragePeriod = 2, Warmup = 1,
            });
            var trainer = new Trainer(model, gn, new TrainerOptions { Epochs = 3, BatchSize = 50 });
            var before = model.Evaluate(data);
            var history = trainer.Train(data);
            Assert.That(model.Evaluate(data).Loss, Is.LessThan(before.Loss));
            Assert.That(history[^1].LearningRates.Keys, Is.EqualTo(model.Parameters.Names));
            // 12 curvature updates in 36 steps, the first one a warm-up that is not recorded
            Assert.That(gn.History.Count, Is.EqualTo(11));
        }

        [Test]
        public void ResumedGroupedNewtonFollowsTheUninterruptedRun()
        {
            // 12 steps an epoch, a curvature batch every 3rd: epoch 1 ends at batch 4 of the
            // source's 6, so a resumed run is right only if the checkpoint restored that position
            static (Model, Optimizer) Create(Dataset data, int seed)
            {
                var model = Fixtures.Mlp(seed: seed);
                var gn = Optimizer.Create(model, new GroupedNewtonOptions
                {
                    Curvature = CurvatureSource.Cycle(model, data, batchSize: 100),
                    Variant = GroupedNewtonVariant.UniformAverage, Damping = 0.3, CurvaturePeriod = 3, AveragePeriod = 2,
                });
                return (model, gn);
            }
            var data = Fixtures.Task(600);
            var folder = Path.Combine(Path.GetTempPath(), "facade-gn-resume-" + Guid.NewGuid().ToString("N"));
            try
            {
                var (model, gn) = Create(data, 0);
                var full = new Trainer(model, gn, new TrainerOptions { Epochs = 2, BatchSize = 50, CheckpointFolder = folder }).Train(data);

                var (model2, gn2) = Create(data, 7);
                var trainer2 = new Trainer(model2, gn2, new TrainerOptions { Epochs = 1, BatchSize = 50 });
                Assert.That(trainer2.LoadCheckpoint(Path.Combine(folder, "epoch-0001.ckpt")), Is.EqualTo(1));
                Assert.That(gn2.LearningRates.Values, Has.Some.Not.EqualTo(0.0));
                var resumed = trainer2.Train(data);
                Assert.That(resumed.Single().TrainLoss, Is.EqualTo(full[1].TrainLoss));
                Assert.That(Fixtures.Flat(model2.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
                Assert.That(gn2.LearningRates, Is.EqualTo(gn.LearningRates));
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
            }
        }

        [Test]
        public void ResumedAutoRunFollowsTheUninterruptedOneAndLearns()
        {
            // grouped-newton-auto carries scales, cosine sums, the previous direction and a
            // snapshot between steps: the checkpoint must restore all of them
            static (Model, Optimizer) Create(Dataset data, int seed)
            {
                var model = Fixtures.Mlp(seed: seed);
                var options = GroupedNewtonOptions.Auto(CurvatureSource.Cycle(model, data, batchSize: 100));
                options.CurvaturePeriod = 3;
                return (model, Optimizer.Create(model, options));
            }
            var data = Fixtures.Task(600);
            var folder = Path.Combine(Path.GetTempPath(), "facade-auto-resume-" + Guid.NewGuid().ToString("N"));
            try
            {
                var (model, gn) = Create(data, 0);
                var full = new Trainer(model, gn, new TrainerOptions { Epochs = 2, BatchSize = 50, CheckpointFolder = folder }).Train(data);
                Assert.That(full[1].TrainLoss, Is.LessThan(full[0].TrainLoss));

                var (model2, gn2) = Create(data, 7);
                var trainer2 = new Trainer(model2, gn2, new TrainerOptions { Epochs = 1, BatchSize = 50 });
                Assert.That(trainer2.LoadCheckpoint(Path.Combine(folder, "epoch-0001.ckpt")), Is.EqualTo(1));
                var resumed = trainer2.Train(data);
                Assert.That(resumed.Single().TrainLoss, Is.EqualTo(full[1].TrainLoss));
                Assert.That(Fixtures.Flat(model2.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
            }
        }

        [Test]
        public async Task CancellationStopsBetweenStepsAndLeavesAUsableModel()
        {
            var model = Fixtures.Mlp();
            var data = Fixtures.Task(500);
            var opt = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1 });
            var trainer = new Trainer(model, opt, new TrainerOptions { Epochs = 5, BatchSize = 50 });
            using var cts = new CancellationTokenSource();
            var seen = 0;
            var progress = new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Kind == TrainingProgressKind.StepCompleted && ++seen == 3) cts.Cancel();
            });
            var initial = model.Evaluate(data).Loss;
            Assert.That(async () => await trainer.TrainAsync(data, progress: progress, cancellationToken: cts.Token),
                        Throws.InstanceOf<OperationCanceledException>());
            Assert.That(opt.StepCount, Is.EqualTo(3));
            Assert.That(trainer.CompletedEpochs, Is.EqualTo(0));
            // the model holds the parameters of step 3: one more plain step from them matches a fresh run of 4 steps
            var replay = Fixtures.Mlp();
            var replayOpt = Optimizer.Create(replay, new SgdOptions { LearningRate = 0.1 });
            var firstEpoch = data.Batches(50, shuffle: true, seed: 0, epoch: 0).Take(3).ToList();
            foreach (var b in firstEpoch) replayOpt.Step(b.Inputs, o => Loss.CrossEntropy(o, b.Labels!));
            Assert.That(Fixtures.Flat(model.Parameters), Is.EqualTo(Fixtures.Flat(replay.Parameters)));
            var afterCancel = model.Evaluate(data).Loss;
            Assert.That(double.IsFinite(afterCancel), Is.True);
            // and training can go on
            var history = await trainer.TrainAsync(data);
            Assert.That(history.Count, Is.EqualTo(5));
            Assert.That(model.Evaluate(data).Loss, Is.LessThan(initial));
        }

        [Test]
        public void TrainerRejectsBadArguments()
        {
            var model = Fixtures.Mlp();
            var opt = Optimizer.Create(Fixtures.Mlp(), new SgdOptions());
            Assert.Throws<ArgumentException>(() => new Trainer(model, opt));
            var own = Optimizer.Create(model, new SgdOptions());
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(model, own, new TrainerOptions { BatchSize = 0 }))!.ParamName, Is.EqualTo("BatchSize"));
            Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { Epochs = -1 }.Validate());
            Assert.That(Assert.Throws<ArgumentNullException>(() => new Trainer(null!, own))!.ParamName, Is.EqualTo("model"));
            Assert.That(Assert.Throws<ArgumentNullException>(() => new Trainer(model, own).Train(null!))!.ParamName, Is.EqualTo("train"));
            // regression data under a classification objective: the core's complaint as an ArgumentException
            var reg = Datasets.SyntheticRegression(1, 40, 20, 4);
            var e = Assert.Throws<InvalidOperationException>(() => new Trainer(model, own).Train(reg))!;
            Assert.That(e.Message, Does.Contain("labels"));
            var regressed = new Trainer(model, own, new TrainerOptions { Objective = Objective.Regression }).Train(reg);
            Assert.That(double.IsNaN(regressed[0].TrainAccuracy), Is.True);
            Assert.That(model.Evaluate(reg, Objective.Regression).Loss, Is.GreaterThan(0));
        }

        /// <summary>An IProgress that reports synchronously on the training thread.</summary>
        sealed class SyncProgress<T> : IProgress<T>
        {
            readonly Action<T> action;
            public SyncProgress(Action<T> action) { this.action = action; }
            public void Report(T value) => action(value);
        }
    }
}
