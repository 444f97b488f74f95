using System;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    public class TensorTests
    {
        [Test]
        public void ArithmeticAndFunctionsGiveTheirValues()
        {
            var a = Tensor.FromArray(new[] { 1.0, 2.0, 3.0, 4.0 }, 2, 2);
            var b = Tensor.FromArray(new[] { 0.5, -1.0, 2.0, 0.0 }, 2, 2);
            Assert.That((a + b).ToArray(), Is.EqualTo(new[] { 1.5, 1.0, 5.0, 4.0 }));
            Assert.That((2.0 * a - 1.0).ToArray(), Is.EqualTo(new[] { 1.0, 3.0, 5.0, 7.0 }));
            Assert.That((a * b).Sum().ToScalar(), Is.EqualTo(0.5 - 2.0 + 6.0));
            Assert.That(a.MatMul(a).ToArray(), Is.EqualTo(new[] { 7.0, 10.0, 15.0, 22.0 }));
            Assert.That(a.Transpose().ToArray(), Is.EqualTo(new[] { 1.0, 3.0, 2.0, 4.0 }));
            Assert.That(a.Reshape(-1).Shape, Is.EqualTo(new[] { 4 }));
            Assert.That(a.Pow(2).Mean().ToScalar(), Is.EqualTo(7.5));
            Assert.That(Tensor.Scalar(0.5).Tanh().ToScalar(), Is.EqualTo(Math.Tanh(0.5)).Within(1e-15));
            Assert.That((1.0 / a).ToArray()[3], Is.EqualTo(0.25));
            Assert.That((-a).Abs().Sqrt().ToArray()[3], Is.EqualTo(2.0));
            Assert.That(a.DType, Is.EqualTo(DType.Float64));
            Assert.That(a.Cast(DType.Float32).ToFloatArray(), Is.EqualTo(new[] { 1f, 2f, 3f, 4f }));
            Assert.That(a.Rank, Is.EqualTo(2));
            Assert.That(a.Count, Is.EqualTo(4));
            Assert.That(a.HasDerivatives, Is.False);
            Assert.That(Tensor.Zeros(DType.Float32, 2, 3).Sum().ToScalar(), Is.EqualTo(0.0));
            Assert.That(Tensor.Full(DType.Float64, 2.5, 2).ToArray(), Is.EqualTo(new[] { 2.5, 2.5 }));
            Assert.That(Tensor.Randn(3, DType.Float64, 5).ToArray(), Is.EqualTo(Tensor.Randn(3, DType.Float64, 5).ToArray()));
            Assert.That(Tensor.FromLabels(new[] { 2, 0 }).ToIntArray(), Is.EqualTo(new[] { 2, 0 }));
            Assert.That(a.Exp().Log().ToArray()[2], Is.EqualTo(3.0).Within(1e-12));
            Assert.That(Tensor.Scalar(-1).Relu().ToScalar(), Is.EqualTo(0.0));
            Assert.That(Tensor.Scalar(0).Sigmoid().ToScalar(), Is.EqualTo(0.5));
            Assert.That(a.ToString(), Is.EqualTo("Float64 [2, 2]"));
        }

        [Test]
        public void LossesGiveTheirValues()
        {
            var logits = Tensor.FromArray(new[] { 0.0, 0.0, 10.0, 0.0 }, 2, 2);
            var labels = Tensor.FromLabels(new[] { 1, 0 });
            Assert.That(Loss.CrossEntropy(logits, labels).ToScalar(), Is.EqualTo((Math.Log(2) + Math.Log(1 + Math.Exp(10)) - 10) / 2).Within(1e-12));
            Assert.That(Loss.Accuracy(logits, labels), Is.EqualTo(0.5));
            var y = Tensor.FromArray(new[] { 1.0, 0.0, 1.0, 1.0 }, 2, 2);
            Assert.That(Loss.MeanSquaredError(logits, y).ToScalar(), Is.EqualTo((1 + 0 + 81 + 1) / 4.0));
            Assert.That(Loss.HalfSquaredError(logits, y).ToScalar(), Is.EqualTo(0.5 * 83 / 2));
            double sp(double z) => Math.Log(1 + Math.Exp(z));
            var bce = (sp(0) - 0 + sp(0) + sp(10) - 10 + sp(0)) / 2;
            Assert.That(Loss.BinaryCrossEntropyWithLogits(logits, y).ToScalar(), Is.EqualTo(bce).Within(1e-12));
        }

        [Test]
        public void AccuracyRejectsALabelOutsideTheClassesLikeCrossEntropy()
        {
            var logits = Tensor.FromArray(new[] { 0.0, 1.0, 2.0, 0.0 }, 2, 2);
            foreach (var bad in new[] { new[] { 1, 2 }, new[] { -1, 0 } })
            {
                var labels = Tensor.FromLabels(bad);
                var ce = Assert.Throws<ArgumentException>(() => Loss.CrossEntropy(logits, labels))!;
                var acc = Assert.Throws<ArgumentException>(() => Loss.Accuracy(logits, labels))!;
                Assert.That(acc.InnerException!.GetType(), Is.EqualTo(ce.InnerException!.GetType()));
                var label = bad.First(l => l < 0 || l >= 2);
                Assert.That(acc.Message, Does.Contain($"label {label}").And.Contain("[0, 2)"));
            }
            Assert.That(Loss.Accuracy(logits, Tensor.FromLabels(new[] { 1, 0 })), Is.EqualTo(1.0));
        }

        [Test]
        public void BadInputThrowsStandardExceptions()
        {
            var a = Tensor.FromArray(new[] { 1.0, 2.0, 3.0 });
            var b = Tensor.FromArray(new[] { 1.0, 2.0 });
            var e = Assert.Throws<ArgumentException>(() => _ = a + b)!;
            Assert.That(e.InnerException!.GetType().Name, Is.EqualTo("ShapeMismatchException"));
            Assert.That(e.Message, Does.Contain("[3]").And.Contain("[2]"));
            Assert.Throws<ArgumentException>(() => Tensor.FromArray(new[] { 1.0, 2.0 }, 3));
            Assert.That(Assert.Throws<ArgumentNullException>(() => Tensor.FromArray((double[])null!))!.ParamName, Is.EqualTo("values"));
            Assert.That(Assert.Throws<ArgumentNullException>(() => _ = a + (Tensor)null!)!.ParamName, Is.EqualTo("b"));
            Assert.Throws<ArgumentException>(() => a.ToScalar());
            var translated = ErrorPolicy.Translate(new InvalidTimeZoneException("x"));
            Assert.That(translated, Is.TypeOf<InvalidTimeZoneException>());
        }
    }

    public class ModelTests
    {
        [Test]
        public void SequentialInfersSizesAndNamesParameters()
        {
            var builder = new Sequential(1, 28, 28).Conv2d(6, 5).Tanh().MaxPool2d(2).Conv2d(16, 5, padding: 1).Relu().AvgPool2d(2)
                .Flatten().Linear(32).Elu().Linear(16).Sigmoid().Linear(10, bias: false).Softplus();
            Assert.That(builder.OutputShape, Is.EqualTo(new[] { 10 }));
            var model = builder.Build("cnn", Initialization.PyTorch(3));
            Assert.That(model.Name, Is.EqualTo("cnn"));
            Assert.That(model.InputShape, Is.EqualTo(new[] { 1, 28, 28 }));
            Assert.That(model.OutputShape, Is.EqualTo(new[] { 10 }));
            Assert.That(model.Layers.Count, Is.EqualTo(13));
            Assert.That(model.Parameters.Names, Is.EqualTo(new[] { "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias", "11.weight" }));
            // 16 channels of 5x5 after (28-4)/2 = 12 → (12+2-4) = 10 → 5
            Assert.That(model.Parameters["7.weight"].Shape, Is.EqualTo(new[] { 32, 16 * 5 * 5 }));
            Assert.That(model.Parameters.TotalSize, Is.EqualTo(6 * 25 + 6 + 16 * 6 * 25 + 16 + 32 * 400 + 32 + 16 * 32 + 16 + 10 * 16));
            var x = Tensor.Randn(0, DType.Float32, 3, 1, 28, 28);
            Assert.That(model.Forward(x).Shape, Is.EqualTo(new[] { 3, 10 }));
            Assert.That(model.ToString(), Does.StartWith("cnn: Conv2d"));
            // the same seed gives the same values, another seed others
            var again = builder.Build("cnn", Initialization.PyTorch(3));
            Assert.That(Fixtures.Flat(again.Parameters), Is.EqualTo(Fixtures.Flat(model.Parameters)));
            Assert.That(Fixtures.Flat(builder.Build("cnn", Initialization.PyTorch(4)).Parameters), Is.Not.EqualTo(Fixtures.Flat(model.Parameters)));
        }

        [Test]
        public void SequentialRejectsBadLayers()
        {
            Assert.Throws<InvalidOperationException>(() => new Sequential(1, 28, 28).Linear(10));
            Assert.Throws<InvalidOperationException>(() => new Sequential(784).Conv2d(6, 5));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new Sequential(784).Linear(0))!.ParamName, Is.EqualTo("outFeatures"));
            Assert.Throws<ArgumentException>(() => new Sequential(1, 4, 4).Conv2d(2, 5));
            Assert.Throws<ArgumentException>(() => new Sequential(0, 4));
            Assert.Throws<InvalidOperationException>(() => new Sequential(4).Build());
            Assert.That(Assert.Throws<ArgumentNullException>(() => new Sequential(null!))!.ParamName, Is.EqualTo("inputShape"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new Sequential(4).Linear(2).Build(init: new Initialization { SigmaWeight = -1 }))!.ParamName,
                        Is.EqualTo("SigmaWeight"));
        }

        [Test]
        public void PaperModelsHaveTheirShapes()
        {
            var mlp = Models.Mlp(new[] { 784, 1024, 200, 100, 10 });
            Assert.That(mlp.Parameters.TotalSize, Is.EqualTo(784 * 1024 + 1024 + 1024 * 200 + 200 + 200 * 100 + 100 + 100 * 10 + 10));
            var mlpImages = Models.Mlp(new[] { 1, 28, 28 }, new[] { 784, 10 }, Activation.Relu);
            Assert.That(mlpImages.Forward(Tensor.Zeros(DType.Float32, 2, 1, 28, 28)).Shape, Is.EqualTo(new[] { 2, 10 }));
            var lenet = Models.LeNet5(3, 32);
            Assert.That(lenet.InputShape, Is.EqualTo(new[] { 3, 32, 32 }));
            Assert.That(lenet.Parameters.Count, Is.EqualTo(10));
            var vgg = Models.Vgg11();
            Assert.That(vgg.OutputShape, Is.EqualTo(new[] { 10 }));
            Assert.That(vgg.Parameters.Count, Is.EqualTo(18));
            var ae = Models.Autoencoder();
            Assert.That(ae.OutputShape, Is.EqualTo(new[] { 784 }));
            Assert.That(ae.Parameters.Count, Is.EqualTo(16));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Models.LeNet5(channels: 2))!.ParamName, Is.EqualTo("channels"));
            Assert.Throws<ArgumentException>(() => Models.Mlp(new[] { 10 }));
            var e = Assert.Throws<ArgumentException>(() => lenet.Forward(Tensor.Zeros(DType.Float32, 2, 1, 28, 28)))!;
            Assert.That(e.Message, Does.Contain("lenet5"));
        }

        [Test]
        public void ParameterSetsSnapshotAndAssign()
        {
            var ps = ParameterSet.Create(("w", Tensor.FromArray(new[] { 1.0, 2.0 })), ("b", Tensor.Scalar(3.0)));
            Assert.That(ps.Names, Is.EqualTo(new[] { "w", "b" }));
            Assert.That(ps.Count, Is.EqualTo(2));
            Assert.That(ps.TotalSize, Is.EqualTo(3));
            var snap = ps.Snapshot();
            ps.Assign(new System.Collections.Generic.Dictionary<string, Tensor> { ["w"] = Tensor.FromArray(new[] { 5.0, 6.0 }), ["b"] = Tensor.Scalar(0.0) });
            Assert.That(ps.ToArray("w"), Is.EqualTo(new[] { 5.0, 6.0 }));
            ps.Assign(snap);
            Assert.That(ps.ToArray("w"), Is.EqualTo(new[] { 1.0, 2.0 }));
            Assert.Throws<ArgumentException>(() => ps.Assign(new System.Collections.Generic.Dictionary<string, Tensor> { ["w"] = Tensor.FromArray(new[] { 5.0 }), ["b"] = Tensor.Scalar(0.0) }));
            Assert.Throws<ArgumentException>(() => _ = ps["nope"]);
            Assert.Throws<ArgumentException>(() => ParameterSet.Create(("w", Tensor.Scalar(1)), ("w", Tensor.Scalar(2))));
            Assert.Throws<ArgumentException>(() => ParameterSet.Create(("i", Tensor.FromLabels(new[] { 1 }))));
            Assert.That(ps.ToString(), Does.Contain("w"));
        }
    }
}
