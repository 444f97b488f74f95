using CoreDtype = global::GroupedNewton.Dtype;
using T = global::GroupedNewton.TensorModule;

namespace GroupedNewton.CSharp
{
    /// <summary>Element type of a tensor.</summary>
    public enum DType
    {
        /// <summary>32-bit floating point (the default for models and data).</summary>
        Float32,
        /// <summary>64-bit floating point.</summary>
        Float64,
        /// <summary>32-bit integers (class labels, indices).</summary>
        Int32,
    }

    internal static class DTypes
    {
        public static CoreDtype ToCore(this DType d) => d switch
        {
            DType.Float32 => CoreDtype.Float32,
            DType.Float64 => CoreDtype.Float64,
            DType.Int32 => CoreDtype.Int32,
            _ => throw new ArgumentOutOfRangeException(nameof(d), d, "unknown dtype"),
        };

        public static DType FromCore(CoreDtype d) =>
            d.IsFloat32 ? DType.Float32 : d.IsFloat64 ? DType.Float64 : DType.Int32;
    }

    /// <summary>
    /// An immutable tensor of the core. Operations return new tensors and are
    /// differentiable: inside an optimizer step or a summary, the tensors computed from a
    /// model's parameters carry the derivatives the core needs (to any order).
    /// </summary>
    public sealed class Tensor
    {
        internal readonly CoreTensor Core;

        internal Tensor(CoreTensor core) { Core = core; }

        internal static Tensor Wrap(CoreTensor core) => new(core);

        /// <summary>The dimensions (a copy).</summary>
        public int[] Shape => Core.Shape;

        /// <summary>The number of dimensions.</summary>
        public int Rank => Core.Rank;

        /// <summary>The number of elements.</summary>
        public int Count => Core.Numel;

        /// <summary>The element type.</summary>
        public DType DType => DTypes.FromCore(Core.Dtype);

        /// <summary>True when the tensor carries derivatives (inside a step or a summary).</summary>
        public bool HasDerivatives => Core.IsDifferentiated;

        // ---- creation ----

        /// <summary>A float64 scalar.</summary>
        /// <param name="value">The value.</param>
        public static Tensor Scalar(double value) => new(T.scalar(value));

        /// <summary>A float64 tensor from row-major values; no shape gives a vector.</summary>
        /// <param name="values">The values, row-major.</param>
        /// <param name="shape">The dimensions (their product must equal the number of values).</param>
        public static Tensor FromArray(double[] values, params int[] shape) =>
            FromArrayOf(Guard.NotNull(values, nameof(values)), values.Length, shape);

        /// <summary>A float32 tensor from row-major values; no shape gives a vector.</summary>
        /// <param name="values">The values, row-major.</param>
        /// <param name="shape">The dimensions (their product must equal the number of values).</param>
        public static Tensor FromArray(float[] values, params int[] shape) =>
            FromArrayOf(Guard.NotNull(values, nameof(values)), values.Length, shape);

        /// <summary>An int32 vector of class labels.</summary>
        /// <param name="labels">The labels.</param>
        public static Tensor FromLabels(int[] labels) =>
            FromArrayOf(Guard.NotNull(labels, nameof(labels)), labels.Length, Array.Empty<int>());

        static Tensor FromArrayOf(Array values, int length, int[]? shape)
        {
            Guard.NotNull(shape, nameof(shape));
            var s = shape!.Length == 0 ? new[] { length } : (int[])shape.Clone();
            long n = 1;
            foreach (var d in s)
            {
                if (d < 0) throw new ArgumentOutOfRangeException(nameof(shape), d, "dimensions must be non-negative");
                n *= d;
            }
            if (n != length)
                throw new ArgumentException($"{length} values do not fill a tensor of shape [{string.Join(", ", s)}]", nameof(values));
            return Guard.Run(() => new Tensor(T.ofArrayShape(values, s)));
        }

        /// <summary>Zeros of a shape and dtype.</summary>
        /// <param name="dtype">The element type.</param>
        /// <param name="shape">The dimensions.</param>
        public static Tensor Zeros(DType dtype, params int[] shape) =>
            Guard.Run(() => new Tensor(T.zerosOf(dtype.ToCore(), Guard.NotNull(shape, nameof(shape)))));

