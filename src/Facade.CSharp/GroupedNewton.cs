using CoreGN = global::GroupedNewton.GroupedNewtonOptimizer;
using CoreGNOptions = global::GroupedNewton.GroupedNewtonOptions;

namespace GroupedNewton.CSharp
{
    /// <summary>Which GroupedNewton procedure.</summary>
    public enum GroupedNewtonVariant
    {
        /// <summary>Optional EMAs on the summaries; a solver failure feeds η = 0 into the rate EMA.</summary>
        NewtonSummary,
        /// <summary>The paper's final runs: uniform averaging over periods, a warm-up, previous rates on failure.</summary>
        UniformAverage,
        /// <summary>grouped-newton-auto, nothing to tune: each subset's own one-dimensional model, one joint length, a
        /// per-subset scale that follows the run, rates the curvature batch confirms, and the last period undone when the
        /// training loss jumps (see <see cref="GroupedNewtonOptions.Auto"/>).</summary>
        Adaptive,
    }

    /// <summary>The first-order direction u that GroupedNewton scales per subset.</summary>
    public enum GroupedNewtonDirection
    {
        /// <summary>SGD with momentum <see cref="GroupedNewtonOptions.Momentum"/> at learning rate 1 (the paper).</summary>
        SgdMomentum,
        /// <summary>Adam's direction at learning rate 1 (default Adam hyperparameters).</summary>
        Adam,
    }

    /// <summary>
    /// Where GroupedNewton gets the batch of each curvature update (the derivatives according
    /// to the partition are taken on it). The reference cycles an unshuffled loader.
    /// </summary>
    public abstract class CurvatureSource
    {
        private protected CurvatureSource() { }

        internal abstract FSharpFunc<Unit, FSharpFunc<CoreParameters, CoreTensor>> ToCore(ParameterSet parameters);

        /// <summary>The core's positioned stream behind <see cref="Cycle"/> (null for your own source):
        /// checkpoints record its position.</summary>
        internal virtual global::GroupedNewton.CurvatureStream? Stream => null;

        /// <summary>Cycles over a data set in order, one batch per curvature update, with the
        /// loss of <paramref name="objective"/> on the model's output.</summary>
        /// <param name="model">The model being trained.</param>
        /// <param name="data">The data set (usually the training set).</param>
        /// <param name="batchSize">Samples per curvature batch.</param>
        /// <param name="objective">The loss.</param>
        public static CurvatureSource Cycle(Model model, Dataset data, int batchSize = 100, Objective objective = Objective.Classification)
        {
            Guard.NotNull(model, nameof(model));
            Guard.NotNull(data, nameof(data));
            var dtype = model.Core.Parameters.Values.Length > 0 ? DTypes.FromCore(model.Core.Parameters.Values[0].Dtype) : DType.Float32;
            var stream = Guard.Run(() => new global::GroupedNewton.CurvatureStream(model.Core, objective.ToCore(), data.Core, batchSize, dtype.ToCore()));
            return new CycleSource(model, stream);
        }

        /// <summary>Your own source: each call of <paramref name="next"/> moves to the next curvature
        /// batch and returns a closure computing the loss on it (through the model or parameter set).</summary>
        /// <param name="next">Returns the loss closure of the next curvature batch.</param>
        public static CurvatureSource FromClosures(Func<Func<Tensor>> next) =>
            new ClosureSource(Guard.NotNull(next, nameof(next)));

        sealed class CycleSource : CurvatureSource
        {
            readonly Model model;
            readonly global::GroupedNewton.CurvatureStream stream;

            public CycleSource(Model model, global::GroupedNewton.CurvatureStream stream)
            {
                this.model = model;
                this.stream = stream;
            }

            internal override global::GroupedNewton.CurvatureStream? Stream => stream;

            internal override FSharpFunc<Unit, FSharpFunc<CoreParameters, CoreTensor>> ToCore(ParameterSet parameters)
            {
                if (!ReferenceEquals(parameters, model.Parameters))
                    throw new ArgumentException("the curvature source was made for another model", "options");
                return FuncConvert.FromFunc<Unit, FSharpFunc<CoreParameters, CoreTensor>>(_ => stream.Next());
            }
        }

