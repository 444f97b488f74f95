namespace GroupedNewton

/// <summary>Which statistic of the layer inputs the A side of K-BFGS uses (docs/kbfgs.md, "The A side" and
/// "Convolutional layers").</summary>
[<RequireQualifiedAccess>]
type KbfgsAStatistic =
    /// <summary>A ← β_A·A + (1−β_A)·Ā_batch, formed explicitly (the NeurIPS MLP code). Step 0 starts from the warm-start
    /// average when WarmStart was called, else from the first batch's Ā.</summary>
    | MovingAverage
    /// <summary>The current batch's Ā only, never formed: used through the products Ā·s (the CNN paper's
    /// "miniBatchADamped", reconstructed). Formed once, at step 0, for H_a's inverse.</summary>
    | MiniBatch

/// <summary>How the gradient momentum Ĝ accumulates the regularised gradient g.</summary>
[<RequireQualifiedAccess>]
type KbfgsMomentum =
    /// <summary>Ĝ ← β·Ĝ + (1−β)·g, no bias correction (the NeurIPS code).</summary>
    | Average
    /// <summary>Ĝ ← β·Ĝ + g (heavy ball, as in the authors' later code; steps about 1/(1−β) times larger).</summary>
    | HeavyBall

/// <summary>H_a at the first step.</summary>
[<RequireQualifiedAccess>]
type KbfgsInitialHa =
    /// <summary>(A + √λ·I)⁻¹ by Cholesky: the only explicit inverse of the run.</summary>
    | Inverse
    /// <summary>The identity (the "IdentityInitial" variant of the authors' CNN-era code).</summary>
    | Identity

/// <summary>The precision of the wide matrix products of the factor work.</summary>
[<RequireQualifiedAccess>]
type KbfgsPrecision =
    /// <summary>Ā = āᵀā/N, the Ā·s products and the direction H_g·Ĝ·H_a in the model's dtype (float32 GEMMs for a float32
    /// model); the stored factors, their BFGS updates, the damping and all inner products stay float64.</summary>
    | ModelDtype
    /// <summary>Every product in float64.</summary>
    | Float64

/// <summary>K-BFGS and K-BFGS(L) hyperparameters (defaults from the authors' MLP code; docs/kbfgs.md, "Defaults").</summary>
type KbfgsOptions = {
    /// <summary>α &gt; 0: the step is W ← W − α·H_g·Ĝ·H_a.</summary>
    LearningRate: float
    /// <summary>λ &gt; 0: the factors are damped by √λ (λ_A = λ_G = μ2 = √λ); below 1 with the Powell second stage.</summary>
    Lambda: float
    /// <summary>μ1 in (0, 1) of Powell's damping on H.</summary>
    Mu1: float
    /// <summary>Second damping stage: Powell with B = I ("DD", MLP mode) or Levenberg–Marquardt ("DDV2", CNN mode).</summary>
    SecondStage: SecondStageDamping
    /// <summary>β in [0, 1) of the gradient momentum.</summary>
    GradientMomentum: float
    /// <summary>How the gradient momentum accumulates.</summary>
    MomentumForm: KbfgsMomentum
    /// <summary>Decay in [0, 1) of the moving averages of the G-side secant pair (s̄, ȳ); 0 uses each pair as it is.</summary>
    PairMomentum: float
    /// <summary>β_A in [0, 1) of the moving-average A.</summary>
    AMomentum: float
    /// <summary>Which statistic of the layer inputs the A side uses.</summary>
    AStatistic: KbfgsAStatistic
    /// <summary>Linear layers keep the MLP rules (moving-average A, Powell second stage) whatever AStatistic and
    /// SecondStage say, as the third-party CNN code does; conv layers follow the options. Off by default.</summary>
    MlpRulesForLinear: bool
    /// <summary>H_a at the first step.</summary>
    InitialHa: KbfgsInitialHa
    /// <summary>τ ≥ 0: L2 term τ·W added to the gradient (weights and biases).</summary>
    WeightDecay: float
    /// <summary>The BFGS skip gate ≥ 0: no update when sᵀy ≤ GateTolerance·sᵀs·‖g‖.</summary>
    GateTolerance: float
    /// <summary>The trial pass and the factor updates happen every UpdateEvery ≥ 1 steps (1 in the MLP code).</summary>
    UpdateEvery: int
    /// <summary>K-BFGS(L): number ≥ 1 of (s, y) pairs kept per layer.</summary>
    Memory: int
    /// <summary>Precision of the GEMMs of the factor work.</summary>
    FactorProducts: KbfgsPrecision
    /// <summary>Layers with d_a or d_g above this are not preconditioned: they fall back to the momentum SGD rule,
    /// with a Warning.</summary>
    MaxFactorSize: int
} with

    /// <summary>The NeurIPS 2020 MLP settings: α = 0.3, λ = 0.3 (the authors' MNIST demo), μ1 = 0.2, Powell second stage,
    /// momenta 0.9, τ = 1e-5, gate 1e-4, every step, memory 100, factors up to 4096.</summary>
    static member Mlp: KbfgsOptions

    /// <summary>CNN mode (docs/kbfgs.md, "Convolutional layers"; reconstructed): the Mlp settings with the Levenberg–Marquardt
    /// second stage and the minibatch A used only through products, for every layer.</summary>
    static member Cnn: KbfgsOptions

    /// <summary>The Mlp settings.</summary>
    static member Defaults: KbfgsOptions

    /// <summary>Checks every option.</summary>
    /// <exception cref="System.ArgumentException">an option is out of the range its field gives, or λ ≥ 1 with the Powell second
    /// stage (μ2 = √λ must be below 1); the parameter name is the option's.</exception>
    member Validate: unit -> unit

/// <summary>What the factor updates of one preconditioned layer have done so far.</summary>
type KbfgsLayerCounts = {
    /// <summary>The layer's weight parameter.</summary>
    Layer: string
    /// <summary>H_g updates made (K-BFGS(L): pairs stored).</summary>
    GUpdated: int
    /// <summary>H_g updates skipped by a gate (K-BFGS(L): pairs rejected).</summary>
    GSkipped: int
    /// <summary>Pairs whose s Powell's damping on H replaced.</summary>
    PowellDamped: int
    /// <summary>Pairs whose y the second stage changed.</summary>
    SecondStageDamped: int
    /// <summary>H_a updates made by the Hessian-action pair.</summary>
    AUpdated: int
    /// <summary>H_a updates not made (the BFGS update refused the pair).</summary>
    ASkipped: int
}
