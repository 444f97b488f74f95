using CoreBatch = global::GroupedNewton.Data.Batch;
using CoreDataset = global::GroupedNewton.Data.Dataset;
using CoreDatasets = global::GroupedNewton.Data.Datasets;
using CoreLoader = global::GroupedNewton.Data.Loader;
using CoreLoaderOptions = global::GroupedNewton.Data.LoaderOptions;
using DS = global::GroupedNewton.Data.DatasetModule;

namespace GroupedNewton.CSharp
{
    /// <summary>What a model is trained to do.</summary>
    public enum Objective
    {
        /// <summary>Cross-entropy of class labels under the model's logits; accuracy is reported.</summary>
        Classification,
        /// <summary>Mean squared error against real-valued targets.</summary>
        Regression,
        /// <summary>Autoencoder: binary cross-entropy of the inputs under the model's logits.</summary>
        Reconstruction,
    }

    internal static class Objectives
    {
        public static global::GroupedNewton.Objective ToCore(this Objective o) => o switch
        {
            Objective.Classification => global::GroupedNewton.Objective.Classification,
            Objective.Regression => global::GroupedNewton.Objective.Regression,
            Objective.Reconstruction => global::GroupedNewton.Objective.Reconstruction,
            _ => throw new ArgumentOutOfRangeException(nameof(o), o, "unknown objective"),
        };
    }

    /// <summary>An immutable in-memory data set: samples of one shape with class labels or real-valued targets.</summary>
    public sealed class Dataset
    {
        internal readonly CoreDataset Core;

        internal Dataset(CoreDataset core) { Core = core; }

        /// <summary>The name, e.g. <c>fashion-mnist/train</c>.</summary>
        public string Name => Core.Name;

        /// <summary>The number of samples.</summary>
        public int Count => Core.Count;

        /// <summary>The shape of one sample, e.g. [1, 28, 28].</summary>
        public int[] SampleShape => Core.SampleShape;

        /// <summary>The number of classes; 0 for real-valued targets.</summary>
        public int Classes => Core.Classes;

        /// <summary>True when the targets are class labels.</summary>
        public bool IsClassification => Core.IsClassification;

        /// <summary>A classification data set from your own arrays. The arrays are copied.</summary>
        /// <param name="samples">N samples of <paramref name="sampleShape"/>, one after the other
        /// (N × product(sampleShape) values, row-major).</param>
        /// <param name="sampleShape">The shape of one sample, e.g. [1, 28, 28] or [4].</param>
        /// <param name="labels">One class in 0 .. classes − 1 per sample.</param>
        /// <param name="classes">The number of classes (≥ 1).</param>
        /// <exception cref="ArgumentNullException">An array is null.</exception>
        /// <exception cref="ArgumentException">The lengths disagree (the message names both numbers),
        /// a dimension is not positive, or a label is out of range.</exception>
        /// <example><code>
        /// var data = Dataset.FromArrays(samples, new[] { 4 }, labels, classes: 3);
        /// </code></example>
        public static Dataset FromArrays(float[] samples, int[] sampleShape, int[] labels, int classes) =>
            WithLabels(samples, sampleShape, labels, classes, DS.ofArrays);

        /// <summary>A classification data set from float64 samples (stored as float32). The arrays are copied.</summary>
        /// <param name="samples">N samples of <paramref name="sampleShape"/>, one after the other.</param>
        /// <param name="sampleShape">The shape of one sample.</param>
        /// <param name="labels">One class in 0 .. classes − 1 per sample.</param>
        /// <param name="classes">The number of classes (≥ 1).</param>
        public static Dataset FromArrays(double[] samples, int[] sampleShape, int[] labels, int classes) =>
            WithLabels(samples, sampleShape, labels, classes, DS.ofArrays64);

        /// <summary>A regression data set from your own arrays. The arrays are copied.</summary>
        /// <param name="samples">N samples of <paramref name="sampleShape"/>, one after the other.</param>
        /// <param name="sampleShape">The shape of one sample.</param>
        /// <param name="targets">N targets of <paramref name="targetShape"/>, one after the other.</param>
        /// <param name="targetShape">The shape of one target, e.g. [1].</param>
        /// <exception cref="ArgumentException">The lengths disagree (the message names both numbers).</exception>
        public static Dataset FromArrays(float[] samples, int[] sampleShape, float[] targets, int[] targetShape) =>
            WithTargets(samples, sampleShape, targets, targetShape, DS.ofTargetArrays);