        sealed class ClosureSource : CurvatureSource
        {
            readonly Func<Func<Tensor>> next;
            public ClosureSource(Func<Func<Tensor>> next) { this.next = next; }

            internal override FSharpFunc<Unit, FSharpFunc<CoreParameters, CoreTensor>> ToCore(ParameterSet parameters) =>
                FuncConvert.FromFunc<Unit, FSharpFunc<CoreParameters, CoreTensor>>(_ =>
                {
                    var closure = Guard.User(() => next() ?? throw new InvalidOperationException("the curvature source returned no closure"));
                    return Guard.Closure(parameters, closure);
                });
        }
    }

    /// <summary>
    /// The partition GroupedNewton computes one rate per subset for: a name of the partition
    /// grammar (<c>"per-layer"</c>, <c>"blocks-3"</c>, …) or a <see cref="CSharp.Partition"/> made on the
    /// parameters the optimizer is created for. A string or a partition converts to it implicitly.
    /// </summary>
    public sealed class PartitionChoice
    {
        PartitionChoice(string? name, Partition? subsets) { Name = name; Subsets = subsets; }

        /// <summary>The partition's name, or null when it is a <see cref="CSharp.Partition"/>.</summary>
        public string? Name { get; }

        /// <summary>The partition itself, or null when it is given by name.</summary>
        public Partition? Subsets { get; }

        /// <summary>A partition by name (checked when the optimizer is created).</summary>
        /// <param name="name">canonical, trivial, weights-biases, per-layer, blocks-N or alternate-N.</param>
        public static implicit operator PartitionChoice(string name) => new(Guard.NotNull(name, nameof(name)), null);

        /// <summary>A partition of the optimizer's parameters.</summary>
        /// <param name="subsets">The partition, made on the parameters the optimizer will be created for.</param>
        public static implicit operator PartitionChoice(Partition subsets) => new(null, Guard.NotNull(subsets, nameof(subsets)));

        /// <summary>The name, or the subsets and their parameters.</summary>
        public override string ToString() => Name ?? Subsets!.ToString();

        /// <summary>Throws ArgumentException naming <paramref name="property"/> for a name outside the grammar.</summary>
        internal void Validate(string property)
        {
            if (Name is null) return;
            try { global::GroupedNewton.PartitionModule.checkName(Name); }
            catch (global::GroupedNewton.PartitionException e) { throw new ArgumentException(e.Message, property, e); }
        }

        /// <summary>The core partition of <paramref name="parameters"/>.</summary>
        internal global::GroupedNewton.Partition Resolve(ParameterSet parameters, string property)
        {
            if (Subsets is null) return global::GroupedNewton.PartitionModule.parse(parameters.Current, Name!);
            if (!ReferenceEquals(Subsets.Set, parameters))
                throw new ArgumentException("the partition was made for another parameter set than the optimizer's", property);
            return Subsets.Core;
        }
    }

    /// <summary>
    /// GroupedNewton (Wolinski, arXiv 2312.03885): a first-order direction u, and every
    /// <see cref="CurvaturePeriod"/> steps one learning rate per subset of a partition from the
    /// derivatives of the loss according to that partition, by a cubic-regularised Newton
    /// step on the S-dimensional model. New instances carry the reference class defaults;
    /// <see cref="Paper"/> gives the settings of the paper's final runs.
    /// </summary>
    public sealed class GroupedNewtonOptions : OptimizerOptions
    {
        /// <summary>The reference class defaults.</summary>
        public GroupedNewtonOptions() : this(CoreGNOptions.Defaults) { }

