using Microsoft.FSharp.Collections;
using CoreActivation = global::GroupedNewton.Activation;
using CoreInit = global::GroupedNewton.InitOptions;
using CoreInitScheme = global::GroupedNewton.InitScheme;
using CoreLayerSpec = global::GroupedNewton.LayerSpec;
using CoreModel = global::GroupedNewton.Model;

namespace GroupedNewton.CSharp
{
    /// <summary>Activation functions.</summary>
    public enum Activation
    {
        /// <summary>Hyperbolic tangent.</summary>
        Tanh,
        /// <summary>max(0, x).</summary>
        Relu,
        /// <summary>ELU with α = 1.</summary>
        Elu,
        /// <summary>Logistic sigmoid.</summary>
        Sigmoid,
        /// <summary>log(1 + eˣ).</summary>
        Softplus,
    }

    /// <summary>How weights and biases are drawn.</summary>
    public enum InitScheme
    {
        /// <summary>PyTorch's defaults: U(−1/√fan_in, 1/√fan_in) for weights and biases.</summary>
        PyTorchDefault,
        /// <summary>Weights N(0, σ_w²/fan_in), biases N(0, σ_b²): the GroupedNewton reference code.</summary>
        ScaledNormal,
    }

    /// <summary>Initialisation of a model's parameters: scheme, dtype and seed.</summary>
    public sealed class Initialization
    {
        /// <summary>The scheme (default: <see cref="InitScheme.ScaledNormal"/> with σ_w = 1, σ_b = 0).</summary>
        public InitScheme Scheme { get; init; } = InitScheme.ScaledNormal;

        /// <summary>σ_w of <see cref="InitScheme.ScaledNormal"/> (√2 for VGG in the reference).</summary>
        public double SigmaWeight { get; init; } = 1.0;

        /// <summary>σ_b of <see cref="InitScheme.ScaledNormal"/>; 0 gives zero biases.</summary>
        public double SigmaBias { get; init; }

        /// <summary>Float32 (default) or Float64.</summary>
        public DType DType { get; init; } = DType.Float32;

        /// <summary>The seed every parameter's values derive from.</summary>
        public int Seed { get; init; }

        /// <summary>The reference code's N(0, 1)/√fan_in weights and zero biases, float32.</summary>
        /// <param name="seed">The seed.</param>
        public static Initialization Reference(int seed = 0) => new() { Seed = seed };

        /// <summary>PyTorch's default initialisation, float32.</summary>
        /// <param name="seed">The seed.</param>
        public static Initialization PyTorch(int seed = 0) => new() { Scheme = InitScheme.PyTorchDefault, Seed = seed };

        internal CoreInit ToCore()
        {
            if (DType == DType.Int32) throw new ArgumentOutOfRangeException(nameof(DType), DType, "parameters must be Float32 or Float64");
            if (!double.IsFinite(SigmaWeight) || SigmaWeight < 0)
                throw new ArgumentOutOfRangeException(nameof(SigmaWeight), SigmaWeight, "must be finite and non-negative");
            if (!double.IsFinite(SigmaBias) || SigmaBias < 0)
                throw new ArgumentOutOfRangeException(nameof(SigmaBias), SigmaBias, "must be finite and non-negative");
            var scheme = Scheme switch
            {
                InitScheme.PyTorchDefault => CoreInitScheme.PyTorchDefault,
                InitScheme.ScaledNormal => CoreInitScheme.NewScaledNormal(SigmaWeight, SigmaBias),
                _ => throw new ArgumentOutOfRangeException(nameof(Scheme), Scheme, "unknown scheme"),
            };
            return new CoreInit(scheme: scheme, dtype: DType.ToCore(), seed: Seed);
        }
    }

    /// <summary>
    /// A neural network: a function of its <see cref="Parameters"/> and an input batch (the
    /// first dimension is the batch). Build one with <see cref="Sequential"/> or
    /// <see cref="Models"/>.
    /// </summary>
    public sealed class Model
    {
        internal readonly CoreModel Core;

        internal Model(CoreModel core)
        {
            Core = core;
            Parameters = new ParameterSet(core.Parameters);
        }

        /// <summary>The model's name (checkpoints are matched by it).</summary>
        public string Name => Core.Name;

        /// <summary>The shape of one input sample (without the batch dimension).</summary>
        public int[] InputShape => (int[])Core.InputShape.Clone();

