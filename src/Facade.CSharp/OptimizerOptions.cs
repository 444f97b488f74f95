namespace GroupedNewton.CSharp
{
    /// <summary>
    /// The hyperparameters of one optimizer. Each optimizer is one options class: its
    /// properties (with the core's defaults), and how it builds the core optimizer. Create
    /// the optimizer with <see cref="Optimizer.Create(Model, OptimizerOptions, System.Collections.Generic.IEnumerable{ParamGroup})"/>;
    /// the options are validated there, before any training.
    /// </summary>
    public abstract class OptimizerOptions
    {
        private protected OptimizerOptions() { }

        /// <summary>The optimizer's name, e.g. <c>sgd</c>.</summary>
        public abstract string Name { get; }

        /// <summary>Throws <see cref="ArgumentException"/> (its ParamName the property) when a value is invalid.</summary>
        public void Validate() => Guard.Run(ValidateCore);

        private protected abstract void ValidateCore();

        /// <summary>Whether explicit parameter groups with their own learning rates are accepted.</summary>
        public virtual bool SupportsParamGroups => true;

        /// <summary>The learning rate of the default group holding every parameter.</summary>
        private protected abstract double DefaultLearningRate { get; }

        /// <summary>Builds the core optimizer over the parameters (validated options; groups checked by
        /// the core). <paramref name="model"/> is null when the optimizer is created on a bare parameter
        /// set; a layer-wise method (K-FAC, K-BFGS) refuses that with <see cref="RequireModel"/>.</summary>
        internal abstract CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups);

        /// <summary>The wrapper the optimizer is handed out as.</summary>
        internal virtual Optimizer Wrap(CoreOptimizer core, ParameterSet parameters, Model? model) =>
            new Optimizer(core, parameters, model);

        /// <summary>The model, or an ArgumentException saying this optimizer needs one.</summary>
        internal Model RequireModel(Model? model) =>
            model ?? throw new ArgumentException($"{Name} preconditions layer by layer and must be created on a model, not a parameter set", "parameters");

        internal CoreGroup[] GroupsOrDefault(CoreParameters ps, CoreGroup[]? groups) =>
            groups ?? new[] { new CoreGroup("all", ps.Keys, DefaultLearningRate) };
    }

    /// <summary>SGD with momentum, dampening, Nesterov and weight decay (PyTorch semantics).</summary>
    public sealed class SgdOptions : OptimizerOptions
    {
        static readonly global::GroupedNewton.SgdOptions D = global::GroupedNewton.SgdOptions.Defaults;

        /// <summary>The learning rate (default 0.01).</summary>
        public double LearningRate { get; set; } = D.LearningRate;
        /// <summary>Momentum μ (default 0).</summary>
        public double Momentum { get; set; } = D.Momentum;
        /// <summary>Dampening of the momentum (default 0).</summary>
        public double Dampening { get; set; } = D.Dampening;
        /// <summary>Nesterov momentum (needs Momentum &gt; 0 and Dampening = 0).</summary>
        public bool Nesterov { get; set; } = D.Nesterov;
        /// <summary>L2 weight decay added to the gradient (default 0).</summary>
        public double WeightDecay { get; set; } = D.WeightDecay;

        /// <inheritdoc/>
        public override string Name => "sgd";
        private protected override double DefaultLearningRate => LearningRate;

        internal global::GroupedNewton.SgdOptions ToCore() =>
            new(learningRate: LearningRate, momentum: Momentum, dampening: Dampening, nesterov: Nesterov, weightDecay: WeightDecay);

        private protected override void ValidateCore() => ToCore().Validate();

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var ps = parameters.Current;
            return global::GroupedNewton.Sgd.createWithGroups(ToCore(), ps, GroupsOrDefault(ps, groups));
        }
    }

    /// <summary>Adam, and the K-BFGS authors' variant (second moment of the momentum).</summary>
    public sealed class AdamOptions : OptimizerOptions
    {
        /// <summary>The core's defaults.</summary>
        public AdamOptions() : this(global::GroupedNewton.AdamOptions.Defaults) { }

        AdamOptions(global::GroupedNewton.AdamOptions d)
        {
            LearningRate = d.LearningRate; Beta1 = d.Beta1; Beta2 = d.Beta2; Epsilon = d.Epsilon;
            WeightDecay = d.WeightDecay; SecondMomentOfMomentum = d.SecondMomentOfMomentum;
        }

        /// <summary>The K-BFGS authors' settings: β₂ = 0.9, ε = 1e-4, second moment of the momentum.</summary>
        public static AdamOptions KbfgsAuthors() => new(global::GroupedNewton.AdamOptions.KbfgsAuthors);

        /// <summary>The learning rate (default 1e-3).</summary>
        public double LearningRate { get; set; }
        /// <summary>β₁ in [0, 1) (default 0.9).</summary>
        public double Beta1 { get; set; }
        /// <summary>β₂ in [0, 1) (default 0.999).</summary>
        public double Beta2 { get; set; }
        /// <summary>ε &gt; 0 (default 1e-8).</summary>
        public double Epsilon { get; set; }
        /// <summary>L2 weight decay added to the gradient (default 0).</summary>
        public double WeightDecay { get; set; }
        /// <summary>The K-BFGS authors' variant: the second moment averages the squared first moment.</summary>
        public bool SecondMomentOfMomentum { get; set; }

        /// <inheritdoc/>
        public override string Name => SecondMomentOfMomentum ? "adam-kbfgs" : "adam";
        private protected override double DefaultLearningRate => LearningRate;

        internal global::GroupedNewton.AdamOptions ToCore() =>
            new(learningRate: LearningRate, beta1: Beta1, beta2: Beta2, epsilon: Epsilon, weightDecay: WeightDecay,
                secondMomentOfMomentum: SecondMomentOfMomentum);

        private protected override void ValidateCore() => ToCore().Validate();

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var ps = parameters.Current;
            return global::GroupedNewton.Adam.createWithGroups(ToCore(), ps, GroupsOrDefault(ps, groups));
        }
    }

    /// <summary>How SOFIM applies the regularised Fisher inverse.</summary>
    public enum SofimDirection
    {
        /// <summary>F⁻¹m̂ (the SOFIM algorithm).</summary>
        Momentum,
        /// <summary>F⁻¹g for the current gradient (an ablation).</summary>
        Gradient,
    }

    /// <summary>Over which parameters SOFIM forms one Fisher matrix.</summary>
    public enum SofimScope
    {
        /// <summary>One for the whole model.</summary>
        Model,
        /// <summary>One per layer.</summary>
        Layer,
        /// <summary>One per tensor.</summary>
        Tensor,
    }

    /// <summary>SOFIM (arXiv 2403.02833): the regularised-Fisher direction in closed form.</summary>
    public sealed class SofimOptions : OptimizerOptions
    {
        static readonly global::GroupedNewton.SofimOptions D = global::GroupedNewton.SofimOptions.Defaults;

        /// <summary>η (default 0.1); the effective step is η/(ρ + ‖m̂‖²).</summary>
        public double LearningRate { get; set; } = D.LearningRate;
        /// <summary>EMA decay of the gradient moment, in [0, 1) (default 0.9).</summary>
        public double Beta { get; set; } = D.Beta;
        /// <summary>ρ &gt; 0, the regularisation of the Fisher matrix (default 0.5).</summary>
        public double Rho { get; set; } = D.Rho;
        /// <summary>Bias-correct the moment (default true).</summary>
        public bool BiasCorrection { get; set; } = D.BiasCorrection;
        /// <summary>Which vector F⁻¹ is applied to (default <see cref="SofimDirection.Momentum"/>).</summary>
        public SofimDirection Direction { get; set; } = CoreCases.FromCore<SofimDirection, global::GroupedNewton.SofimDirection>(D.Direction);
        /// <summary>One F per model, layer or tensor (default <see cref="SofimScope.Model"/>).</summary>
        public SofimScope Scope { get; set; } = CoreCases.FromCore<SofimScope, global::GroupedNewton.SofimScope>(D.Scope);
        /// <summary>Coupled L2 weight decay (default 0).</summary>
        public double WeightDecay { get; set; } = D.WeightDecay;

        /// <inheritdoc/>
        public override string Name => "sofim";
        private protected override double DefaultLearningRate => LearningRate;

        internal global::GroupedNewton.SofimOptions ToCore() =>
            new(learningRate: LearningRate, beta: Beta, rho: Rho, biasCorrection: BiasCorrection,
                direction: CoreCases.ToCore<SofimDirection, global::GroupedNewton.SofimDirection>(Direction, nameof(Direction)),
                scope: CoreCases.ToCore<SofimScope, global::GroupedNewton.SofimScope>(Scope, nameof(Scope)),
                weightDecay: WeightDecay);

        private protected override void ValidateCore() => ToCore().Validate();

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var ps = parameters.Current;
            return new global::GroupedNewton.FirstOrderOptimizer(ps, GroupsOrDefault(ps, groups), new global::GroupedNewton.SofimRule(ToCore()));
        }
    }
}