        GroupedNewtonOptions(CoreGNOptions d)
        {
            Variant = CoreCases.FromCore<GroupedNewtonVariant, global::GroupedNewton.GroupedNewtonVariant>(d.Variant);
            Damping = d.Damping; Cubic = d.Cubic; LambdaInt = d.LambdaInt; CurvaturePeriod = d.CurvaturePeriod;
            RateMomentum = d.RateMomentum; SummaryMomentum = d.SummaryMomentum; ThirdOrderMomentum = d.ThirdOrderMomentum;
            AveragePeriod = d.AveragePeriod; Warmup = d.Warmup; ClipNegativeRates = d.ClipNegativeRates;
            ClipAfterRateMomentum = d.ClipAfterRateMomentum; Ridge = d.Ridge; SecondOrderOnly = d.SecondOrderOnly;
            DiagonalOnly = d.DiagonalOnly; SingularThreshold = d.SingularThreshold;
            MaxRateGrowth = d.MaxRateGrowth; RaiseOnCurvatureFailure = d.OnCurvatureFailure.IsRaise;
            adaptive = d.Adaptive;
        }

        // the Adaptive variant's settings: one set for every model, kept at the core's defaults
        readonly global::GroupedNewton.AdaptiveRateOptions adaptive;

        /// <summary>grouped-newton-auto, the variant with nothing to tune: <see cref="GroupedNewtonVariant.Adaptive"/>
        /// with the cubic term, a curvature update every 10 steps and Damping 1. The same settings serve MLPs and CNNs,
        /// tanh and ReLU.</summary>
        /// <param name="curvature">Where curvature batches come from.</param>
        public static GroupedNewtonOptions Auto(CurvatureSource curvature) =>
            new(CoreGNOptions.Auto) { Curvature = Guard.NotNull(curvature, nameof(curvature)) };

        /// <summary>The settings of the paper's final MLP runs (uniform averaging, damping 0.03,
        /// cubic term, period 10, warm-up 3, negative rates removed); LeNet and VGG used damping 0.3.</summary>
        /// <param name="curvature">Where curvature batches come from.</param>
        public static GroupedNewtonOptions Paper(CurvatureSource curvature) =>
            new(CoreGNOptions.Paper) { Curvature = Guard.NotNull(curvature, nameof(curvature)) };

        /// <summary>Where curvature batches come from (required).</summary>
        public CurvatureSource? Curvature { get; set; }

        /// <summary>The partition of the parameters into subsets: a name, <c>canonical</c> (one per tensor,
        /// the default), <c>trivial</c>, <c>weights-biases</c>, <c>per-layer</c>, <c>blocks-N</c>, <c>alternate-N</c>;
        /// or a <see cref="CSharp.Partition"/> made on the model's parameters, e.g. with
        /// <see cref="CSharp.Partition.ByNames"/>. Both convert implicitly.</summary>
        public PartitionChoice Partition
        {
            get => partition;
            set => partition = Guard.NotNull(value, nameof(Partition));
        }

        PartitionChoice partition = "canonical";

        /// <summary>The direction u (default SGD with momentum).</summary>
        public GroupedNewtonDirection Direction { get; set; } = GroupedNewtonDirection.SgdMomentum;

        /// <summary>Momentum of the SGD direction, in [0, 1) (default 0.9).</summary>
        public double Momentum { get; set; } = global::GroupedNewton.OptimizerCatalog.DefaultMomentum;