        /// <summary>The shape of one output sample.</summary>
        public int[] OutputShape => (int[])Core.OutputShape.Clone();

        /// <summary>A description of each layer, in order, e.g. <c>Conv2d(1→6, 5x5, stride 1, padding 0)</c>.</summary>
        public IReadOnlyList<string> Layers => Core.Layers.Select(l => l.Spec.ToString()).ToArray();

        /// <summary>The trainable parameters; optimizers update them.</summary>
        public ParameterSet Parameters { get; }

        /// <summary>The output for an input batch. Inside an optimizer step or a summary it
        /// uses the values being differentiated, so the result carries their derivatives.</summary>
        /// <param name="input">A batch [N, ..InputShape].</param>
        /// <exception cref="ArgumentException">The input does not have the model's input shape.</exception>
        public Tensor Forward(Tensor input)
        {
            Guard.NotNull(input, nameof(input));
            return Guard.Run(() => new Tensor(Core.Forward(Parameters.Active, input.Core)));
        }

        /// <summary>Mean loss and accuracy (NaN when the objective has none) on a data set.</summary>
        /// <param name="data">The data set.</param>
        /// <param name="objective">The loss the model is trained with.</param>
        /// <param name="batchSize">Samples per evaluation batch.</param>
        public Evaluation Evaluate(Dataset data, Objective objective = Objective.Classification, int batchSize = 1000)
        {
            Guard.NotNull(data, nameof(data));
            if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be at least 1");
            var dtype = Core.Parameters.Values.Length > 0 ? Core.Parameters.Values[0].Dtype : global::GroupedNewton.Dtype.Float32;
            var e = Guard.Run(() => global::GroupedNewton.Trainer.evaluate(Core, Parameters.Current, objective.ToCore(), batchSize, dtype, data.Core));
            return new Evaluation(e.Loss, e.Accuracy);
        }

        /// <summary>Saves the current parameter values to a file in the library's store format
        /// (versioned, checksummed), atomically. The folder must exist.</summary>
        /// <param name="path">The file, e.g. <c>model.gnts</c>.</param>
        /// <exception cref="System.IO.DirectoryNotFoundException">The folder does not exist, or a file stands where a folder is expected.</exception>
        /// <exception cref="System.IO.IOException">The path is a folder.</exception>
        public void SaveParameters(string path)
        {
            Guard.NotNull(path, nameof(path));
            var ps = Parameters.Current;
            Guard.Run(() => global::GroupedNewton.ModelFile.save(path, Core, ps));
        }

        /// <summary>Writes the current parameter values to a stream (left open).</summary>
        /// <param name="stream">A writable stream.</param>
        public void SaveParameters(System.IO.Stream stream)
        {
            Guard.NotNull(stream, nameof(stream));
            var ps = Parameters.Current;
            Guard.Run(() => global::GroupedNewton.ModelFile.write(stream, Core, ps));
        }

        /// <summary>Replaces the parameter values by those saved with <see cref="SaveParameters(string)"/>
        /// from a model of the same architecture. An optimizer created on this model continues
        /// from the loaded values. Nothing changes unless every value fits.</summary>
        /// <param name="path">The file.</param>
        /// <exception cref="System.IO.FileNotFoundException">The file does not exist.</exception>
        /// <exception cref="System.IO.InvalidDataException">The file is corrupt, or was written by a model of
        /// another architecture (the message names the first mismatching parameter and both shapes).</exception>
        public void LoadParameters(string path)
        {
            Guard.NotNull(path, nameof(path));
            Parameters.Current = Guard.Run(() => global::GroupedNewton.ModelFile.load(path, Core));
        }

        /// <summary>Replaces the parameter values by those read from a stream written by
        /// <see cref="SaveParameters(System.IO.Stream)"/> (left open).</summary>
        /// <param name="stream">A readable stream.</param>
        /// <exception cref="System.IO.InvalidDataException">The data is corrupt or does not fit this model.</exception>
        public void LoadParameters(System.IO.Stream stream)
        {
            Guard.NotNull(stream, nameof(stream));
            Parameters.Current = Guard.Run(() => global::GroupedNewton.ModelFile.read("stream", stream, Core));
        }