        /// <summary>A constant of a shape and dtype.</summary>
        /// <param name="dtype">The element type.</param>
        /// <param name="value">The value of every element.</param>
        /// <param name="shape">The dimensions.</param>
        public static Tensor Full(DType dtype, double value, params int[] shape) =>
            Guard.Run(() => new Tensor(T.fullOf(dtype.ToCore(), Guard.NotNull(shape, nameof(shape)), value)));

        /// <summary>Standard normal values from an explicit seed (same seed, same values).</summary>
        /// <param name="seed">The seed.</param>
        /// <param name="dtype">Float32 or Float64.</param>
        /// <param name="shape">The dimensions.</param>
        public static Tensor Randn(int seed, DType dtype, params int[] shape) =>
            Guard.Run(() => new Tensor(T.randnOf(dtype.ToCore(), seed, Guard.NotNull(shape, nameof(shape)))));

        // ---- reading ----

        /// <summary>The values as float64, row-major.</summary>
        public double[] ToArray() => Guard.Run(() => T.toArray(Core));

        /// <summary>The values as float32, row-major.</summary>
        public float[] ToFloatArray() => Guard.Run(() => T.toArray32(Core));

        /// <summary>The values as int32, row-major.</summary>
        public int[] ToIntArray() => Guard.Run(() => T.toInts(Core));

        /// <summary>The single value of a one-element tensor.</summary>
        /// <exception cref="ArgumentException">The tensor has more than one element.</exception>
        public double ToScalar() => Guard.Run(() => T.toScalar(Core));

        /// <summary>The same values without derivatives.</summary>
        public Tensor Detach() => new(T.detach(Core));

        /// <summary>The same values in another dtype.</summary>
        /// <param name="dtype">The target element type.</param>
        public Tensor Cast(DType dtype) => Guard.Run(() => new Tensor(T.cast(dtype.ToCore(), Core)));

        /// <summary>Shape and dtype, e.g. <c>Float32 [100, 10]</c>.</summary>
        public override string ToString() => $"{DType} [{string.Join(", ", Shape)}]";

        // ---- arithmetic (NumPy broadcasting) ----

        static Tensor Op(Tensor? a, Tensor? b, string na, string nb, Func<CoreTensor, CoreTensor, CoreTensor> f)
        {
            Guard.NotNull(a, na);
            Guard.NotNull(b, nb);
            return Guard.Run(() => new Tensor(f(a!.Core, b!.Core)));
        }

        static Tensor Op(Tensor? a, string na, Func<CoreTensor, CoreTensor> f)
        {
            Guard.NotNull(a, na);
            return Guard.Run(() => new Tensor(f(a!.Core)));
        }

        /// <summary>Elementwise sum.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator +(Tensor a, Tensor b) => Op(a, b, nameof(a), nameof(b), (x, y) => x + y);
        /// <summary>Adds a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator +(Tensor a, double b) => Op(a, nameof(a), x => x + b);
        /// <summary>Adds a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator +(double a, Tensor b) => Op(b, nameof(b), x => a + x);
        /// <summary>Elementwise difference.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator -(Tensor a, Tensor b) => Op(a, b, nameof(a), nameof(b), (x, y) => x - y);
        /// <summary>Subtracts a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator -(Tensor a, double b) => Op(a, nameof(a), x => x - b);
        /// <summary>A constant minus a tensor.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator -(double a, Tensor b) => Op(b, nameof(b), x => a - x);
        /// <summary>Negation.</summary>
        /// <param name="a">The operand.</param>
        public static Tensor operator -(Tensor a) => Op(a, nameof(a), x => -x);
        /// <summary>Elementwise product.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator *(Tensor a, Tensor b) => Op(a, b, nameof(a), nameof(b), (x, y) => x * y);
        /// <summary>Scales by a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator *(Tensor a, double b) => Op(a, nameof(a), x => x * b);
        /// <summary>Scales by a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator *(double a, Tensor b) => Op(b, nameof(b), x => a * x);
        /// <summary>Elementwise quotient.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator /(Tensor a, Tensor b) => Op(a, b, nameof(a), nameof(b), (x, y) => x / y);
        /// <summary>Divides by a constant.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator /(Tensor a, double b) => Op(a, nameof(a), x => x / b);
        /// <summary>A constant divided elementwise by a tensor.</summary>
        /// <param name="a">Left operand.</param><param name="b">Right operand.</param>
        public static Tensor operator /(double a, Tensor b) => Op(b, nameof(b), x => a / x);