        /// <summary>A regression data set from float64 arrays (stored as float32). The arrays are copied.</summary>
        /// <param name="samples">N samples of <paramref name="sampleShape"/>, one after the other.</param>
        /// <param name="sampleShape">The shape of one sample.</param>
        /// <param name="targets">N targets of <paramref name="targetShape"/>, one after the other.</param>
        /// <param name="targetShape">The shape of one target.</param>
        public static Dataset FromArrays(double[] samples, int[] sampleShape, double[] targets, int[] targetShape) =>
            WithTargets(samples, sampleShape, targets, targetShape, DS.ofTargetArrays64);

        // What the FromArrays overloads share: the null checks (named as the public parameters),
        // then the core constructor for the element type, its errors translated by Guard.Run.
        static Dataset WithLabels<T>(T[] samples, int[] sampleShape, int[] labels, int classes, Func<int[], T[], int[], int, CoreDataset> make)
        {
            Guard.NotNull(samples, nameof(samples));
            Guard.NotNull(sampleShape, nameof(sampleShape));
            Guard.NotNull(labels, nameof(labels));
            return new Dataset(Guard.Run(() => make(sampleShape, samples, labels, classes)));
        }

        static Dataset WithTargets<T>(T[] samples, int[] sampleShape, T[] targets, int[] targetShape, Func<int[], T[], T[], int[], CoreDataset> make)
        {
            Guard.NotNull(samples, nameof(samples));
            Guard.NotNull(sampleShape, nameof(sampleShape));
            Guard.NotNull(targets, nameof(targets));
            Guard.NotNull(targetShape, nameof(targetShape));
            return new Dataset(Guard.Run(() => make(sampleShape, samples, targets, targetShape)));
        }

        /// <summary>All samples as one tensor [Count, ..SampleShape], e.g. for
        /// <see cref="Model.Predict"/>.</summary>
        /// <param name="dtype">Float32 (default) or Float64.</param>
        public Tensor Inputs(DType dtype = DType.Float32)
        {
            if (dtype == DType.Int32) throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "inputs must be Float32 or Float64");
            return new Tensor(Guard.Run(() => DS.inputs(dtype.ToCore(), Core)));
        }

        /// <summary>The real-valued targets, flat (a copy).</summary>
        /// <exception cref="InvalidOperationException">The data set has class labels.</exception>
        public float[] Targets() => Guard.Run(() => DS.targetValues(Core));

        /// <summary>The class labels (a copy).</summary>
        /// <exception cref="InvalidOperationException">The data set has real-valued targets.</exception>
        public int[] Labels() => Guard.Run(() => DS.labels(Core));

        /// <summary>The first <paramref name="count"/> samples (e.g. for a quick run).</summary>
        /// <param name="count">How many samples, at most <see cref="Count"/>.</param>
        public Dataset Take(int count)
        {
            if (count < 0 || count > Count) throw new ArgumentOutOfRangeException(nameof(count), count, $"must be in 0 .. {Count}");
            return new Dataset(Guard.Run(() => DS.take(count, Core)));
        }

        /// <summary>Splits off the last <paramref name="validationCount"/> samples for validation, without shuffling.</summary>
        /// <param name="validationCount">Samples in the validation part.</param>
        public (Dataset Train, Dataset Validation) SplitAt(int validationCount)
        {
            if (validationCount < 0 || validationCount > Count)
                throw new ArgumentOutOfRangeException(nameof(validationCount), validationCount, $"must be in 0 .. {Count}");
            var (t, v) = Guard.Run(() => DS.splitAt(validationCount, Core)).ToValueTuple();
            return (new Dataset(t), new Dataset(v));
        }

