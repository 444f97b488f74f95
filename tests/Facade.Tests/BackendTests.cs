using System;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>The process-wide backend and thread count, set from code (each test puts them back).</summary>
    [NonParallelizable]
    public class BackendTests
    {
        [Test]
        public void TheThreadCountIsSetInCode()
        {
            var before = Backend.Threads;
            try
            {
                Assert.That(before, Is.GreaterThanOrEqualTo(1));
                var x = Tensor.Randn(1, DType.Float64, 300, 200);
                var y = Tensor.Randn(2, DType.Float64, 200, 100);
                Backend.Threads = 1;
                Assert.That(Backend.Threads, Is.EqualTo(1));
                var one = x.MatMul(y).ToArray();
                Backend.Threads = 3;
                Assert.That(Backend.Threads, Is.EqualTo(3));
                var three = x.MatMul(y).ToArray();
                Assert.That(three, Is.EqualTo(one).Within(1e-9));
                var e = Assert.Throws<ArgumentOutOfRangeException>(() => Backend.Threads = 0)!;
                Assert.That(e.ParamName, Is.EqualTo("value"));
                Assert.That(Backend.Threads, Is.EqualTo(3));
            }
            finally
            {
                Backend.Threads = before;
            }
        }

        [Test]
        public void BackendsAreSelectedByName()
        {
            var before = Backend.Current;
            try
            {
                Backend.Use("managed");
                Assert.That(Backend.Current, Is.EqualTo("managed"));
                var e = Assert.Throws<InvalidOperationException>(() => Backend.Use("tpu"))!;
                Assert.That(e.Message, Does.Contain("'tpu'").And.Contain("managed"));
                Assert.That(Backend.Current, Is.EqualTo("managed"));
                Assert.Throws<ArgumentException>(() => Backend.Use(" "));
                Assert.That(Assert.Throws<ArgumentNullException>(() => Backend.Use(null!))!.ParamName, Is.EqualTo("name"));
                if (Backend.IsTorchAvailable)
                {
                    Assert.That(Backend.TorchUnavailableReason, Is.Null);
                    Backend.Use("torch");
                    Assert.That(Backend.Current, Is.EqualTo("torch"));
                    Assert.That((Tensor.FromArray(new[] { 1.0, 2.0 }) * 3.0).ToArray(), Is.EqualTo(new[] { 3.0, 6.0 }));
                }
                else
                {
                    // the shim's absence is an exception saying why, and nothing changes
                    var reason = Backend.TorchUnavailableReason;
                    Assert.That(reason, Is.Not.Null.And.Not.Empty);
                    foreach (var name in new[] { "torch", "torch:cuda:0" })
                    {
                        var t = Assert.Throws<InvalidOperationException>(() => Backend.Use(name))!;
                        Assert.That(t.Message, Does.Contain(reason!));
                        Assert.That(Backend.Current, Is.EqualTo("managed"));
                    }
                }
            }
            finally
            {
                Backend.Use(before);
            }
        }
    }
}
