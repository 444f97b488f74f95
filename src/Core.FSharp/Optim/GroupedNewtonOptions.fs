namespace GroupedNewton

open System

/// Which GroupedNewton procedure (docs/groupednewton.md, "Variants").
[<RequireQualifiedAccess>]
type GroupedNewtonVariant =
    /// The reference README's optimizer: optional moving averages on the summaries and on d;
    /// a failed curvature update feeds η = 0 into the rate average (with a Warning).
    | NewtonSummary
    /// The paper's final runs: uniform averaging of the summaries over the current and the
    /// previous period, a warm-up, and reuse of the previous rates on a failed curvature update
    /// (with a Warning).
    | UniformAverage

/// What a failed curvature update does (a summary with a non-finite entry, a non-finite loss on
/// the curvature batch, a solver failure).
[<RequireQualifiedAccess>]
type CurvatureFailure =
    /// The variant's rule: UniformAverage reuses the previous rates, NewtonSummary feeds η = 0
    /// into the rate average; either way the optimizer raises a Warning naming the subset and
    /// the value, and the step goes on.
    | Fallback
    /// The step raises OptimizationException and changes nothing (parameters, rates, state).
    | Raise

/// GroupedNewton hyperparameters. The names say what each one does; docs/groupednewton.md
/// gives the reference implementation's name of each (period_hg, mom_lrs, …).
type GroupedNewtonOptions = {
    Variant: GroupedNewtonVariant
    /// λ₁: the group learning rate is Damping · η_s.
    Damping: float
    /// Cubic regularisation; off: η = (H̄ + Ridge·I)⁻¹ḡ.
    Cubic: bool
    /// λ_int, the weight of the cubic term.
    LambdaInt: float
    /// Steps between two curvature updates (≥ 1).
    CurvaturePeriod: int
    /// Moving-average weight on η across curvature updates, in [0, 1); 0 at the first update.
    RateMomentum: float
    /// Moving-average weight on ḡ, H̄ and D̄ across curvature updates, in [0, 1) (NewtonSummary only).
    SummaryMomentum: float
    /// Moving-average weight on d = |D̄_sss|^{1/3}, in [0, 1) (NewtonSummary only, and only
    /// while SummaryMomentum is 0, which supersedes it).
    ThirdOrderMomentum: float
    /// Uniform-average period in curvature updates (UniformAverage only).
    AveragePeriod: int
    /// Curvature updates before the parameters move (UniformAverage only).
    Warmup: int
    /// Clip negative rates η_s to 0.
    ClipNegativeRates: bool
    /// NewtonSummary: true runs the rate average on the raw η and clips after it; false
    /// clips each fresh η before it enters the average.
    ClipAfterRateMomentum: bool
    /// Added to H̄'s diagonal when the cubic term is off.
    Ridge: float
    /// η = H̄⁻¹ḡ from the second order alone (no third-order passes, no cubic term).
    SecondOrderOnly: bool
    /// Use only the diagonal of H̄.
    DiagonalOnly: bool
    /// Relative threshold on d below which a subset counts as quadratic.
    SingularThreshold: float
    /// Bound on the change of the rates between two curvature updates: a fresh |η_s| is
    /// clipped to MaxRateGrowth · |η_s| of the previous update (where that is not 0).
    /// +∞ (the default) leaves the rates unbounded.
    MaxRateGrowth: float
    /// What a failed curvature update does.
    OnCurvatureFailure: CurvatureFailure
} with

    /// The class defaults of the reference.
    static member Defaults = {
        Variant = GroupedNewtonVariant.NewtonSummary
        Damping = 1.0
        Cubic = false
        LambdaInt = 1.0
        CurvaturePeriod = 1
        RateMomentum = 0.0
        SummaryMomentum = 0.0
        ThirdOrderMomentum = 0.0
        AveragePeriod = 1
        Warmup = 0
        ClipNegativeRates = false
        ClipAfterRateMomentum = false
        Ridge = 0.0
        SecondOrderOnly = false
        DiagonalOnly = false
        SingularThreshold = 0.0
        MaxRateGrowth = Double.PositiveInfinity
        OnCurvatureFailure = CurvatureFailure.Fallback
    }

    /// The settings of the paper's final MLP runs (damping .03; LeNet and VGG used .3).
    static member Paper = {
        GroupedNewtonOptions.Defaults with
            Variant = GroupedNewtonVariant.UniformAverage
            Damping = 0.03
            Cubic = true
            LambdaInt = 1.0
            CurvaturePeriod = 10
            AveragePeriod = 3
            Warmup = 3
            ClipNegativeRates = true
    }

    /// A rate a subset jumps by more than this factor between two curvature updates raises a Warning.
    static member RateJumpWarningFactor = 100.0

    /// Raises ArgumentException naming the first option out of its range.
    member o.Validate() =
        let nonNeg name (v: float) =
            if not (Double.IsFinite v) || v < 0.0 then
                invalidArg name (sprintf "GroupedNewton: %s must be finite and non-negative, got %g" name v)

        let unit name (v: float) =
            if not (v >= 0.0 && v < 1.0) then
                invalidArg name (sprintf "GroupedNewton: %s must be in [0, 1), got %g" name v)

        nonNeg "Damping" o.Damping
        nonNeg "LambdaInt" o.LambdaInt
        nonNeg "Ridge" o.Ridge
        nonNeg "SingularThreshold" o.SingularThreshold
        unit "RateMomentum" o.RateMomentum
        unit "SummaryMomentum" o.SummaryMomentum
        unit "ThirdOrderMomentum" o.ThirdOrderMomentum

        if o.CurvaturePeriod < 1 then
            invalidArg "CurvaturePeriod" (sprintf "GroupedNewton: CurvaturePeriod must be at least 1, got %d" o.CurvaturePeriod)

        if o.AveragePeriod < 1 then
            invalidArg "AveragePeriod" (sprintf "GroupedNewton: AveragePeriod must be at least 1, got %d" o.AveragePeriod)

        if o.Warmup < 0 then
            invalidArg "Warmup" (sprintf "GroupedNewton: Warmup must be non-negative, got %d" o.Warmup)

        if not (o.MaxRateGrowth >= 1.0) then
            invalidArg
                "MaxRateGrowth"
                (sprintf "GroupedNewton: MaxRateGrowth must be at least 1 (+infinity for no bound), got %g" o.MaxRateGrowth)

    /// Raises ArgumentException unless the momentum of the SGD direction is in [0, 1) (a
    /// momentum of 1 or more makes the direction grow without bound).
    static member ValidateMomentum(momentum: float) =
        if not (momentum >= 0.0 && momentum < 1.0) then
            invalidArg "Momentum" (sprintf "GroupedNewton: Momentum of the direction (its SGD momentum) must be in [0, 1), got %g" momentum)

/// One curvature update, as observed after it happened.
type CurvatureUpdate = {
    Step: int
    /// The summary after averaging.
    Summary: PartitionSummary
    /// The solver's answer (None without the cubic term).
    Solution: CubicSolution option
    /// True when the curvature update failed (non-finite summary or loss, solver failure) and
    /// the variant's fallback rates were used.
    Fallback: bool
    /// η used for the step, named by subset.
    Rates: (string * float)[]
    /// Damping · η per subset: the group learning rates.
    LearningRates: (string * float)[]
}
