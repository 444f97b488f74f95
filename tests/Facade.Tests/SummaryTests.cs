using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    public class SummaryTests
    {
        // L(x, y) = x³/3 + x²y + y³ + x at (1, 2): ∇L = (6, 13), H = [[6, 2], [2, 12]], ∂³ₓ = 2, ∂³ᵧ = 6
        static (ParameterSet, Func<Tensor>) Cubic()
        {
            var ps = ParameterSet.Create(("x", Tensor.Scalar(1.0)), ("y", Tensor.Scalar(2.0)));
            Func<Tensor> loss = () =>
            {
                var x = ps["x"];
                var y = ps["y"];
                return x * x * x / 3.0 + x * x * y + y * y * y + x;
            };
            return (ps, loss);
        }

        [Test]
        public void SummaryAlongAGivenDirectionHasTheAnalyticValues()
        {
            var (ps, loss) = Cubic();
            var u = new Dictionary<string, Tensor> { ["x"] = Tensor.Scalar(1.0), ["y"] = Tensor.Scalar(1.0) };
            var s = Summary.Compute(ps, loss, Partition.Canonical(ps), u);
            Assert.That(s.SubsetNames, Is.EqualTo(new[] { "x", "y" }));
            Assert.That(s.Gradient, Is.EqualTo(new[] { 6.0, 13.0 }).Within(1e-12));
            Assert.That(s.Hessian, Is.EqualTo(new[,] { { 6.0, 2.0 }, { 2.0, 12.0 } }).Within(1e-12));
            Assert.That(s.ThirdDiagonal, Is.EqualTo(new[] { 2.0, 6.0 }).Within(1e-12));
            Assert.That(s.Loss, Is.EqualTo(1.0 / 3 + 2 + 8 + 1).Within(1e-12));
            Assert.That(s.ReversePasses, Is.EqualTo(3));

            var r = Summary.SuggestLearningRates(s, lambdaInt: 1.0, damping: 0.5);
            Assert.That(r.Converged, Is.True);
            Assert.That(r.SolverPath, Is.EqualTo("Direct"));
            Assert.That(r.Eta, Is.EqualTo(new[] { 0.60194, 0.80181 }).Within(1e-5));
            Assert.That(r.Radius, Is.EqualTo(1.6426).Within(1e-4));
            Assert.That(r.LearningRates["x"], Is.EqualTo(0.5 * r.Eta[0]));
            Assert.That(r.LearningRates["y"], Is.EqualTo(0.5 * r.Eta[1]));
            Assert.That(r.Summary, Is.SameAs(s));
            Assert.That(s.Partition!.Names, Is.EqualTo(new[] { "x", "y" }));
            Assert.That(r.ToParamGroups().Select(g => g.LearningRate), Is.EqualTo(new[] { r.LearningRates["x"], r.LearningRates["y"] }));
            Assert.That(r.Message, Is.Not.Null);
        }

        [Test]
        public void DefaultDirectionIsTheGradient()
        {
            var (ps, loss) = Cubic();
            var s = Summary.Compute(ps, loss);
            // u = g = (6, 13): ḡ = g², H̄_st = g_s H_st g_t, D̄_sss = g_s³ ∂³_s L
            Assert.That(s.Gradient, Is.EqualTo(new[] { 36.0, 169.0 }).Within(1e-9));
            Assert.That(s.Hessian, Is.EqualTo(new[,] { { 216.0, 156.0 }, { 156.0, 2028.0 } }).Within(1e-9));
            Assert.That(s.ThirdDiagonal, Is.EqualTo(new[] { 432.0, 13182.0 }).Within(1e-9));
            // without the third order: ḡ and H̄ only; the suggestion is then H̄⁻¹ḡ
            var s2 = Summary.Compute(ps, loss, Partition.Trivial(ps), thirdOrder: false);
            Assert.That(s2.ThirdDiagonal, Is.Empty);
            Assert.That(s2.Gradient[0], Is.EqualTo(36.0 + 169.0).Within(1e-9));
            var newton = Summary.SuggestLearningRates(s2);
            Assert.That(newton.Eta[0], Is.EqualTo(205.0 / (216 + 2 * 156 + 2028)).Within(1e-12));
            Assert.That(newton.LearningRates["all"], Is.EqualTo(newton.Eta[0]));
        }

        [Test]
        public void ModelSummaryMatchesFiniteDifferences()
        {
            var model = Fixtures.Mlp(0, DType.Float64);
            var batch = Fixtures.All(Fixtures.Task(64), DType.Float64);
            var loss = Fixtures.LossOn(model, batch);
            var ps = model.Parameters;
            var u = ps.Names.Select((n, i) => (n, Tensor.Randn(100 + i, DType.Float64, ps[n].Shape))).ToDictionary(p => p.n, p => p.Item2);
            var partition = Partition.PerLayer(ps);
            Assert.That(partition.Names, Is.EqualTo(new[] { "1", "3" }));
            Assert.That(partition.ParameterNames(0), Is.EqualTo(new[] { "1.weight", "1.bias" }));
            var s = Summary.Compute(model, loss, partition, u);

            // φ(a, b) = L(θ − a·u₁ − b·u₂): ḡ = −∇φ(0), H̄ = ∇²φ(0)
            var theta = ps.Snapshot();
            double Phi(double a, double b)
            {
                var moved = theta.ToDictionary(kv => kv.Key, kv => kv.Value - (kv.Key.StartsWith("1.") ? a : b) * u[kv.Key]);
                ps.Assign(moved);
                var v = loss().ToScalar();
                ps.Assign(theta);
                return v;
            }
            const double h = 1e-4;
            var g0 = -(Phi(h, 0) - Phi(-h, 0)) / (2 * h);
            var g1 = -(Phi(0, h) - Phi(0, -h)) / (2 * h);
            var h01 = (Phi(h, h) - Phi(h, -h) - Phi(-h, h) + Phi(-h, -h)) / (4 * h * h);
            var h00 = (Phi(h, 0) - 2 * Phi(0, 0) + Phi(-h, 0)) / (h * h);
            Assert.That(s.Gradient[0], Is.EqualTo(g0).Within(1e-6 * (1 + Math.Abs(g0))));
            Assert.That(s.Gradient[1], Is.EqualTo(g1).Within(1e-6 * (1 + Math.Abs(g1))));
            Assert.That(s.Hessian[0, 1], Is.EqualTo(h01).Within(1e-4 * (1 + Math.Abs(h01))));
            Assert.That(s.Hessian[0, 0], Is.EqualTo(h00).Within(1e-4 * (1 + Math.Abs(h00))));
            Assert.That(s.Hessian[1, 0], Is.EqualTo(s.Hessian[0, 1]));
            Assert.That(s.Loss, Is.EqualTo(Phi(0, 0)).Within(1e-12));
        }

        [Test]
        public void SuggestedRatesForAModelAreNamedByLayer()
        {
            var model = Fixtures.Mlp(0, DType.Float64);
            var batch = Fixtures.All(Fixtures.Task(64), DType.Float64);
            var r = Summary.SuggestLearningRates(model, Fixtures.LossOn(model, batch), Partition.PerLayer(model.Parameters));
            Assert.That(r.LearningRates.Keys, Is.EquivalentTo(new[] { "1", "3" }));
            Assert.That(r.Converged, Is.True);
            Assert.That(r.LearningRates.Values, Has.All.GreaterThan(0.0));
            // the suggested per-layer rates used as SGD group learning rates lower the loss
            var groups = r.ToParamGroups();
            Assert.That(groups.Select(g => g.ParameterNames), Is.EqualTo(new[] { new[] { "1.weight", "1.bias" }, new[] { "3.weight", "3.bias" } }));
            var sgd = Optimizer.Create(model, new SgdOptions { LearningRate = 0.0 }, groups);
            Assert.That(sgd.LearningRates, Is.EquivalentTo(r.LearningRates));
            var before = sgd.Step(Fixtures.LossOn(model, batch));
            Assert.That(before, Is.EqualTo(r.Summary.Loss).Within(1e-12));
            Assert.That(Fixtures.LossOn(model, batch)().ToScalar(), Is.LessThan(before));
        }

        [Test]
        public void PartitionsAndBadSummaryArguments()
        {
            var model = Fixtures.Mlp();
            var ps = model.Parameters;
            Assert.That(Partition.WeightsBiases(ps).Names, Is.EqualTo(new[] { "weight", "bias" }));
            Assert.That(Partition.Parse(ps, "blocks-2").Count, Is.EqualTo(4));
            var custom = Partition.ByNames(ps, ("first", new[] { "1.weight", "1.bias" }), ("second", new[] { "3.weight", "3.bias" }));
            Assert.That(custom.Names, Is.EqualTo(new[] { "first", "second" }));
            Assert.That(custom.ToString(), Does.Contain("first"));
            var e = Assert.Throws<ArgumentException>(() => Partition.ByNames(ps, ("first", new[] { "1.weight" })))!;
            Assert.That(e.Message, Does.Contain("1.bias"));
            Assert.Throws<ArgumentException>(() => Partition.Parse(ps, "nonsense"));
            Assert.Throws<ArgumentOutOfRangeException>(() => custom.ParameterNames(2));
            var other = Fixtures.Mlp(1);
            var batch = Fixtures.All(Fixtures.Task(16));
            Assert.Throws<ArgumentException>(() => Summary.Compute(model, Fixtures.LossOn(model, batch), Partition.Canonical(other.Parameters)));
            Assert.Throws<ArgumentException>(() => Summary.Compute(model, Fixtures.LossOn(model, batch),
                direction: new Dictionary<string, Tensor> { ["1.weight"] = Tensor.Zeros(DType.Float32, 16, 20) }));
            Assert.That(Assert.Throws<ArgumentNullException>(() => Summary.Compute(model, null!))!.ParamName, Is.EqualTo("loss"));
            Assert.Throws<ArgumentOutOfRangeException>(() => Summary.SuggestLearningRates(Summary.Compute(model, Fixtures.LossOn(model, batch)), lambdaInt: -1));
        }
    }
}