        // ---- functions ----

        /// <summary>Elementwise hyperbolic tangent.</summary>
        public Tensor Tanh() => Op(this, "this", T.tanh);
        /// <summary>Elementwise max(0, x).</summary>
        public Tensor Relu() => Op(this, "this", T.relu);
        /// <summary>Elementwise logistic sigmoid.</summary>
        public Tensor Sigmoid() => Op(this, "this", T.sigmoid);
        /// <summary>Elementwise exponential.</summary>
        public Tensor Exp() => Op(this, "this", T.exp);
        /// <summary>Elementwise natural logarithm.</summary>
        public Tensor Log() => Op(this, "this", T.log);
        /// <summary>Elementwise square root.</summary>
        public Tensor Sqrt() => Op(this, "this", T.sqrt);
        /// <summary>Elementwise absolute value.</summary>
        public Tensor Abs() => Op(this, "this", T.abs);
        /// <summary>Elementwise power by a real constant.</summary>
        /// <param name="exponent">The exponent.</param>
        public Tensor Pow(double exponent) => Op(this, "this", x => T.powScalar(exponent, x));
        /// <summary>The sum of all elements (a scalar).</summary>
        public Tensor Sum() => Op(this, "this", T.sum);
        /// <summary>The mean of all elements (a scalar).</summary>
        public Tensor Mean() => Op(this, "this", T.mean);
        // ---- along an axis (negative axes count from the last one, -1) ----

        /// <summary>The sum along an axis.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        /// <param name="keepDims">Keep the axis with size 1 (default: remove it).</param>
        public Tensor Sum(int axis, bool keepDims = false) => Op(this, "this", x => T.sumDim(axis, keepDims, x));

        /// <summary>The mean along an axis.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        /// <param name="keepDims">Keep the axis with size 1 (default: remove it).</param>
        public Tensor Mean(int axis, bool keepDims = false) => Op(this, "this", x => T.meanDim(axis, keepDims, x));

        /// <summary>The largest entry along an axis. Differentiable: the derivative goes to the largest
        /// entry (the first one where several are equal), as in PyTorch.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        /// <param name="keepDims">Keep the axis with size 1 (default: remove it).</param>
        public Tensor Max(int axis, bool keepDims = false) => Op(this, "this", x =>
        {
            var at = T.argMax(axis, x);
            var d = axis < 0 ? axis + x.Rank : axis;
            var picked = T.gather(d, T.unsqueeze(d, at), x);
            return keepDims ? picked : T.squeeze(d, picked);
        });

        /// <summary>The index of the largest entry along an axis (the first one where several are
        /// equal), as int32 without derivatives; the axis is removed.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        public Tensor ArgMax(int axis) => Op(this, "this", x => T.argMax(axis, x));

        /// <summary>exp(x) / Σ exp(x) along an axis, computed stably; differentiable.</summary>
        /// <param name="axis">The axis whose entries sum to 1 (negative: from the end).</param>
        public Tensor Softmax(int axis) => Op(this, "this", x => T.exp(T.logSoftmax(axis, x)));

        /// <summary>x − log Σ exp(x) along an axis, computed stably; differentiable.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        public Tensor LogSoftmax(int axis) => Op(this, "this", x => T.logSoftmax(axis, x));

        /// <summary>The entries <paramref name="start"/> .. <paramref name="start"/> + <paramref name="length"/> − 1
        /// along an axis (the other axes whole); differentiable.</summary>
        /// <param name="axis">The axis (negative: from the end).</param>
        /// <param name="start">The first index kept.</param>
        /// <param name="length">How many indices are kept.</param>
        public Tensor Slice(int axis, int start, int length) => Op(this, "this", x => T.narrow(axis, start, length, x));

        /// <summary>Entry <paramref name="index"/> along the first axis, which is removed: <c>batch[0]</c> is the
        /// first sample, <c>batch[^1]</c> the last; differentiable.</summary>
        /// <param name="index">The index (from the end with <c>^</c>).</param>
        /// <exception cref="ArgumentException">The tensor is a scalar, or the index is outside the first axis.</exception>
        public Tensor this[Index index]
        {
            get
            {
                var n = FirstAxis();
                var i = index.GetOffset(n);
                if (i < 0 || i >= n)
                    throw new ArgumentOutOfRangeException(nameof(index), index.ToString(), $"index outside the first axis of {this}");
                return Op(this, "this", x => T.squeeze(0, T.narrow(0, i, 1, x)));
            }
        }