        /// <summary>The predicted class of each sample: the index of the largest output
        /// (the model's outputs are logits [N, classes]).</summary>
        /// <param name="input">A batch [N, ..InputShape], e.g. <see cref="Dataset.Inputs"/>.</param>
        /// <returns>N class indices.</returns>
        /// <exception cref="ArgumentException">The input does not have the model's input shape, or the
        /// model's output is not [N, classes].</exception>
        public int[] Predict(Tensor input)
        {
            Guard.NotNull(input, nameof(input));
            var ps = Parameters.Current;
            return Guard.Run(() => global::GroupedNewton.Prediction.classes(Core, ps, input.Core));
        }

        /// <summary>The class probabilities of each sample: the softmax of the logits, [N, classes]
        /// (each row sums to 1).</summary>
        /// <param name="input">A batch [N, ..InputShape].</param>
        public Tensor PredictProbabilities(Tensor input)
        {
            Guard.NotNull(input, nameof(input));
            var ps = Parameters.Current;
            return Guard.Run(() => new Tensor(global::GroupedNewton.Prediction.probabilities(Core, ps, input.Core)));
        }

        /// <summary>The name and the layers.</summary>
        public override string ToString() => $"{Name}: {string.Join(" → ", Layers)}";
    }

    /// <summary>Loss and accuracy of a model on a data set.</summary>
    public sealed class Evaluation
    {
        internal Evaluation(double loss, double accuracy) { Loss = loss; Accuracy = accuracy; }

        /// <summary>The mean loss.</summary>
        public double Loss { get; }

        /// <summary>The fraction of correct predictions; NaN when the objective has no accuracy.</summary>
        public double Accuracy { get; }

        /// <summary>Loss and accuracy.</summary>
        public override string ToString() => $"loss {Loss:G6}, accuracy {Accuracy:P2}";
    }

    /// <summary>
    /// Builds a sequential model layer by layer; each layer's input size is taken from the
    /// previous layer's output, and shapes are checked as layers are added. Parameters are
    /// named <c>"i.weight"</c> and <c>"i.bias"</c> after the layer's position i.
    /// </summary>
    /// <example><code>
    /// var model = new Sequential(1, 28, 28)
    ///     .Conv2d(6, 5).Tanh().MaxPool2d(2)
    ///     .Flatten().Linear(120).Tanh().Linear(10)
    ///     .Build("small-cnn", Initialization.Reference(seed: 0));
    /// </code></example>
    public sealed class Sequential
    {
        readonly int[] inputShape;
        readonly List<CoreLayerSpec> specs = new();
        int[] shape;

        /// <summary>Starts a model whose samples have the given shape, e.g. (1, 28, 28) or (784).</summary>
        /// <param name="inputShape">The shape of one input sample.</param>
        public Sequential(params int[] inputShape)
        {
            Guard.NotNull(inputShape, nameof(inputShape));
            if (inputShape.Length == 0 || inputShape.Any(d => d < 1))
                throw new ArgumentException($"the input shape [{string.Join(", ", inputShape)}] must have positive dimensions", nameof(inputShape));
            this.inputShape = (int[])inputShape.Clone();
            shape = (int[])inputShape.Clone();
        }

        /// <summary>The per-sample output shape of the layers so far.</summary>
        public int[] OutputShape => (int[])shape.Clone();

        Sequential Add(CoreLayerSpec spec)
        {
            var next = Guard.Run(() => global::GroupedNewton.LayerModule.outputShape(spec, shape));
            specs.Add(spec);
            shape = next;
            return this;
        }

        /// <summary>A fully connected layer; its input must be flat (add <see cref="Flatten"/> first).</summary>
        /// <param name="outFeatures">Output size.</param>
        /// <param name="bias">Whether the layer has a bias.</param>
        public Sequential Linear(int outFeatures, bool bias = true)
        {
            if (outFeatures < 1) throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "must be at least 1");
            if (shape.Length != 1)
                throw new InvalidOperationException($"Linear needs flat inputs, the previous layer gives [{string.Join(", ", shape)}]; add Flatten() first");
            return Add(CoreLayerSpec.NewLinear(shape[0], outFeatures, bias));
        }

