namespace GroupedNewton

/// <summary>Which GroupedNewton procedure (docs/groupednewton.md, "Variants").</summary>
[<RequireQualifiedAccess>]
type GroupedNewtonVariant =
    /// <summary>The reference README's optimizer: optional moving averages on the summaries and on d; a failed curvature
    /// update feeds η = 0 into the rate average (with a Warning).</summary>
    | NewtonSummary
    /// <summary>The paper's final runs: uniform averaging of the summaries over the current and the previous period, a
    /// warm-up, and reuse of the previous rates on a failed curvature update (with a Warning).</summary>
    | UniformAverage
    /// <summary>grouped-newton-auto, the variant with nothing to tune: each subset's rate from its own one-dimensional
    /// cubic model, one joint length from the S-dimensional model, a per-subset scale that follows the run, rates the
    /// curvature batch must confirm, and the last period undone when the training loss jumps. A failed curvature
    /// update reuses the previous rates (with a Warning). docs/groupednewton.md, "The adaptive variant".</summary>
    | Adaptive

/// <summary>What a failed curvature update does (a summary with a non-finite entry, a non-finite loss on the curvature
/// batch, a solver failure); docs/groupednewton.md, "Failed curvature updates and other guard rails".</summary>
[<RequireQualifiedAccess>]
type CurvatureFailure =
    /// <summary>The variant's rule: UniformAverage reuses the previous rates, NewtonSummary feeds η = 0 into the rate
    /// average; either way the optimizer raises a Warning naming the subset and the value, and the step goes on.</summary>
    | Fallback
    /// <summary>The step raises OptimizationException and changes nothing (parameters, rates, state).</summary>
    | Raise

/// <summary>The settings of the Adaptive variant; the defaults are one set for every model, not tuned per task.</summary>
type AdaptiveRateOptions = {
    /// <summary>The scale c_s > 0 every subset starts from (the applied rate is Damping·c_s·η_s).</summary>
    InitialScale: float
    /// <summary>κ ≥ 0: at each curvature update c_s ← c_s·exp(κ·m_s), m_s the mean over the period of the cosine
    /// between subset s's gradient and its direction of the step before: steps that keep pointing downhill grow,
    /// steps that overshoot shrink.</summary>
    Adaptation: float
    /// <summary>Lower bound of c_s (> 0).</summary>
    MinScale: float
    /// <summary>Upper bound of c_s.</summary>
    MaxScale: float
    /// <summary>The share in [0, 1) of the decrease the S-dimensional model predicts for the new rates that the
    /// curvature batch must show; otherwise every c_s is halved and the check repeated.</summary>
    Acceptance: float
    /// <summary>Halvings at most per curvature update (≥ 0).</summary>
    MaxBacktracks: int
    /// <summary>A training loss above this multiple (> 1) of its running average restores the parameters of the last
    /// curvature update, quarters every c_s, restarts the direction and makes the next step a curvature update (with a
    /// Warning). +∞ turns the check off.</summary>
    BlowUpFactor: float
} with

    /// <summary>InitialScale 0.3, Adaptation 1, scales in [1e-3, 1e3], Acceptance 0.5, at most 20 halvings,
    /// BlowUpFactor 2.</summary>
    static member Defaults: AdaptiveRateOptions

    /// <summary>Checks every setting.</summary>
    /// <exception cref="System.ArgumentException">the first setting out of its range (the parameter name is the setting's).</exception>
    member Validate: unit -> unit

