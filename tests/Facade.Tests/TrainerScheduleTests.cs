using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>The trainer's step cap, optional training-set evaluation, shape check and per-step schedules from C#.</summary>
    public class TrainerScheduleTests
    {
        static (Dataset Train, Dataset Test) Data() => Datasets.SyntheticClassification(3, 500, new[] { 6 }, 3).SplitAt(100);

        static Model NewModel() => Models.Mlp(new[] { 6, 8, 3 }, Activation.Tanh, Initialization.Reference(seed: 2));

        [Test]
        public void MaxStepsPerEpochAndEvaluateTrainingSet()
        {
            var (train, test) = Data();
            var model = NewModel();
            var optimizer = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1 });
            var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 2, BatchSize = 20, MaxStepsPerEpoch = 3, EvaluateTrainingSet = false });
            var history = trainer.Train(train, test: test);
            Assert.That(history.Select(m => m.Steps), Is.EqualTo(new[] { 3, 3 }));
            Assert.That(optimizer.StepCount, Is.EqualTo(6));
            Assert.That(history.Select(m => m.TrainAccuracy), Has.All.NaN);
            Assert.That(history.Select(m => m.Test!.Accuracy), Has.All.InRange(0.0, 1.0));
            Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(model, optimizer, new TrainerOptions { MaxStepsPerEpoch = 0 }));
        }

        [Test]
        public void AWrongInputShapeIsRefusedBeforeAnyStepInCSharpNotation()
        {
            var data = Datasets.SyntheticClassification(3, 100, new[] { 1, 4, 4 }, 3);
            var model = NewModel();
            var optimizer = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1 });
            var e = Assert.Throws<ArgumentException>(() => new Trainer(model, optimizer).Train(data))!;
            Assert.That(e.Message, Does.Contain("[6]").And.Contain("[1, 4, 4]").And.Contain("training set"));
            Assert.That(optimizer.StepCount, Is.EqualTo(0));
        }

        [Test]
        public void SchedulesGiveTheirAnalyticFactorsAndDriveTheTrainersRates()
        {
            var warm = LearningRateSchedule.LinearWarmup(4, startFactor: 0.2);
            var cos = LearningRateSchedule.Cosine(10, minFactor: 0.1);
            Assert.That(Enumerable.Range(0, 6).Select(warm.Factor), Is.EqualTo(new[] { 0.2, 0.4, 0.6, 0.8, 1.0, 1.0 }).Within(1e-15));
            Assert.That(cos.Factor(5), Is.EqualTo(0.55).Within(1e-15));
            Assert.That(cos.Factor(30), Is.EqualTo(0.1).Within(1e-15));
            Assert.That(warm.Times(cos).Factor(2), Is.EqualTo(0.6 * (0.1 + 0.45 * (1 + Math.Cos(Math.PI / 5)))).Within(1e-15));
            Assert.That(warm.Then(4, cos).Factor(9), Is.EqualTo(0.55).Within(1e-15));
            Assert.That(LearningRateSchedule.Constant.Factor(100), Is.EqualTo(1.0));
            Assert.Throws<ArgumentException>(() => LearningRateSchedule.Cosine(0));
            Assert.Throws<ArgumentException>(() => LearningRateSchedule.LinearWarmup(3, startFactor: 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => warm.Factor(-1));

            var (train, _) = Data();
            var model = NewModel();
            var optimizer = Optimizer.Create(model, new SgdOptions { LearningRate = 0.5 });
            var schedule = LearningRateSchedule.LinearWarmup(3).Then(3, LearningRateSchedule.Cosine(5));
            var rates = new List<double>();
            var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 2, BatchSize = 100, MaxStepsPerEpoch = 4, Schedule = schedule });
            trainer.Train(train, progress: new InlineProgress(p =>
            {
                if (p.Kind == TrainingProgressKind.StepCompleted) rates.Add(optimizer.ParamGroups[0].LearningRate);
            }));
            Assert.That(rates, Is.EqualTo(Enumerable.Range(0, 8).Select(t => 0.5 * schedule.Factor(t))).Within(1e-15));

            // by hand: ApplyTo sets the rates of the next step
            var sgd = Optimizer.Create(NewModel(), new SgdOptions { LearningRate = 0.5 });
            cos.ApplyTo(sgd);
            Assert.That(sgd.ParamGroups[0].LearningRate, Is.EqualTo(0.5));
        }

        sealed class InlineProgress : IProgress<TrainingProgress>
        {
            readonly Action<TrainingProgress> action;
            public InlineProgress(Action<TrainingProgress> action) { this.action = action; }
            public void Report(TrainingProgress p) => action(p);
        }
    }
}