        /// <summary>A 2-D convolution with square kernels; its input must be [C, H, W].</summary>
        /// <param name="outChannels">Output channels.</param>
        /// <param name="kernelSize">Kernel side.</param>
        /// <param name="stride">Stride.</param>
        /// <param name="padding">Zero padding on each side.</param>
        /// <param name="bias">Whether the layer has a bias.</param>
        public Sequential Conv2d(int outChannels, int kernelSize, int stride = 1, int padding = 0, bool bias = true)
        {
            if (outChannels < 1) throw new ArgumentOutOfRangeException(nameof(outChannels), outChannels, "must be at least 1");
            if (kernelSize < 1) throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "must be at least 1");
            if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, "must be at least 1");
            if (padding < 0) throw new ArgumentOutOfRangeException(nameof(padding), padding, "must be non-negative");
            if (shape.Length != 3)
                throw new InvalidOperationException($"Conv2d needs inputs [C, H, W], the previous layer gives [{string.Join(", ", shape)}]");
            return Add(CoreLayerSpec.NewConv2d(shape[0], outChannels, kernelSize, stride, padding, bias));
        }

        /// <summary>Max pooling over square windows.</summary>
        /// <param name="kernelSize">Window side.</param>
        /// <param name="stride">Stride (default: the window side).</param>
        /// <param name="padding">Padding on each side.</param>
        public Sequential MaxPool2d(int kernelSize, int? stride = null, int padding = 0)
        {
            CheckPool(kernelSize, stride, padding);
            return Add(CoreLayerSpec.NewMaxPool2d(kernelSize, stride ?? kernelSize, padding));
        }

        /// <summary>Average pooling over square windows.</summary>
        /// <param name="kernelSize">Window side.</param>
        /// <param name="stride">Stride (default: the window side).</param>
        /// <param name="padding">Padding on each side.</param>
        public Sequential AvgPool2d(int kernelSize, int? stride = null, int padding = 0)
        {
            CheckPool(kernelSize, stride, padding);
            return Add(CoreLayerSpec.NewAvgPool2d(kernelSize, stride ?? kernelSize, padding));
        }

        static void CheckPool(int kernelSize, int? stride, int padding)
        {
            if (kernelSize < 1) throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "must be at least 1");
            if (stride is < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, "must be at least 1");
            if (padding < 0) throw new ArgumentOutOfRangeException(nameof(padding), padding, "must be non-negative");
        }

        /// <summary>Flattens each sample to a vector.</summary>
        public Sequential Flatten() => Add(CoreLayerSpec.Flatten);

        /// <summary>An activation layer.</summary>
        /// <param name="activation">Which function.</param>
        public Sequential Activation(Activation activation) => Add(CoreLayerSpec.NewAct(activation.ToCore()));

        /// <summary>A tanh activation.</summary>
        public Sequential Tanh() => Activation(CSharp.Activation.Tanh);

        /// <summary>A ReLU activation.</summary>
        public Sequential Relu() => Activation(CSharp.Activation.Relu);

        /// <summary>An ELU (α = 1) activation.</summary>
        public Sequential Elu() => Activation(CSharp.Activation.Elu);

        /// <summary>A sigmoid activation.</summary>
        public Sequential Sigmoid() => Activation(CSharp.Activation.Sigmoid);

        /// <summary>A softplus activation.</summary>
        public Sequential Softplus() => Activation(CSharp.Activation.Softplus);

        /// <summary>The model, with freshly initialised parameters.</summary>
        /// <param name="name">The model's name.</param>
        /// <param name="init">The initialisation (default: <see cref="Initialization.Reference"/> with seed 0).</param>
        public Model Build(string name = "sequential", Initialization? init = null)
        {
            Guard.NotNull(name, nameof(name));
            if (specs.Count == 0) throw new InvalidOperationException("the model has no layers");
            var coreInit = (init ?? Initialization.Reference()).ToCore();
            var list = ListModule.OfSeq(specs);
            return Guard.Run(() => new Model(global::GroupedNewton.ModelModule.sequential(name, inputShape, coreInit, list)));
        }
    }

    /// <summary>The models of the papers.</summary>
    public static class Models
    {
        /// <summary>A multilayer perceptron of the given sizes (input first, outputs last), with
        /// the activation between layers and none after the last. The reference is
        /// 784-1024-200-100-10 with tanh.</summary>
        /// <param name="sizes">Layer sizes, at least two.</param>
        /// <param name="activation">The activation.</param>
        /// <param name="init">The initialisation (default: reference, seed 0).</param>
        public static Model Mlp(int[] sizes, Activation activation = Activation.Tanh, Initialization? init = null)
        {
            Guard.NotNull(sizes, nameof(sizes));
            if (sizes.Length < 2 || sizes.Any(s => s < 1))
                throw new ArgumentException($"an MLP needs at least two positive sizes, got [{string.Join(", ", sizes)}]", nameof(sizes));
            var coreInit = (init ?? Initialization.Reference()).ToCore();
            return Guard.Run(() => new Model(global::GroupedNewton.Models.mlp(ListModule.OfSeq(sizes), activation.ToCore(), coreInit)));
        }

        /// <summary>An MLP on inputs of any shape (flattened first), e.g. (1, 28, 28) images.</summary>
        /// <param name="inputShape">The shape of one sample; its size must equal sizes[0].</param>
        /// <param name="sizes">Layer sizes, at least two.</param>
        /// <param name="activation">The activation.</param>
        /// <param name="init">The initialisation (default: reference, seed 0).</param>
        public static Model Mlp(int[] inputShape, int[] sizes, Activation activation = Activation.Tanh, Initialization? init = null)
        {
            Guard.NotNull(inputShape, nameof(inputShape));
            Guard.NotNull(sizes, nameof(sizes));
            if (sizes.Length < 2 || sizes.Any(s => s < 1))
                throw new ArgumentException($"an MLP needs at least two positive sizes, got [{string.Join(", ", sizes)}]", nameof(sizes));
            var coreInit = (init ?? Initialization.Reference()).ToCore();
            return Guard.Run(() => new Model(global::GroupedNewton.Models.mlpOn(inputShape, ListModule.OfSeq(sizes), activation.ToCore(), coreInit)));
        }

        /// <summary>LeNet-5 (two 5×5 tanh convolutions with max-pooling, then 120-84-10) on 1 or
        /// 3 channels of 28 or 32 pixels.</summary>
        /// <param name="channels">1 (MNIST, Fashion-MNIST) or 3 (CIFAR-10).</param>
        /// <param name="pixels">28 or 32.</param>
        /// <param name="init">The initialisation (default: reference, seed 0).</param>
        public static Model LeNet5(int channels = 1, int pixels = 28, Initialization? init = null)
        {
            if (channels != 1 && channels != 3) throw new ArgumentOutOfRangeException(nameof(channels), channels, "must be 1 or 3");
            if (pixels != 28 && pixels != 32) throw new ArgumentOutOfRangeException(nameof(pixels), pixels, "must be 28 or 32");
            var coreInit = (init ?? Initialization.Reference()).ToCore();
            return Guard.Run(() => new Model(global::GroupedNewton.Models.lenet5(channels, pixels, coreInit)));
        }

        /// <summary>VGG-11 without batch norm, ELU, on 3×32×32 inputs, 10 classes. The reference
        /// initialises it with σ_w = √2.</summary>
        /// <param name="init">The initialisation (default: scaled normal with σ_w = √2, seed 0).</param>
        public static Model Vgg11(Initialization? init = null)
        {
            var coreInit = (init ?? new Initialization { SigmaWeight = Math.Sqrt(2.0) }).ToCore();
            return Guard.Run(() => new Model(global::GroupedNewton.Models.vgg11(coreInit)));
        }

        /// <summary>The MNIST autoencoder of the K-BFGS paper (784-1000-500-250-30-250-500-1000-784,
        /// ReLU); its output are logits for <see cref="Loss.BinaryCrossEntropyWithLogits"/>.</summary>
        /// <param name="init">The initialisation (default: reference, seed 0).</param>
        public static Model Autoencoder(Initialization? init = null)
        {
            var coreInit = (init ?? Initialization.Reference()).ToCore();
            return Guard.Run(() => new Model(global::GroupedNewton.Models.mnistAutoencoder(coreInit)));
        }
    }

    internal static class Activations
    {
        public static CoreActivation ToCore(this Activation a) => a switch
        {
            Activation.Tanh => CoreActivation.Tanh,
            Activation.Relu => CoreActivation.Relu,
            Activation.Elu => CoreActivation.Elu,
            Activation.Sigmoid => CoreActivation.Sigmoid,
            Activation.Softplus => CoreActivation.Softplus,
            _ => throw new ArgumentOutOfRangeException(nameof(a), a, "unknown activation"),
        };
    }
}