        /// <summary>A seeded random split with round(fraction × Count) samples for validation.</summary>
        /// <param name="validationFraction">In [0, 1].</param>
        /// <param name="seed">The seed of the permutation.</param>
        public (Dataset Train, Dataset Validation) Split(double validationFraction, int seed = 0)
        {
            if (!(validationFraction >= 0 && validationFraction <= 1))
                throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "must be in [0, 1]");
            var (t, v) = Guard.Run(() => DS.split(validationFraction, seed, Core)).ToValueTuple();
            return (new Dataset(t), new Dataset(v));
        }

        /// <summary>Per-channel mean and standard deviation over all samples.</summary>
        public (double[] Mean, double[] Std) ChannelStats()
        {
            var (m, s) = Guard.Run(() => DS.channelStats(Core)).ToValueTuple();
            return (m, s);
        }

        /// <summary>x ← (x − mean[c]) / std[c] per channel.</summary>
        /// <param name="mean">One mean per channel.</param>
        /// <param name="std">One positive standard deviation per channel.</param>
        public Dataset Normalize(double[] mean, double[] std)
        {
            Guard.NotNull(mean, nameof(mean));
            Guard.NotNull(std, nameof(std));
            return new Dataset(Guard.Run(() => DS.normalize(mean, std, Core)));
        }

        /// <summary>The mini-batches of one epoch, built lazily. With shuffling the order depends
        /// only on (seed, epoch).</summary>
        /// <param name="batchSize">Samples per batch.</param>
        /// <param name="shuffle">Visit the samples in a seeded random order.</param>
        /// <param name="seed">The seed of the order.</param>
        /// <param name="epoch">The epoch number (a new order per epoch).</param>
        /// <param name="dtype">Float32 (default) or Float64 inputs.</param>
        public IEnumerable<Batch> Batches(int batchSize, bool shuffle = true, int seed = 0, int epoch = 0, DType dtype = DType.Float32)
        {
            var options = LoaderOptions(batchSize, shuffle, seed, dtype);
            var seq = Guard.Run(() => CoreLoader.batches(options, Core, epoch));
            return Enumerate(seq);
        }

        internal static CoreLoaderOptions LoaderOptions(int batchSize, bool shuffle, int seed, DType dtype)
        {
            if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be at least 1");
            if (dtype == DType.Int32) throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "inputs must be Float32 or Float64");
            return new CoreLoaderOptions(batchSize: batchSize, shuffle: shuffle, seed: seed, dropLast: false, dtype: dtype.ToCore());
        }

        internal static IEnumerable<Batch> Enumerate(IEnumerable<CoreBatch> seq)
        {
            using var e = seq.GetEnumerator();
            while (Guard.Run(() => e.MoveNext())) yield return new Batch(e.Current);
        }

        /// <summary>Name, size, sample shape and targets.</summary>
        public override string ToString() => Guard.Notation(Core.ToString());
    }

    /// <summary>One mini-batch of a data set.</summary>
    public sealed class Batch
    {
        internal readonly CoreBatch Core;

        internal Batch(CoreBatch core) { Core = core; }

        /// <summary>The inputs [B, ..SampleShape].</summary>
        public Tensor Inputs => new(Core.Inputs);

        /// <summary>The int32 class labels [B], or null for real-valued targets.</summary>
        public Tensor? Labels => Core.Labels is { } l ? new Tensor(l.Value) : null;

        /// <summary>The real-valued targets, or null for class labels.</summary>
        public Tensor? Targets => Core.Targets is { } t ? new Tensor(t.Value) : null;

        /// <summary>The number of samples.</summary>
        public int Size => Core.Size;

        /// <summary>The loss of a model output on this batch for an objective.</summary>
        /// <param name="output">The model output for <see cref="Inputs"/>.</param>
        /// <param name="objective">The objective.</param>
        public Tensor Loss(Tensor output, Objective objective = Objective.Classification)
        {
            Guard.NotNull(output, nameof(output));
            return Guard.Run(() => new Tensor(global::GroupedNewton.ObjectiveModule.loss(objective.ToCore(), output.Core, Core)));
        }
    }

    /// <summary>The standard data sets and the synthetic tasks.</summary>
    /// <remarks>
    /// Without a directory, data sets are searched below the folder named by the environment
    /// variable <c>GROUPEDNEWTON_DATA</c>, then (Fashion-MNIST) in
    /// <c>/usr/share/datasets/fashion-mnist</c>. Loading reads and decodes files on a thread-pool
    /// thread. A data set that is not found gives <see cref="FileNotFoundException"/> whose
    /// message lists the places searched; a malformed file gives <see cref="InvalidDataException"/>.
    /// </remarks>
    public static class Datasets
    {
        /// <summary>The known names: <c>fashion-mnist</c>, <c>mnist</c>, <c>cifar10</c>.</summary>
        public static IReadOnlyList<string> Names => CoreDatasets.names.ToArray();

        /// <summary>True when the named data set is found in the default places.</summary>
        /// <param name="name">A known name.</param>
        /// <exception cref="ArgumentException">The name is unknown.</exception>
        public static bool IsAvailable(string name)
        {
            Guard.NotNull(name, nameof(name));
            return Guard.Run(() => CoreDatasets.isAvailable(name));
        }

        /// <summary>Loads (train, test) of a data set by name, from a directory or the default places.</summary>
        /// <param name="name"><c>fashion-mnist</c>, <c>mnist</c> or <c>cifar10</c>.</param>
        /// <param name="directory">A folder holding the files (or a subfolder named after the data set); null for the default places.</param>
        /// <param name="cancellationToken">Cancels before the files are read.</param>
        public static Task<DatasetPair> LoadAsync(string name, string? directory = null, CancellationToken cancellationToken = default)
        {
            Guard.NotNull(name, nameof(name));
            // an unknown name is reported now, not through the task
            Guard.Run(() => CoreDatasets.searchPaths(name));
            return Task.Run(() =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    if (directory is null) CoreDatasets.locate(name); else CoreDatasets.locateFrom(name, directory);
                }
                catch (global::GroupedNewton.Data.DataException e)
                {
                    throw new FileNotFoundException(e.Message, e);
                }
                var pair = Guard.Run(() => directory is null ? CoreDatasets.load(name) : CoreDatasets.loadFrom(name, directory));
                return new DatasetPair(new Dataset(pair.Item1), new Dataset(pair.Item2));
            }, cancellationToken);
        }

        /// <summary>Fashion-MNIST: 60000 training and 10000 test images [1, 28, 28] in [0, 1], 10 classes.</summary>
        /// <param name="directory">A folder holding the IDX files; null for the default places.</param>
        /// <param name="cancellationToken">Cancels before the files are read.</param>
        public static Task<DatasetPair> LoadFashionMnistAsync(string? directory = null, CancellationToken cancellationToken = default) =>
            LoadAsync("fashion-mnist", directory, cancellationToken);

        /// <summary>MNIST: 60000 training and 10000 test images [1, 28, 28] in [0, 1], 10 classes.</summary>
        /// <param name="directory">A folder holding the IDX files; null for the default places.</param>
        /// <param name="cancellationToken">Cancels before the files are read.</param>
        public static Task<DatasetPair> LoadMnistAsync(string? directory = null, CancellationToken cancellationToken = default) =>
            LoadAsync("mnist", directory, cancellationToken);

        /// <summary>CIFAR-10 (binary version): 50000 training and 10000 test images [3, 32, 32] in [0, 1].</summary>
        /// <param name="directory">A folder holding cifar-10-batches-bin; null for the default places.</param>
        /// <param name="cancellationToken">Cancels before the files are read.</param>
        public static Task<DatasetPair> LoadCifar10Async(string? directory = null, CancellationToken cancellationToken = default) =>
            LoadAsync("cifar10", directory, cancellationToken);

        /// <summary>A seeded classification task that needs no files: N(0, 1) inputs labelled by a
        /// fixed random teacher network (same seed, same data).</summary>
        /// <param name="seed">The seed.</param>
        /// <param name="count">The number of samples.</param>
        /// <param name="sampleShape">The shape of one sample, e.g. [1, 28, 28].</param>
        /// <param name="classes">The number of classes.</param>
        public static Dataset SyntheticClassification(int seed, int count, int[] sampleShape, int classes)
        {
            Guard.NotNull(sampleShape, nameof(sampleShape));
            return new Dataset(Guard.Run(() => global::GroupedNewton.Data.Synthetic.teacherClassification(seed, count, sampleShape, classes)));
        }

        /// <summary>A seeded regression task: N(0, 1) inputs, targets from a random teacher plus noise.</summary>
        /// <param name="seed">The seed.</param>
        /// <param name="count">The number of samples.</param>
        /// <param name="inputSize">Input size.</param>
        /// <param name="outputSize">Target size.</param>
        /// <param name="noise">Standard deviation of the added noise (≥ 0).</param>
        public static Dataset SyntheticRegression(int seed, int count, int inputSize, int outputSize, double noise = 0.0) =>
            new(Guard.Run(() => global::GroupedNewton.Data.Synthetic.teacherRegression(seed, count, inputSize, outputSize, noise)));
    }

    /// <summary>The training and test parts of a data set.</summary>
    public sealed class DatasetPair
    {
        internal DatasetPair(Dataset train, Dataset test) { Train = train; Test = test; }

        /// <summary>The training part.</summary>
        public Dataset Train { get; }

        /// <summary>The test part.</summary>
        public Dataset Test { get; }

        /// <summary>Deconstructs into (train, test).</summary>
        /// <param name="train">The training part.</param>
        /// <param name="test">The test part.</param>
        public void Deconstruct(out Dataset train, out Dataset test) { train = Train; test = Test; }
    }
}