        /// <summary>A range along the first axis, which is kept: <c>batch[10..20]</c> are samples 10 to 19;
        /// differentiable.</summary>
        /// <param name="range">The range (ends from the end with <c>^</c>).</param>
        /// <exception cref="ArgumentException">The tensor is a scalar, or the range is outside the first axis.</exception>
        public Tensor this[Range range]
        {
            get
            {
                var n = FirstAxis();
                int start, length;
                try { (start, length) = range.GetOffsetAndLength(n); }
                catch (ArgumentOutOfRangeException) { throw new ArgumentOutOfRangeException(nameof(range), range.ToString(), $"range outside the first axis of {this}"); }
                return Op(this, "this", x => T.narrow(0, start, length, x));
            }
        }

        int FirstAxis() =>
            Rank > 0 ? Core.Shape[0] : throw new ArgumentException($"a scalar has no axis to index ({this})", "this");

        /// <summary>Matrix product (2-D operands).</summary>
        /// <param name="other">The right operand.</param>
        public Tensor MatMul(Tensor other) => Op(this, other, "this", nameof(other), T.matmul);
        /// <summary>The 2-D transpose.</summary>
        public Tensor Transpose() => Op(this, "this", T.transpose);
        /// <summary>The same values in another shape (one dimension may be -1).</summary>
        /// <param name="shape">The new dimensions.</param>
        public Tensor Reshape(params int[] shape)
        {
            Guard.NotNull(shape, nameof(shape));
            return Op(this, "this", x => T.view(shape, x));
        }
    }

    /// <summary>Training losses and metrics on tensors.</summary>
    public static class Loss
    {
        /// <summary>Mean cross-entropy of int32 labels [N] under logits [N, K].</summary>
        /// <param name="logits">The model output.</param>
        /// <param name="labels">The class labels.</param>
        public static Tensor CrossEntropy(Tensor logits, Tensor labels) =>
            Bin(logits, labels, nameof(logits), nameof(labels), global::GroupedNewton.Losses.crossEntropy);

        /// <summary>Mean squared error over all elements (shapes must agree).</summary>
        /// <param name="prediction">The model output.</param>
        /// <param name="target">The targets.</param>
        public static Tensor MeanSquaredError(Tensor prediction, Tensor target) =>
            Bin(prediction, target, nameof(prediction), nameof(target), global::GroupedNewton.Losses.mse);

        /// <summary>Binary cross-entropy of targets in [0, 1] under logits, summed over a
        /// sample's features and averaged over the batch (the autoencoder loss).</summary>
        /// <param name="logits">The model output.</param>
        /// <param name="targets">The targets, same shape.</param>
        public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor targets) =>
            Bin(logits, targets, nameof(logits), nameof(targets), global::GroupedNewton.Losses.bceWithLogits);

        /// <summary>½‖output − target‖² summed over a sample's features, averaged over the batch.</summary>
        /// <param name="output">The model output.</param>
        /// <param name="targets">The targets, same shape.</param>
        public static Tensor HalfSquaredError(Tensor output, Tensor targets) =>
            Bin(output, targets, nameof(output), nameof(targets), global::GroupedNewton.Losses.halfSquaredError);

        /// <summary>The fraction of rows whose largest logit is at the label.</summary>
        /// <param name="logits">The model output [N, K].</param>
        /// <param name="labels">The class labels [N].</param>
        public static double Accuracy(Tensor logits, Tensor labels)
        {
            Guard.NotNull(logits, nameof(logits));
            Guard.NotNull(labels, nameof(labels));
            return Guard.Run(() => global::GroupedNewton.Losses.accuracy(logits.Core, labels.Core));
        }

        static Tensor Bin(Tensor a, Tensor b, string na, string nb, Func<CoreTensor, CoreTensor, CoreTensor> f)
        {
            Guard.NotNull(a, na);
            Guard.NotNull(b, nb);
            return Guard.Run(() => new Tensor(f(a.Core, b.Core)));
        }
    }
}