        /// <summary>The procedure.</summary>
        public GroupedNewtonVariant Variant { get; set; }
        /// <summary>λ₁: each subset's learning rate is Damping × η_s.</summary>
        public double Damping { get; set; }
        /// <summary>Use the cubic regularisation (off: η = (H̄ + Ridge·I)⁻¹ḡ).</summary>
        public bool Cubic { get; set; }
        /// <summary>λ_int, the weight of the cubic term.</summary>
        public double LambdaInt { get; set; }
        /// <summary>Steps between two curvature updates (≥ 1).</summary>
        public int CurvaturePeriod { get; set; }
        /// <summary>EMA on η, in [0, 1).</summary>
        public double RateMomentum { get; set; }
        /// <summary>EMA on ḡ, H̄, D̄ (NewtonSummary), in [0, 1).</summary>
        public double SummaryMomentum { get; set; }
        /// <summary>EMA on |D̄_sss|^{1/3} (NewtonSummary), in [0, 1).</summary>
        public double ThirdOrderMomentum { get; set; }
        /// <summary>Uniform-average period in curvature updates (UniformAverage, ≥ 1).</summary>
        public int AveragePeriod { get; set; }
        /// <summary>Curvature updates before the parameters move (UniformAverage, ≥ 0).</summary>
        public int Warmup { get; set; }
        /// <summary>Clip negative rates to 0.</summary>
        public bool ClipNegativeRates { get; set; }
        /// <summary>NewtonSummary: run the EMA on raw η and clip after (else clip first).</summary>
        public bool ClipAfterRateMomentum { get; set; }
        /// <summary>Added to H̄'s diagonal without the cubic term (≥ 0).</summary>
        public double Ridge { get; set; }
        /// <summary>Order 2 only: η = H̄⁻¹ḡ, no third-order passes.</summary>
        public bool SecondOrderOnly { get; set; }
        /// <summary>Use only the diagonal of H̄.</summary>
        public bool DiagonalOnly { get; set; }
        /// <summary>Relative threshold below which a subset's third-order term counts as zero (≥ 0).</summary>
        public double SingularThreshold { get; set; }
        /// <summary>Bound on the change of the rates between curvature updates: a fresh |η_s| is clipped
        /// to MaxRateGrowth × the previous |η_s| (≥ 1; +∞, the default, leaves them unbounded).</summary>
        public double MaxRateGrowth { get; set; }
        /// <summary>A failed curvature update (a non-finite summary entry or loss on the curvature batch,
        /// a solver failure) makes Step throw InvalidOperationException with nothing changed, instead of the
        /// variant's fallback (previous rates for UniformAverage, η = 0 into the rate average for
        /// NewtonSummary); either way <see cref="Optimizer.Warning"/> says which subset and value.</summary>
        public bool RaiseOnCurvatureFailure { get; set; }

        /// <inheritdoc/>
        public override string Name => "grouped-newton";

        /// <summary>False: the groups are the subsets of <see cref="Partition"/> and their rates are computed.</summary>
        public override bool SupportsParamGroups => false;

        private protected override double DefaultLearningRate => 0.0;

        internal CoreGNOptions ToCore() =>
            new(variant: CoreCases.ToCore<GroupedNewtonVariant, global::GroupedNewton.GroupedNewtonVariant>(Variant, nameof(Variant)),
                damping: Damping, cubic: Cubic, lambdaInt: LambdaInt, curvaturePeriod: CurvaturePeriod, rateMomentum: RateMomentum,
                summaryMomentum: SummaryMomentum, thirdOrderMomentum: ThirdOrderMomentum, averagePeriod: AveragePeriod, warmup: Warmup,
                clipNegativeRates: ClipNegativeRates, clipAfterRateMomentum: ClipAfterRateMomentum, ridge: Ridge,
                secondOrderOnly: SecondOrderOnly, diagonalOnly: DiagonalOnly, singularThreshold: SingularThreshold,
                maxRateGrowth: MaxRateGrowth,
                onCurvatureFailure: RaiseOnCurvatureFailure ? global::GroupedNewton.CurvatureFailure.Raise : global::GroupedNewton.CurvatureFailure.Fallback,
                adaptive: adaptive);

        private protected override void ValidateCore()
        {
            ToCore().Validate();
            CoreGNOptions.ValidateMomentum(Momentum);
            if (!Enum.IsDefined(Direction))
                throw new ArgumentOutOfRangeException(nameof(Direction), Direction, $"{Direction} is not a {nameof(GroupedNewtonDirection)}");
            partition.Validate(nameof(Partition));
            if (Curvature is null)
                throw new ArgumentException("GroupedNewton needs a curvature source (CurvatureSource.Cycle or FromClosures)", nameof(Curvature));
        }

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var ps = parameters.Current;
            var subsets = partition.Resolve(parameters, nameof(Partition));
            var curvature = Curvature!.ToCore(parameters);
            var options = ToCore();
            return Direction == GroupedNewtonDirection.Adam
                ? global::GroupedNewton.GroupedNewtonOptimizerModule.createWith(options,
                    new global::GroupedNewton.AdamRule(global::GroupedNewton.AdamOptions.Defaults), subsets, curvature, ps)
                : global::GroupedNewton.GroupedNewtonOptimizerModule.create(options, Momentum, subsets, curvature, ps);
        }

