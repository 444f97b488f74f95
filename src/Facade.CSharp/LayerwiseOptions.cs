namespace GroupedNewton.CSharp
{
    /// <summary>How K-FAC shares the damping between its two Kronecker factors.</summary>
    public enum KfacDampingSplit
    {
        /// <summary>(A + πγI) ⊗ (G + γ/π·I) with Martens and Grosse's π.</summary>
        Pi,
        /// <summary>(A + γI) ⊗ (G + γI), as in the K-BFGS authors' K-FAC baseline.</summary>
        Plain,
    }

    /// <summary>How a Conv2d layer's K-FAC statistics are scaled over its output locations.</summary>
    public enum KfacConvScaling
    {
        /// <summary>A averaged over samples and locations, G summed over locations (the default).</summary>
        AverageActivations,
        /// <summary>A summed over locations, G averaged over samples and locations (KFC's Ω and Γ).</summary>
        SumActivations,
    }

    /// <summary>Where K-FAC's output gradients come from.</summary>
    public enum KfacFisher
    {
        /// <summary>The training loss itself (the empirical Fisher; no extra pass).</summary>
        Empirical,
        /// <summary>The true Fisher of a classifier: labels sampled from softmax(logits), an extra pass.</summary>
        SampledCategorical,
        /// <summary>The true Fisher of sigmoid outputs (autoencoder): targets sampled from Bernoulli(sigmoid(logits)).</summary>
        SampledBernoulli,
    }

    /// <summary>
    /// K-FAC: per-layer Kronecker-factored Fisher preconditioning. Layer-wise: step it with
    /// <see cref="Optimizer.Step(Tensor, Func{Tensor, Tensor})"/> or through the <see cref="Trainer"/>,
    /// and create it on a model. Layers whose factors exceed <see cref="MaxFactorSize"/> fall back to
    /// SGD with momentum and raise <see cref="Optimizer.Warning"/>.
    /// </summary>
    public sealed class KfacOptions : OptimizerOptions
    {
        static readonly global::GroupedNewton.KfacOptions D = global::GroupedNewton.KfacOptions.Defaults;

        /// <summary>α (default 0.1).</summary>
        public double LearningRate { get; set; } = D.LearningRate;
        /// <summary>λ &gt; 0; each factor is damped by √λ (default 0.1).</summary>
        public double Damping { get; set; } = D.Damping;
        /// <summary>How the damping is split between the factors (default <see cref="KfacDampingSplit.Pi"/>).</summary>
        public KfacDampingSplit DampingSplit { get; set; } = CoreCases.FromCore<KfacDampingSplit, global::GroupedNewton.KfacDampingSplit>(D.DampingSplit);
        /// <summary>β of the gradient momentum, in [0, 1) (default 0.9).</summary>
        public double Momentum { get; set; } = D.Momentum;
        /// <summary>Coupled L2 (default 1e-5).</summary>
        public double WeightDecay { get; set; } = D.WeightDecay;
        /// <summary>Decay of the factor moving averages, in [0, 1) (default 0.9).</summary>
        public double StatDecay { get; set; } = D.StatDecay;
        /// <summary>Steps between factor updates (≥ 1).</summary>
        public int CovarianceInterval { get; set; } = D.CovarianceInterval;
        /// <summary>Steps between inversions (≥ 1, default 20).</summary>
        public int InverseInterval { get; set; } = D.InverseInterval;
        /// <summary>Inversions at each of the first steps (≥ 0, default 20).</summary>
        public int InverseWarmup { get; set; } = D.InverseWarmup;
        /// <summary>KL clipping κ &gt; 0, or null for none.</summary>
        public double? KlClip { get; set; } = CoreOption.ToNullable(D.KlClip);
        /// <summary>Conv statistics scaling.</summary>
        public KfacConvScaling ConvScaling { get; set; } = CoreCases.FromCore<KfacConvScaling, global::GroupedNewton.KfacConvScaling>(D.ConvScaling);
        /// <summary>Empirical or sampled (true) Fisher.</summary>
        public KfacFisher Fisher { get; set; } = KfacFisher.Empirical;
        /// <summary>Layers with a larger factor fall back to SGD with momentum (≥ 1, default 4096).</summary>
        public int MaxFactorSize { get; set; } = D.MaxFactorSize;
        /// <summary>Seed of the sampled-Fisher targets.</summary>
        public int Seed { get; set; } = D.Seed;

        /// <inheritdoc/>
        public override string Name => "kfac";
        private protected override double DefaultLearningRate => LearningRate;

        static FSharpFunc<int, FSharpFunc<CoreTensor, CoreTensor>> Sampler(Func<int, CoreTensor, CoreTensor> f) =>
            FuncConvert.FromFunc<int, FSharpFunc<CoreTensor, CoreTensor>>(seed =>
                FuncConvert.FromFunc<CoreTensor, CoreTensor>(z => f(seed, z)));

        internal global::GroupedNewton.KfacOptions ToCore() =>
            new(learningRate: LearningRate, damping: Damping,
                dampingSplit: CoreCases.ToCore<KfacDampingSplit, global::GroupedNewton.KfacDampingSplit>(DampingSplit, nameof(DampingSplit)),
                momentum: Momentum, weightDecay: WeightDecay, statDecay: StatDecay, covarianceInterval: CovarianceInterval,
                inverseInterval: InverseInterval, inverseWarmup: InverseWarmup, klClip: CoreOption.OfValue(KlClip),
                convScaling: CoreCases.ToCore<KfacConvScaling, global::GroupedNewton.KfacConvScaling>(ConvScaling, nameof(ConvScaling)),
                fisher: CoreFisher(), maxFactorSize: MaxFactorSize, seed: Seed);

        global::GroupedNewton.KfacFisher CoreFisher() => Fisher switch
        {
            KfacFisher.Empirical => global::GroupedNewton.KfacFisher.Empirical,
            KfacFisher.SampledCategorical => global::GroupedNewton.KfacFisher.NewSampled(Sampler(global::GroupedNewton.KfacSamplers.categorical)),
            KfacFisher.SampledBernoulli => global::GroupedNewton.KfacFisher.NewSampled(Sampler(global::GroupedNewton.KfacSamplers.bernoulliLogits)),
            _ => throw new ArgumentOutOfRangeException(nameof(Fisher), Fisher, $"{Fisher} is not a {nameof(KfacFisher)}"),
        };

        private protected override void ValidateCore() => ToCore().Validate();

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var m = RequireModel(model);
            var ps = parameters.Current;
            return new global::GroupedNewton.KfacOptimizer(m.Core, ps, GroupsOrDefault(ps, groups), ToCore());
        }
    }

    /// <summary>Which statistic of the layer inputs the A side of K-BFGS uses.</summary>
    public enum KbfgsAStatistic
    {
        /// <summary>A moving average of the batch statistic, formed explicitly (MLP code).</summary>
        MovingAverage,
        /// <summary>The current batch's statistic, used only through products (CNN mode).</summary>
        MiniBatch,
    }

    /// <summary>How K-BFGS accumulates the gradient momentum.</summary>
    public enum KbfgsMomentum
    {
        /// <summary>Ĝ ← βĜ + (1−β)g.</summary>
        Average,
        /// <summary>Ĝ ← βĜ + g (heavy ball).</summary>
        HeavyBall,
    }

    /// <summary>K-BFGS's H_a at the first step.</summary>
    public enum KbfgsInitialHa
    {
        /// <summary>(A + √λI)⁻¹.</summary>
        Inverse,
        /// <summary>The identity.</summary>
        Identity,
    }

    /// <summary>Precision of K-BFGS's wide matrix products.</summary>
    public enum KbfgsPrecision
    {
        /// <summary>The model's dtype for the wide products; factors and their updates in float64.</summary>
        ModelDtype,
        /// <summary>Every product in float64.</summary>
        Float64,
    }

    /// <summary>The second stage of K-BFGS's damping of a secant pair.</summary>
    public enum KbfgsSecondStage
    {
        /// <summary>Powell's rule against B = I (the MLP code; needs √λ &lt; 1).</summary>
        Powell,
        /// <summary>Levenberg–Marquardt: y ← y + √λ·s (CNN mode).</summary>
        LevenbergMarquardt,
    }

    /// <summary>
    /// K-BFGS, or K-BFGS(L) with <see cref="Limited"/>: per-layer Kronecker-factored BFGS
    /// inverses. Layer-wise: step it with <see cref="Optimizer.Step(Tensor, Func{Tensor, Tensor})"/>
    /// or through the <see cref="Trainer"/>, and create it on a model. New instances carry the
    /// authors' MLP settings; <see cref="Cnn"/> gives CNN mode.
    /// </summary>
    public sealed class KbfgsOptions : OptimizerOptions
    {
        /// <summary>The authors' MLP settings (α = 0.3, λ = 0.3).</summary>
        public KbfgsOptions() : this(global::GroupedNewton.KbfgsOptions.Mlp) { }

        KbfgsOptions(global::GroupedNewton.KbfgsOptions d)
        {
            LearningRate = d.LearningRate; Lambda = d.Lambda; Mu1 = d.Mu1;
            SecondStage = CoreCases.FromCore<KbfgsSecondStage, global::GroupedNewton.SecondStageDamping>(d.SecondStage);
            GradientMomentum = d.GradientMomentum;
            MomentumForm = CoreCases.FromCore<KbfgsMomentum, global::GroupedNewton.KbfgsMomentum>(d.MomentumForm);
            PairMomentum = d.PairMomentum; AMomentum = d.AMomentum;
            AStatistic = CoreCases.FromCore<KbfgsAStatistic, global::GroupedNewton.KbfgsAStatistic>(d.AStatistic);
            MlpRulesForLinear = d.MlpRulesForLinear;
            InitialHa = CoreCases.FromCore<KbfgsInitialHa, global::GroupedNewton.KbfgsInitialHa>(d.InitialHa);
            WeightDecay = d.WeightDecay; GateTolerance = d.GateTolerance; UpdateEvery = d.UpdateEvery; Memory = d.Memory;
            FactorProducts = CoreCases.FromCore<KbfgsPrecision, global::GroupedNewton.KbfgsPrecision>(d.FactorProducts);
            MaxFactorSize = d.MaxFactorSize;
        }

        /// <summary>CNN mode: Levenberg–Marquardt second stage and the minibatch A for every layer.</summary>
        public static KbfgsOptions Cnn() => new(global::GroupedNewton.KbfgsOptions.Cnn);

        /// <summary>K-BFGS(L): H_g kept as an L-BFGS memory of <see cref="Memory"/> pairs (default false: dense K-BFGS).</summary>
        public bool Limited { get; set; }
        /// <summary>α: the step is W ← W − α·H_g·Ĝ·H_a.</summary>
        public double LearningRate { get; set; }
        /// <summary>λ &gt; 0: the factors are damped by √λ.</summary>
        public double Lambda { get; set; }
        /// <summary>μ1 of Powell's damping, in (0, 1).</summary>
        public double Mu1 { get; set; }
        /// <summary>The second damping stage.</summary>
        public KbfgsSecondStage SecondStage { get; set; }
        /// <summary>β of the gradient momentum, in [0, 1).</summary>
        public double GradientMomentum { get; set; }
        /// <summary>How the gradient momentum accumulates.</summary>
        public KbfgsMomentum MomentumForm { get; set; }
        /// <summary>Decay of the moving averages of the G-side secant pair, in [0, 1).</summary>
        public double PairMomentum { get; set; }
        /// <summary>β_A of the moving-average A, in [0, 1).</summary>
        public double AMomentum { get; set; }
        /// <summary>The A-side statistic.</summary>
        public KbfgsAStatistic AStatistic { get; set; }
        /// <summary>Linear layers keep the MLP rules whatever the options say.</summary>
        public bool MlpRulesForLinear { get; set; }
        /// <summary>H_a at the first step.</summary>
        public KbfgsInitialHa InitialHa { get; set; }
        /// <summary>τ: L2 added to the gradient (≥ 0).</summary>
        public double WeightDecay { get; set; }
        /// <summary>The BFGS skip gate tolerance (≥ 0).</summary>
        public double GateTolerance { get; set; }
        /// <summary>Steps between factor updates (≥ 1).</summary>
        public int UpdateEvery { get; set; }
        /// <summary>K-BFGS(L): pairs kept per layer (≥ 1).</summary>
        public int Memory { get; set; }
        /// <summary>Precision of the wide products.</summary>
        public KbfgsPrecision FactorProducts { get; set; }
        /// <summary>Layers with a larger factor fall back to SGD with momentum (≥ 1).</summary>
        public int MaxFactorSize { get; set; }

        /// <inheritdoc/>
        public override string Name => Limited ? "kbfgs-l" : "kbfgs";

        /// <summary>False: K-BFGS keeps one group for all parameters.</summary>
        public override bool SupportsParamGroups => false;

        private protected override double DefaultLearningRate => LearningRate;

        internal global::GroupedNewton.KbfgsOptions ToCore() =>
            new(learningRate: LearningRate, lambda: Lambda, mu1: Mu1,
                secondStage: CoreCases.ToCore<KbfgsSecondStage, global::GroupedNewton.SecondStageDamping>(SecondStage, nameof(SecondStage)),
                gradientMomentum: GradientMomentum,
                momentumForm: CoreCases.ToCore<KbfgsMomentum, global::GroupedNewton.KbfgsMomentum>(MomentumForm, nameof(MomentumForm)),
                pairMomentum: PairMomentum, aMomentum: AMomentum,
                aStatistic: CoreCases.ToCore<KbfgsAStatistic, global::GroupedNewton.KbfgsAStatistic>(AStatistic, nameof(AStatistic)),
                mlpRulesForLinear: MlpRulesForLinear,
                initialHa: CoreCases.ToCore<KbfgsInitialHa, global::GroupedNewton.KbfgsInitialHa>(InitialHa, nameof(InitialHa)),
                weightDecay: WeightDecay, gateTolerance: GateTolerance, updateEvery: UpdateEvery, memory: Memory,
                factorProducts: CoreCases.ToCore<KbfgsPrecision, global::GroupedNewton.KbfgsPrecision>(FactorProducts, nameof(FactorProducts)),
                maxFactorSize: MaxFactorSize);

        private protected override void ValidateCore() => ToCore().Validate();

        internal override CoreOptimizer Build(ParameterSet parameters, Model? model, CoreGroup[]? groups)
        {
            var m = RequireModel(model);
            if (!ReferenceEquals(parameters, m.Parameters))
                throw new ArgumentException($"{Name} works on its model's parameters", nameof(parameters));
            var options = ToCore();
            var core = Limited ? global::GroupedNewton.Kbfgs.createLimited(options, m.Core) : global::GroupedNewton.Kbfgs.create(options, m.Core);
            // the core starts from the model's initial values: hand it the current ones
            core.SetParameters(parameters.Current);
            return core;
        }
    }
}
