using System;
using System.Linq;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>Reductions, softmax and indexing along an axis: values computed by hand, and the
    /// gradients they pass on (read off one SGD step at learning rate 1: θ' = θ − ∇).</summary>
    public class TensorAxisTests
    {
        // [[1, 5, 3], [4, 2, 6]]
        static Tensor X() => Tensor.FromArray(new[] { 1.0, 5.0, 3.0, 4.0, 2.0, 6.0 }, 2, 3);

        static double[] Gradient(Tensor at, Func<Tensor, Tensor> loss)
        {
            var ps = ParameterSet.Create(("x", at));
            var sgd = Optimizer.Create(ps, new SgdOptions { LearningRate = 1.0 });
            sgd.Step(() => loss(ps["x"]));
            return at.ToArray().Zip(ps.ToArray("x"), (before, after) => before - after).ToArray();
        }

        static double[] Softmax(double[] row)
        {
            var e = row.Select(Math.Exp).ToArray();
            return e.Select(v => v / e.Sum()).ToArray();
        }

        [Test]
        public void SumAndMeanAlongAnAxis()
        {
            var x = X();
            Assert.That(x.Sum(0).ToArray(), Is.EqualTo(new[] { 5.0, 7.0, 9.0 }));
            Assert.That(x.Sum(1).ToArray(), Is.EqualTo(new[] { 9.0, 12.0 }));
            Assert.That(x.Sum(-1).ToArray(), Is.EqualTo(new[] { 9.0, 12.0 }));
            Assert.That(x.Sum(1, keepDims: true).Shape, Is.EqualTo(new[] { 2, 1 }));
            Assert.That(x.Mean(0).ToArray(), Is.EqualTo(new[] { 2.5, 3.5, 4.5 }));
            Assert.That(x.Mean(1).ToArray(), Is.EqualTo(new[] { 3.0, 4.0 }));
            Assert.That(x.Mean(0, keepDims: true).Shape, Is.EqualTo(new[] { 1, 3 }));
            var w = Tensor.FromArray(new[] { 1.0, 2.0, 3.0 });
            Assert.That(Gradient(x, p => (p.Sum(0) * w).Sum()), Is.EqualTo(new[] { 1.0, 2, 3, 1, 2, 3 }).Within(1e-12));
            var v = Tensor.FromArray(new[] { 1.0, 2.0 });
            Assert.That(Gradient(x, p => (p.Mean(1) * v).Sum()), Is.EqualTo(new[] { 1 / 3.0, 1 / 3.0, 1 / 3.0, 2 / 3.0, 2 / 3.0, 2 / 3.0 }).Within(1e-12));
        }

        [Test]
        public void MaxAndArgMaxAlongAnAxis()
        {
            var x = X();
            Assert.That(x.Max(1).ToArray(), Is.EqualTo(new[] { 5.0, 6.0 }));
            Assert.That(x.Max(0).ToArray(), Is.EqualTo(new[] { 4.0, 5.0, 6.0 }));
            Assert.That(x.Max(-1, keepDims: true).Shape, Is.EqualTo(new[] { 2, 1 }));
            var arg = x.ArgMax(1);
            Assert.That(arg.DType, Is.EqualTo(DType.Int32));
            Assert.That(arg.ToIntArray(), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(x.ArgMax(0).ToIntArray(), Is.EqualTo(new[] { 1, 0, 1 }));
            // the derivative of the max goes to the largest entry of each row
            var w = Tensor.FromArray(new[] { 1.0, 2.0 });
            Assert.That(Gradient(x, p => (p.Max(1) * w).Sum()), Is.EqualTo(new[] { 0.0, 1, 0, 0, 0, 2 }).Within(1e-12));
            // ties: the first of the equal entries
            var tie = Tensor.FromArray(new[] { 2.0, 2.0, 1.0 });
            Assert.That(tie.ArgMax(0).ToIntArray(), Is.EqualTo(new[] { 0 }));
            Assert.That(Gradient(tie, p => p.Max(0) * 3.0), Is.EqualTo(new[] { 3.0, 0, 0 }).Within(1e-12));
        }

        [Test]
        public void SoftmaxAndLogSoftmaxAlongAnAxis()
        {
            var x = X();
            var rows = new[] { new[] { 1.0, 5, 3 }, new[] { 4.0, 2, 6 } };
            var s = rows.SelectMany(Softmax).ToArray();
            Assert.That(x.Softmax(1).ToArray(), Is.EqualTo(s).Within(1e-14));
            Assert.That(x.Softmax(1).Sum(1).ToArray(), Is.EqualTo(new[] { 1.0, 1.0 }).Within(1e-14));
            Assert.That(x.LogSoftmax(-1).ToArray(), Is.EqualTo(s.Select(v => Math.Log(v)).ToArray()).Within(1e-13));
            // along the first axis: columns sum to 1
            Assert.That(x.Softmax(0).ToArray()[0], Is.EqualTo(Math.Exp(1) / (Math.Exp(1) + Math.Exp(4))).Within(1e-15));
            // d/dx_ij Σ w·softmax = s_ij (w_ij − Σ_k s_ik w_ik);  d/dx_ij Σ w·logsoftmax = w_ij − s_ij Σ_k w_ik
            var w = new[] { 1.0, -2.0, 0.5, 3.0, 1.0, -1.0 };
            var wt = Tensor.FromArray(w, 2, 3);
            var expectSoft = new double[6];
            var expectLog = new double[6];
            for (int i = 0; i < 2; i++)
            {
                double sw = 0, ws = 0;
                for (int k = 0; k < 3; k++) { sw += s[3 * i + k] * w[3 * i + k]; ws += w[3 * i + k]; }
                for (int j = 0; j < 3; j++)
                {
                    expectSoft[3 * i + j] = s[3 * i + j] * (w[3 * i + j] - sw);
                    expectLog[3 * i + j] = w[3 * i + j] - s[3 * i + j] * ws;
                }
            }
            Assert.That(Gradient(x, p => (p.Softmax(1) * wt).Sum()), Is.EqualTo(expectSoft).Within(1e-12));
            Assert.That(Gradient(x, p => (p.LogSoftmax(1) * wt).Sum()), Is.EqualTo(expectLog).Within(1e-12));
        }

        [Test]
        public void SlicesAndIndexing()
        {
            var x = X();
            var s = x.Slice(1, 1, 2);
            Assert.That(s.Shape, Is.EqualTo(new[] { 2, 2 }));
            Assert.That(s.ToArray(), Is.EqualTo(new[] { 5.0, 3, 2, 6 }));
            Assert.That(x.Slice(-2, 1, 1).ToArray(), Is.EqualTo(new[] { 4.0, 2, 6 }));
            Assert.That(x[1].Shape, Is.EqualTo(new[] { 3 }));
            Assert.That(x[1].ToArray(), Is.EqualTo(new[] { 4.0, 2, 6 }));
            Assert.That(x[^2].ToArray(), Is.EqualTo(new[] { 1.0, 5, 3 }));
            Assert.That(x[0..1].Shape, Is.EqualTo(new[] { 1, 3 }));
            Assert.That(x[1..].ToArray(), Is.EqualTo(new[] { 4.0, 2, 6 }));
            Assert.That(x[..].ToArray(), Is.EqualTo(x.ToArray()));
            Assert.That(x[1][2].ToScalar(), Is.EqualTo(6.0));
            var w = Tensor.FromArray(new[] { 1.0, 2.0, 3.0, 4.0 }, 2, 2);
            Assert.That(Gradient(x, p => (p.Slice(1, 1, 2) * w).Sum()), Is.EqualTo(new[] { 0.0, 1, 2, 0, 3, 4 }).Within(1e-12));
            var v = Tensor.FromArray(new[] { 1.0, 2.0, 3.0 });
            Assert.That(Gradient(x, p => (p[^1] * v).Sum()), Is.EqualTo(new[] { 0.0, 0, 0, 1, 2, 3 }).Within(1e-12));
            Assert.That(Gradient(x, p => (p[..1].Sum(0) * v).Sum()), Is.EqualTo(new[] { 1.0, 2, 3, 0, 0, 0 }).Within(1e-12));
        }

        [Test]
        public void ACustomLossWrittenWithAxisOpsIsCrossEntropy()
        {
            // the README's line: -(logits.LogSoftmax(1) * oneHot).Sum(1).Mean()
            var logits = X();
            var labels = new[] { 2, 0 };
            var oneHot = Tensor.FromArray(new[] { 0.0, 0, 1, 1, 0, 0 }, 2, 3);
            Tensor Custom(Tensor z) => -(z.LogSoftmax(1) * oneHot).Sum(1).Mean();
            Tensor Library(Tensor z) => Loss.CrossEntropy(z, Tensor.FromLabels(labels));
            Assert.That(Custom(logits).ToScalar(), Is.EqualTo(Library(logits).ToScalar()).Within(1e-14));
            Assert.That(Gradient(logits, Custom), Is.EqualTo(Gradient(logits, Library)).Within(1e-12));
        }

        [Test]
        public void BadAxesAndIndicesThrowStandardExceptions()
        {
            var x = X();
            var e = Assert.Throws<ArgumentException>(() => x.Sum(2))!;
            Assert.That(e.Message, Does.Contain("dimension 2").And.Contain("rank 2"));
            Assert.Throws<ArgumentException>(() => x.Max(-3));
            Assert.Throws<ArgumentException>(() => x.Softmax(5));
            Assert.Throws<ArgumentException>(() => x.Slice(1, 2, 2));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = x[2])!.ParamName, Is.EqualTo("index"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = x[^3])!.ParamName, Is.EqualTo("index"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = x[1..4])!.ParamName, Is.EqualTo("range"));
            Assert.Throws<ArgumentException>(() => _ = Tensor.Scalar(1.0)[0]);
        }
    }
}