        internal override Optimizer Wrap(CoreOptimizer core, ParameterSet parameters, Model? model) =>
            new GroupedNewtonOptimizer((CoreGN)core, parameters, model) { Curvature = Curvature?.Stream };
    }

    /// <summary>A GroupedNewton optimizer: an <see cref="Optimizer"/> whose groups are the subsets
    /// of its partition, with the history of its curvature updates and its damping.</summary>
    public sealed class GroupedNewtonOptimizer : Optimizer
    {
        readonly CoreGN gn;

        internal GroupedNewtonOptimizer(CoreGN core, ParameterSet parameters, Model? model) : base(core, parameters, model)
        {
            gn = core;
        }

        /// <summary>The positioned curvature stream (a <see cref="CurvatureSource.Cycle"/> source), or null.</summary>
        internal override global::GroupedNewton.CurvatureStream? Curvature { get; init; }

        /// <summary>The subset names of the partition, in order.</summary>
        public IReadOnlyList<string> SubsetNames => gn.Partition.Names;

        /// <summary>η applied since the last curvature update, by subset.</summary>
        public IReadOnlyDictionary<string, double> Rates =>
            gn.Partition.Names.Zip(gn.Rates).ToDictionary(p => p.First, p => p.Second);

        /// <summary>The damping λ₁ of each subset, in subset order.</summary>
        public IReadOnlyList<double> Damping => gn.Damping;

        /// <summary>Sets the damping of one subset.</summary>
        /// <param name="subset">The subset index, 0 .. SubsetNames.Count − 1.</param>
        /// <param name="value">The damping (finite, ≥ 0).</param>
        public void SetDamping(int subset, double value)
        {
            if (subset < 0 || subset >= gn.Partition.Count)
                throw new ArgumentOutOfRangeException(nameof(subset), subset, $"must be in 0 .. {gn.Partition.Count - 1}");
            Guard.OutOfRange(() => gn.SetDamping(subset, value), nameof(value));
        }

        /// <summary>λ_int, the weight of the cubic term (finite, ≥ 0).</summary>
        public double LambdaInt
        {
            get => gn.LambdaInt;
            set => Guard.OutOfRange(() => gn.LambdaInt = value, nameof(value));
        }

        /// <summary>Every curvature update so far, oldest first.</summary>
        public IReadOnlyList<CurvatureUpdate> History => gn.History.Select(h => new CurvatureUpdate(h)).ToArray();
    }

    /// <summary>One curvature update of GroupedNewton.</summary>
    public sealed class CurvatureUpdate
    {
        internal CurvatureUpdate(global::GroupedNewton.CurvatureUpdate h)
        {
            Step = h.Step;
            Fallback = h.Fallback;
            Summary = new PartitionSummary(h.Summary, h.Rates.Select(r => r.Item1).ToArray());
            Rates = h.Rates.ToDictionary(r => r.Item1, r => r.Item2);
            LearningRates = h.LearningRates.ToDictionary(r => r.Item1, r => r.Item2);
        }

        /// <summary>The step at which it happened.</summary>
        public int Step { get; }

        /// <summary>True when the solve failed and fallback rates were used.</summary>
        public bool Fallback { get; }

        /// <summary>The (averaged) summary the rates were computed from.</summary>
        public PartitionSummary Summary { get; }

        /// <summary>η per subset.</summary>
        public IReadOnlyDictionary<string, double> Rates { get; }

        /// <summary>Damping × η per subset: the learning rates applied.</summary>
        public IReadOnlyDictionary<string, double> LearningRates { get; }
    }
}