/// <summary>GroupedNewton hyperparameters.</summary>
/// <remarks>The names say what each option does; docs/groupednewton.md, "Option names and the reference's names",
/// gives the reference implementation's name of each (period_hg, mom_lrs, …).</remarks>
type GroupedNewtonOptions = {
    /// <summary>Which procedure.</summary>
    Variant: GroupedNewtonVariant
    /// <summary>λ₁ ≥ 0: the group learning rate is Damping·η_s.</summary>
    Damping: float
    /// <summary>Cubic regularisation; off: η = (H̄ + Ridge·I)⁻¹ḡ.</summary>
    Cubic: bool
    /// <summary>λ_int ≥ 0, the weight of the cubic term.</summary>
    LambdaInt: float
    /// <summary>Steps between two curvature updates (≥ 1).</summary>
    CurvaturePeriod: int
    /// <summary>Moving-average weight on η across curvature updates, in [0, 1); 0 at the first update.</summary>
    RateMomentum: float
    /// <summary>Moving-average weight on ḡ, H̄ and D̄ across curvature updates, in [0, 1) (NewtonSummary only).</summary>
    SummaryMomentum: float
    /// <summary>Moving-average weight on d = |D̄_sss|^{1/3}, in [0, 1) (NewtonSummary only, and only while
    /// SummaryMomentum is 0, which supersedes it).</summary>
    ThirdOrderMomentum: float
    /// <summary>Uniform-average period in curvature updates, ≥ 1 (UniformAverage only).</summary>
    AveragePeriod: int
    /// <summary>Curvature updates before the parameters move, ≥ 0 (UniformAverage only).</summary>
    Warmup: int
    /// <summary>Clip negative rates η_s to 0.</summary>
    ClipNegativeRates: bool
    /// <summary>NewtonSummary: true runs the rate average on the raw η and clips after it; false clips each fresh η
    /// before it enters the average.</summary>
    ClipAfterRateMomentum: bool
    /// <summary>Added to H̄'s diagonal when the cubic term is off (≥ 0).</summary>
    Ridge: float
    /// <summary>η = H̄⁻¹ḡ from the second order alone (no third-order passes, no cubic term).</summary>
    SecondOrderOnly: bool
    /// <summary>Use only the diagonal of H̄.</summary>
    DiagonalOnly: bool
    /// <summary>Relative threshold (≥ 0) on d below which a subset counts as quadratic (see <c>CubicOptions.SingularThreshold</c>).</summary>
    SingularThreshold: float
    /// <summary>Bound (≥ 1) on the change of the rates between two curvature updates: a fresh |η_s| is clipped to
    /// MaxRateGrowth·|η_s| of the previous update (where that is not 0). +∞ (the default) leaves the rates unbounded.</summary>
    MaxRateGrowth: float
    /// <summary>What a failed curvature update does.</summary>
    OnCurvatureFailure: CurvatureFailure
    /// <summary>The Adaptive variant's settings (the other variants ignore them).</summary>
    Adaptive: AdaptiveRateOptions
} with

    /// <summary>The class defaults of the reference: NewtonSummary, Damping 1, no cubic term (λ_int = 1 when it is on),
    /// a curvature update every step, no moving averages, no clipping, no ridge, unbounded rates, Fallback on failure.</summary>
    static member Defaults: GroupedNewtonOptions

    /// <summary>The settings of the paper's final MLP runs: UniformAverage, Damping 0.03 (LeNet and VGG used 0.3), cubic
    /// term with λ_int = 1, curvature every 10 steps, average period 3, warm-up 3, negative rates clipped.</summary>
    static member Paper: GroupedNewtonOptions

    /// <summary>grouped-newton-auto: the Adaptive variant with the cubic term (λ_int = 1), a curvature update every 10
    /// steps, Damping 1, no warm-up; AdaptiveRateOptions.Defaults.</summary>
    static member Auto: GroupedNewtonOptions

    /// <summary>A rate whose magnitude jumps by more than this factor (100) between two curvature updates raises a Warning (core use only).</summary>
    static member internal RateJumpWarningFactor: float

    /// <summary>A step's training loss above this factor (10) times its running average raises a Warning in the
    /// paper's variants (core use only).</summary>
    static member internal LossJumpWarningFactor: float

    /// <summary>Checks every option.</summary>
    /// <exception cref="System.ArgumentException">the first option out of the range its field gives (the parameter name is the option's).</exception>
    member Validate: unit -> unit

    /// <summary>Checks the momentum of the SGD direction: it must be in [0, 1) (a momentum of 1 or more makes the
    /// direction grow without bound).</summary>
    /// <exception cref="System.ArgumentException">the momentum is outside [0, 1) (parameter name "Momentum").</exception>
    static member ValidateMomentum: momentum: float -> unit

/// <summary>One curvature update of a GroupedNewton optimizer, as observed after it happened.</summary>
type CurvatureUpdate = {
    /// <summary>The number of steps taken before the one that made this update (0 for the first step).</summary>
    Step: int
    /// <summary>The summary after averaging.</summary>
    Summary: PartitionSummary
    /// <summary>The solver's answer (None without the cubic term).</summary>
    Solution: CubicSolution option
    /// <summary>True when the curvature update failed (non-finite summary or loss, solver failure) and the variant's
    /// fallback rates were used.</summary>
    Fallback: bool
    /// <summary>η used for the step, named by subset.</summary>
    Rates: (string * float)[]
    /// <summary>Damping·η per subset: the group learning rates.</summary>
    LearningRates: (string * float)[]
}
