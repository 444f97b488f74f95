using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    public class OptimizerOptionTests
    {
        static Model M() => Fixtures.Mlp();

        static void Rejects(OptimizerOptions options, string param)
        {
            var e = Assert.Catch<ArgumentException>(() => Optimizer.Create(M(), options),
                                                     $"{options.Name} should reject {param}")!;
            Assert.That(e.ParamName, Is.EqualTo(param));
        }

        [Test]
        public void DefaultsAreValidAndMatchTheCore()
        {
            var sgd = new SgdOptions();
            Assert.That((sgd.LearningRate, sgd.Momentum, sgd.Nesterov), Is.EqualTo((0.01, 0.0, false)));
            var adam = new AdamOptions();
            Assert.That((adam.LearningRate, adam.Beta1, adam.Beta2, adam.Epsilon), Is.EqualTo((1e-3, 0.9, 0.999, 1e-8)));
            var k = AdamOptions.KbfgsAuthors();
            Assert.That((k.Beta2, k.Epsilon, k.SecondMomentOfMomentum, k.Name), Is.EqualTo((0.9, 1e-4, true, "adam-kbfgs")));
            var sofim = new SofimOptions();
            Assert.That((sofim.LearningRate, sofim.Beta, sofim.Rho, sofim.Scope), Is.EqualTo((0.1, 0.9, 0.5, SofimScope.Model)));
            var gn = new GroupedNewtonOptions();
            Assert.That((gn.Variant, gn.Damping, gn.Cubic, gn.CurvaturePeriod), Is.EqualTo((GroupedNewtonVariant.NewtonSummary, 1.0, false, 1)));
            var model = M();
            var paper = GroupedNewtonOptions.Paper(CurvatureSource.Cycle(model, Fixtures.Task()));
            Assert.That((paper.Variant, paper.Damping, paper.Cubic, paper.CurvaturePeriod, paper.Warmup, paper.ClipNegativeRates),
                        Is.EqualTo((GroupedNewtonVariant.UniformAverage, 0.03, true, 10, 3, true)));
            foreach (var o in new OptimizerOptions[] { sgd, adam, k, sofim, paper }) o.Validate();
        }

        [Test]
        public void InvalidOptionsAreRejectedAtConstructionNamingTheValue()
        {
            Rejects(new SgdOptions { LearningRate = -0.1 }, "LearningRate");
            Rejects(new SgdOptions { Momentum = double.NaN }, "Momentum");
            Rejects(new SgdOptions { Nesterov = true }, "Nesterov");
            Rejects(new AdamOptions { Beta1 = 1.0 }, "Beta1");
            Rejects(new AdamOptions { Epsilon = 0.0 }, "Epsilon");
            Rejects(new SofimOptions { Rho = 0.0 }, "Rho");
            Rejects(new SofimOptions { Beta = 1.5 }, "Beta");
            Rejects(new GroupedNewtonOptions(), "Curvature");
            var model = M();
            var curvature = CurvatureSource.Cycle(model, Fixtures.Task());
            Rejects(new GroupedNewtonOptions { Curvature = curvature, CurvaturePeriod = 0 }, "CurvaturePeriod");
            Rejects(new GroupedNewtonOptions { Curvature = curvature, Damping = -1 }, "Damping");
            Rejects(new GroupedNewtonOptions { Curvature = curvature, Momentum = 1.0 }, "Momentum");
            var auto = GroupedNewtonOptions.Auto(curvature);
            Assert.That((auto.Variant, auto.Damping, auto.Cubic, auto.CurvaturePeriod), Is.EqualTo((GroupedNewtonVariant.Adaptive, 1.0, true, 10)));
            auto.Cubic = false;
            Rejects(auto, "Cubic");
            var e = Assert.Throws<ArgumentException>(() => new SgdOptions { LearningRate = -0.1 }.Validate())!;
            Assert.That(e.Message, Does.Contain("-0.1"));
            Assert.Throws<ArgumentException>(() => Optimizer.Create(model, new GroupedNewtonOptions { Curvature = curvature, Partition = "bogus" }));
            // another model's curvature source
            Assert.Throws<ArgumentException>(() => Optimizer.Create(M(), new GroupedNewtonOptions { Curvature = curvature }));
            Assert.That(Assert.Throws<ArgumentNullException>(() => Optimizer.Create(model, (OptimizerOptions)null!))!.ParamName, Is.EqualTo("options"));
            Assert.That(Assert.Throws<ArgumentNullException>(() => Optimizer.Create((Model)null!, new SgdOptions()))!.ParamName, Is.EqualTo("model"));
        }

        [Test]
        public void GroupsMustPartitionTheParameters()
        {
            var model = M();
            var e = Assert.Throws<ArgumentException>(() =>
                Optimizer.Create(model, new SgdOptions(), new[] { new ParamGroup("w", new[] { "1.weight", "3.weight" }, 0.1) }))!;
            Assert.That(e.Message, Does.Contain("1.bias"));
            Assert.Throws<ArgumentException>(() =>
                Optimizer.Create(model, new SgdOptions(), new[] { new ParamGroup("w", new[] { "1.weight", "nope" }, 0.1) }));
            Assert.Throws<ArgumentOutOfRangeException>(() => new ParamGroup("w", new[] { "1.weight" }, -1));
            Assert.Throws<InvalidOperationException>(() => new ParamGroup("w", new[] { "1.weight" }, 1).LearningRate = 2);
            var gn = new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, Fixtures.Task()) };
            Assert.That(gn.SupportsParamGroups, Is.False);
            Assert.Throws<ArgumentException>(() => Optimizer.Create(model, gn, new[] { new ParamGroup("all", model.Parameters.Names, 1) }));
        }
    }

    public class OptimizerTests
    {
        static double Train(Optimizer opt, Func<Tensor> loss, int steps)
        {
            double last = double.NaN;
            for (int i = 0; i < steps; i++) last = opt.Step(loss);
            return last;
        }

        [TestCase("sgd")]
        [TestCase("adam")]
        [TestCase("sofim")]
        public void FirstOrderOptimizersLowerTheLoss(string which)
        {
            var model = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(200));
            var loss = Fixtures.LossOn(model, batch);
            OptimizerOptions options = which switch
            {
                "sgd" => new SgdOptions { LearningRate = 0.2, Momentum = 0.9 },
                "adam" => new AdamOptions { LearningRate = 0.01 },
                _ => new SofimOptions { LearningRate = 0.05, Scope = SofimScope.Layer },
            };
            var opt = Optimizer.Create(model, options);
            opt.ZeroGrad();
            var first = opt.Step(loss);
            Train(opt, loss, 29);
            var final = loss().ToScalar();
            Assert.That(opt.StepCount, Is.EqualTo(30));
            Assert.That(final, Is.LessThan(0.8 * first), $"{which}: {first} → {final}");
            Assert.That(opt.Name, Does.StartWith(which));
            Assert.That(opt.NeedsModel, Is.False);
            Assert.That(opt.LearningRates.Keys, Is.EqualTo(new[] { "all" }));
            Assert.That(opt.ToString(), Does.Contain("step 30"));
        }

        [Test]
        public void GroupedNewtonLowersTheLossAndReportsRatesPerSubset()
        {
            var model = Fixtures.Mlp();
            var data = Fixtures.Task(400);
            var batch = Fixtures.All(data);
            var loss = Fixtures.LossOn(model, batch);
            var options = new GroupedNewtonOptions
            {
                Curvature = CurvatureSource.Cycle(model, data, batchSize: 100),
                Cubic = true, Damping = 0.5, ClipNegativeRates = true, CurvaturePeriod = 2,
            };
            var gn = Optimizer.Create(model, options);
            var first = gn.Step(loss);
            for (int i = 0; i < 19; i++) gn.Step(loss);
            var final = loss().ToScalar();
            Assert.That(final, Is.LessThan(0.9 * first), $"{first} → {final}");
            Assert.That(gn.SubsetNames, Is.EqualTo(model.Parameters.Names));
            Assert.That(gn.LearningRates.Keys, Is.EqualTo(model.Parameters.Names));
            Assert.That(gn.LearningRates.Values, Has.Some.GreaterThan(0.0));
            Assert.That(gn.History.Count, Is.EqualTo(10));
            var last = gn.History[^1];
            Assert.That(last.Step, Is.EqualTo(18));
            Assert.That(last.Summary.Gradient.Length, Is.EqualTo(4));
            Assert.That(last.Summary.ThirdDiagonal.Length, Is.EqualTo(4));
            Assert.That(last.Summary.Partition, Is.Null);
            Assert.That(last.Fallback, Is.False);
            // the rates of the last update follow from its summary (GroupedNewton's own solve, λ_int = 1)
            var again = Summary.SuggestLearningRates(last.Summary, 1.0, 0.5);
            foreach (var name in gn.SubsetNames)
                Assert.That(last.LearningRates[name], Is.EqualTo(Math.Max(0.0, again.LearningRates[name])).Within(1e-12));
            Assert.Throws<InvalidOperationException>(() => again.ToParamGroups());
            foreach (var name in gn.SubsetNames)
                Assert.That(gn.LearningRates[name], Is.EqualTo(0.5 * gn.Rates[name]).Within(1e-15));
            Assert.That(last.LearningRates, Is.EquivalentTo(gn.LearningRates));
            gn.SetDamping(0, 0.25);
            Assert.That(gn.Damping[0], Is.EqualTo(0.25));
            gn.LambdaInt = 2.0;
            Assert.That(gn.LambdaInt, Is.EqualTo(2.0));
            Assert.Throws<ArgumentOutOfRangeException>(() => gn.SetDamping(9, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => gn.LambdaInt = -1);
            // the core checks the values (once); the facade reports them as out of range, naming the argument
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => gn.SetDamping(0, double.NaN))!.ParamName, Is.EqualTo("value"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => gn.LambdaInt = double.PositiveInfinity)!.Message, Does.Contain("λ_int"));
            Assert.That((gn.Damping[0], gn.LambdaInt), Is.EqualTo((0.25, 2.0)));
        }

        [Test]
        public void GroupedNewtonTakesAPartitionObjectAsWellAsAName()
        {
            (double[] Losses, GroupedNewtonOptimizer Optimizer) Run(Func<Model, PartitionChoice> partition)
            {
                var model = Fixtures.Mlp();
                var data = Fixtures.Task(200);
                var loss = Fixtures.LossOn(model, Fixtures.All(data));
                var gn = Optimizer.Create(model, new GroupedNewtonOptions
                {
                    Curvature = CurvatureSource.Cycle(model, data, batchSize: 50), Cubic = true, Damping = 0.5, ClipNegativeRates = true,
                    Partition = partition(model),
                });
                return (Enumerable.Range(0, 4).Select(_ => gn.Step(loss)).ToArray(), gn);
            }

            var byName = Run(_ => "per-layer");
            var byObject = Run(m => Partition.PerLayer(m.Parameters));
            var byNames = Run(m => Partition.ByNames(m.Parameters, ("first", new[] { "1.weight", "1.bias" }), ("second", new[] { "3.weight", "3.bias" })));
            Assert.That(byObject.Losses, Is.EqualTo(byName.Losses));
            Assert.That(byNames.Losses, Is.EqualTo(byName.Losses));
            Assert.That(byNames.Optimizer.SubsetNames, Is.EqualTo(new[] { "first", "second" }));
            Assert.That(byNames.Optimizer.Rates["second"], Is.EqualTo(byName.Optimizer.Rates["3"]));
            // another grouping of the same tensors is another run
            var split = Run(m => Partition.ByNames(m.Parameters, ("weights", new[] { "1.weight", "3.weight" }), ("biases", new[] { "1.bias", "3.bias" })));
            Assert.That(split.Losses[0], Is.EqualTo(byName.Losses[0]));
            Assert.That(split.Losses.Skip(1), Is.Not.EqualTo(byName.Losses.Skip(1)));

            var options = new GroupedNewtonOptions();
            Assert.That((options.Partition.Name, options.Partition.Subsets), Is.EqualTo(("canonical", (Partition?)null)));
            var trivial = Partition.Trivial(Fixtures.Mlp().Parameters);
            options.Partition = trivial;
            Assert.That((options.Partition.Name, options.Partition.Subsets), Is.EqualTo(((string?)null, trivial)));
            Assert.Throws<ArgumentNullException>(() => options.Partition = null!);

            var model = Fixtures.Mlp();
            var curvature = CurvatureSource.Cycle(model, Fixtures.Task(100));
            var e = Assert.Throws<ArgumentException>(() => Optimizer.Create(model, new GroupedNewtonOptions { Curvature = curvature, Partition = trivial }))!;
            Assert.That(e.ParamName, Is.EqualTo("Partition"));
            Assert.That(e.Message, Does.Contain("another parameter set"));
            e = Assert.Throws<ArgumentException>(() => Optimizer.Create(model, new GroupedNewtonOptions { Curvature = curvature, Partition = "blocks" }))!;
            Assert.That(e.ParamName, Is.EqualTo("Partition"));
            Assert.That(e.Message, Does.Contain("'blocks'").And.Contain("per-layer"));
        }

        [Test]
        public void GroupedNewtonWithAdamDirectionAndOwnCurvatureClosures()
        {
            var model = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(200));
            var loss = Fixtures.LossOn(model, batch);
            int calls = 0;
            var source = CurvatureSource.FromClosures(() => { calls++; return loss; });
            var gn = Optimizer.Create(model, new GroupedNewtonOptions
            {
                Curvature = source, Direction = GroupedNewtonDirection.Adam, Cubic = true, Damping = 0.5, ClipNegativeRates = true, Partition = "per-layer",
            });
            var first = gn.Step(loss);
            for (int i = 0; i < 9; i++) gn.Step(loss);
            Assert.That(calls, Is.EqualTo(10));
            Assert.That(gn.SubsetNames, Is.EqualTo(new[] { "1", "3" }));
            Assert.That(loss().ToScalar(), Is.LessThan(first));
        }

        [Test]
        public void StepOnABatchEqualsStepWithAClosure()
        {
            var a = Fixtures.Mlp();
            var b = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(100));
            var oa = Optimizer.Create(a, new SgdOptions { LearningRate = 0.1, Momentum = 0.5 });
            var ob = Optimizer.Create(b, new SgdOptions { LearningRate = 0.1, Momentum = 0.5 });
            for (int i = 0; i < 3; i++)
            {
                var la = oa.Step(Fixtures.LossOn(a, batch));
                var lb = ob.Step(batch.Inputs, output => Loss.CrossEntropy(output, batch.Labels!));
                Assert.That(lb, Is.EqualTo(la));
            }
            Assert.That(Fixtures.Flat(b.Parameters), Is.EqualTo(Fixtures.Flat(a.Parameters)));
            Assert.That(batch.Loss(a.Forward(batch.Inputs)).ToScalar(), Is.EqualTo(Fixtures.LossOn(a, batch)().ToScalar()));
        }

        [Test]
        public void ParamGroupsHaveTheirOwnLearningRates()
        {
            var model = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(100));
            var before = model.Parameters.Snapshot();
            var opt = Optimizer.Create(model, new SgdOptions(), new[]
            {
                new ParamGroup("first", new[] { "1.weight", "1.bias" }, 0.0),
                new ParamGroup("second", new[] { "3.weight", "3.bias" }, 0.1),
            });
            Assert.That(opt.LearningRates, Is.EquivalentTo(new Dictionary<string, double> { ["first"] = 0.0, ["second"] = 0.1 }));
            opt.Step(Fixtures.LossOn(model, batch));
            Assert.That(model.Parameters.ToArray("1.weight"), Is.EqualTo(before["1.weight"].ToArray()));
            Assert.That(model.Parameters.ToArray("3.weight"), Is.Not.EqualTo(before["3.weight"].ToArray()));
            var g = opt.ParamGroups[0];
            Assert.That((g.Name, g.InitialLearningRate), Is.EqualTo(("first", 0.0)));
            Assert.That(g.ParameterNames, Is.EqualTo(new[] { "1.weight", "1.bias" }));
            g.LearningRate = 0.1;
            opt.Step(Fixtures.LossOn(model, batch));
            Assert.That(model.Parameters.ToArray("1.weight"), Is.Not.EqualTo(before["1.weight"].ToArray()));
            Assert.Throws<ArgumentOutOfRangeException>(() => g.LearningRate = double.NaN);
        }

        [Test]
        public void SchedulersChangeTheGroupRates()
        {
            var model = Fixtures.Mlp();
            var opt = Optimizer.Create(model, new SgdOptions { LearningRate = 0.8 });
            var step = new StepLR(opt, stepSize: 2, gamma: 0.5);
            step.Step();
            Assert.That(opt.LearningRates["all"], Is.EqualTo(0.8));
            step.Step();
            Assert.That(step.Epoch, Is.EqualTo(2));
            Assert.That(opt.LearningRates["all"], Is.EqualTo(0.4));
            Assert.Throws<ArgumentOutOfRangeException>(() => new StepLR(opt, 0));

            var plateau = new ReduceLROnPlateau(opt, factor: 0.5, patience: 1);
            plateau.Step(1.0);
            plateau.Step(1.0);
            Assert.That(opt.LearningRates["all"], Is.EqualTo(0.4));
            plateau.Step(1.0);
            Assert.That(opt.LearningRates["all"], Is.EqualTo(0.2));
            Assert.That(plateau.Best, Is.EqualTo(1.0));
            Assert.Throws<ArgumentOutOfRangeException>(() => plateau.Step(double.NaN));
            Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceLROnPlateau(opt, factor: 1.5));

            var gn = Optimizer.Create(model, new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, Fixtures.Task()), Damping = 0.4 });
            var damping = new ReduceDampingOnPlateau(gn, factor: 0.5, patience: 0);
            damping.Step(1.0);
            damping.Step(1.0);
            Assert.That(gn.Damping, Has.All.EqualTo(0.2));
            Assert.Throws<ArgumentOutOfRangeException>(() => damping.Step(double.NaN));
        }

        [TestCase("sgd")]
        [TestCase("adam")]
        public void SavedStateGivesTheSameNextStep(string which)
        {
            OptimizerOptions Options() => which == "sgd"
                ? new SgdOptions { LearningRate = 0.1, Momentum = 0.9 }
                : new AdamOptions { LearningRate = 0.01 };
            var batch = Fixtures.All(Fixtures.Task(100));
            var model = Fixtures.Mlp();
            var opt = Optimizer.Create(model, Options());
            for (int i = 0; i < 3; i++) opt.Step(Fixtures.LossOn(model, batch));
            var path = Path.Combine(Path.GetTempPath(), $"facade-state-{which}-{Guid.NewGuid():N}.bin");
            try
            {
                opt.SaveState(path);
                var snapshot = model.Parameters.Snapshot();
                opt.Step(Fixtures.LossOn(model, batch));
                var expected = Fixtures.Flat(model.Parameters);

                var fresh = Fixtures.Mlp();
                fresh.Parameters.Assign(snapshot);
                var reloaded = Optimizer.Create(fresh, Options());
                reloaded.LoadState(path);
                Assert.That(reloaded.StepCount, Is.EqualTo(3));
                reloaded.Step(Fixtures.LossOn(fresh, batch));
                Assert.That(Fixtures.Flat(fresh.Parameters), Is.EqualTo(expected));

                // without the state the step differs (momentum / moments matter)
                var cold = Fixtures.Mlp();
                cold.Parameters.Assign(snapshot);
                Optimizer.Create(cold, Options()).Step(Fixtures.LossOn(cold, batch));
                Assert.That(Fixtures.Flat(cold.Parameters), Is.Not.EqualTo(expected));

                var other = Optimizer.Create(Fixtures.Mlp(), which == "sgd" ? new AdamOptions() : new SgdOptions { Momentum = 0.9 });
                Assert.Throws<InvalidDataException>(() => other.LoadState(path));
                Assert.Throws<FileNotFoundException>(() => opt.LoadState(path + ".missing"));
            }
            finally
            {
                File.Delete(path);
            }
        }

        [TestCase(GroupedNewtonVariant.NewtonSummary)]
        [TestCase(GroupedNewtonVariant.UniformAverage)]
        public void GroupedNewtonStateGivesTheSameNextSteps(GroupedNewtonVariant variant)
        {
            var batch = Fixtures.All(Fixtures.Task(100));
            Optimizer Make(Model m) => Optimizer.Create(m, new GroupedNewtonOptions
            {
                // the same curvature batch every time, so the stream position does not matter
                Curvature = CurvatureSource.FromClosures(() => Fixtures.LossOn(m, batch)),
                Variant = variant, Cubic = true, Damping = 0.5, ClipNegativeRates = true, CurvaturePeriod = 2, AveragePeriod = 2,
                Warmup = 1, RateMomentum = 0.5, SummaryMomentum = variant == GroupedNewtonVariant.NewtonSummary ? 0.5 : 0.0,
            });
            var model = Fixtures.Mlp();
            var gn = Make(model);
            for (int i = 0; i < 7; i++) gn.Step(Fixtures.LossOn(model, batch));
            var path = Path.Combine(Path.GetTempPath(), $"facade-gn-{variant}-{Guid.NewGuid():N}.bin");
            try
            {
                gn.SaveState(path);
                var snapshot = model.Parameters.Snapshot();
                for (int i = 0; i < 4; i++) gn.Step(Fixtures.LossOn(model, batch));
                var expected = Fixtures.Flat(model.Parameters);
                var fresh = Fixtures.Mlp(seed: 5);
                fresh.Parameters.Assign(snapshot);
                var reloaded = Make(fresh);
                reloaded.LoadState(path);
                Assert.That(reloaded.StepCount, Is.EqualTo(7));
                for (int i = 0; i < 4; i++) reloaded.Step(Fixtures.LossOn(fresh, batch));
                Assert.That(Fixtures.Flat(fresh.Parameters), Is.EqualTo(expected));
                Assert.That(reloaded.LearningRates, Is.EquivalentTo(gn.LearningRates));
            }
            finally
            {
                File.Delete(path);
            }
        }

        [Test]
        public void FailedStepsThrowAndChangeNothing()
        {
            var model = Fixtures.Mlp();
            var batch = Fixtures.All(Fixtures.Task(50));
            var opt = Optimizer.Create(model, new SgdOptions { LearningRate = 0.1 });
            var before = Fixtures.Flat(model.Parameters);
            var e = Assert.Throws<InvalidOperationException>(() => opt.Step(() => Fixtures.LossOn(model, batch)() * double.NaN))!;
            Assert.That(e.InnerException!.GetType().Name, Is.EqualTo("OptimizationException"));
            // the user's own exception comes out unchanged
            Assert.Throws<TimeoutException>(() => opt.Step(() => throw new TimeoutException("mine")));
            // a shape error inside the closure is an ArgumentException
            Assert.Throws<ArgumentException>(() => opt.Step(() => model.Forward(Tensor.Zeros(DType.Float32, 2, 7)).Sum()));
            Assert.Throws<InvalidOperationException>(() => opt.Step(() => null!));
            Assert.That(Assert.Throws<ArgumentNullException>(() => opt.Step(null!))!.ParamName, Is.EqualTo("closure"));
            Assert.That(Assert.Throws<ArgumentNullException>(() => opt.Step(batch.Inputs, null!))!.ParamName, Is.EqualTo("lossOfOutput"));
            Assert.That(Fixtures.Flat(model.Parameters), Is.EqualTo(before));
            Assert.That(opt.StepCount, Is.EqualTo(0));
        }

        [Test]
        public void OptimizersOverOwnParameterSets()
        {
            // minimise (w − 3)² + (b + 1)² with Adam on a parameter set of our own
            var ps = ParameterSet.Create(("w", Tensor.Scalar(0.0)), ("b", Tensor.Scalar(0.0)));
            var opt = Optimizer.Create(ps, new AdamOptions { LearningRate = 0.1 });
            string? warning = null;
            opt.Warning += (_, m) => warning = m;
            for (int i = 0; i < 300; i++) opt.Step(() => (ps["w"] - 3.0).Pow(2) + (ps["b"] + 1.0).Pow(2));
            Assert.That(ps.ToArray("w")[0], Is.EqualTo(3.0).Within(0.05));
            Assert.That(ps.ToArray("b")[0], Is.EqualTo(-1.0).Within(0.05));
            Assert.That(warning, Is.Null);
            Assert.Throws<InvalidOperationException>(() => opt.Step(Tensor.Scalar(1), o => o));
            Assert.That(opt.Parameters, Is.SameAs(ps));
        }
    }
}
