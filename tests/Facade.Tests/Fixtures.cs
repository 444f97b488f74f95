using System;
using System.Linq;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>Small tasks shared by the tests.</summary>
    internal static class Fixtures
    {
        public static Dataset Task(int count = 400, int seed = 1) =>
            Datasets.SyntheticClassification(seed, count, new[] { 20 }, 4);

        public static Model Mlp(int seed = 0, DType dtype = DType.Float32) =>
            Models.Mlp(new[] { 20, 16, 4 }, Activation.Tanh, new Initialization { Seed = seed, DType = dtype });

        /// <summary>The whole data set as one batch.</summary>
        public static Batch All(Dataset data, DType dtype = DType.Float32) =>
            data.Batches(data.Count, shuffle: false, dtype: dtype).Single();

        public static Func<Tensor> LossOn(Model model, Batch batch) =>
            () => Loss.CrossEntropy(model.Forward(batch.Inputs), batch.Labels!);

        public static double[] Flat(ParameterSet ps) => ps.Names.SelectMany(n => ps.ToArray(n)).ToArray();
    }
}
