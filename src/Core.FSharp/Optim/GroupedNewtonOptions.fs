namespace GroupedNewton

open System

[<RequireQualifiedAccess>]
type GroupedNewtonVariant =
    | NewtonSummary
    | UniformAverage
    /// grouped-newton-auto: rates with nothing to tune (docs/groupednewton.md, "The adaptive
    /// variant"): each subset's own one-dimensional model, one joint length, a per-subset scale
    /// that follows the run, steps the curvature batch confirms, and undoing a period whose
    /// loss jumps.
    | Adaptive

[<RequireQualifiedAccess>]
type CurvatureFailure =
    | Fallback
    | Raise

/// The settings of the Adaptive variant. Its defaults are meant for every model: they are not
/// tuned per task.
type AdaptiveRateOptions = {
    /// The scale c_s every subset starts from (the applied rate is c_s·η_s).
    InitialScale: float
    /// κ: at each curvature update c_s ← c_s·exp(κ·mean cos(∇_s L, u_s of the step before)) over
    /// the period: steps that keep pointing downhill lengthen, steps that overshoot shorten.
    Adaptation: float
    /// The range c_s is kept in.
    MinScale: float
    MaxScale: float
    /// The share of the decrease the S-dimensional model predicts that the curvature batch must
    /// show at the new rates; otherwise every c_s is halved and the check repeated.
    Acceptance: float
    /// Halvings at most per curvature update.
    MaxBacktracks: int
    /// A training loss above this multiple of its running average restores the parameters of
    /// the last curvature update, quarters every c_s and restarts the direction.
    BlowUpFactor: float
} with

    static member Defaults = {
        InitialScale = 0.3
        Adaptation = 1.0
        MinScale = 1e-3
        MaxScale = 1e3
        Acceptance = 0.5
        MaxBacktracks = 20
        BlowUpFactor = 2.0
    }

    member a.Validate() =
        let positive name (v: float) =
            if not (Double.IsFinite v) || v <= 0.0 then
                invalidArg name (sprintf "GroupedNewton: Adaptive.%s must be finite and positive, got %g" name v)

        positive "InitialScale" a.InitialScale
        positive "MinScale" a.MinScale
        positive "MaxScale" a.MaxScale

        if not (Double.IsFinite a.Adaptation) || a.Adaptation < 0.0 then
            invalidArg "Adaptation" (sprintf "GroupedNewton: Adaptive.Adaptation must be finite and non-negative, got %g" a.Adaptation)

        if not (a.MinScale <= a.InitialScale && a.InitialScale <= a.MaxScale) then
            invalidArg
                "InitialScale"
                (sprintf
                    "GroupedNewton: Adaptive.InitialScale must lie in [MinScale, MaxScale] = [%g, %g], got %g"
                    a.MinScale
                    a.MaxScale
                    a.InitialScale)

        if not (a.Acceptance >= 0.0 && a.Acceptance < 1.0) then
            invalidArg "Acceptance" (sprintf "GroupedNewton: Adaptive.Acceptance must be in [0, 1), got %g" a.Acceptance)

        OptionChecks.nonNegativeCount "GroupedNewton" "Adaptive.MaxBacktracks" a.MaxBacktracks

        if not (a.BlowUpFactor > 1.0) then
            invalidArg
                "BlowUpFactor"
                (sprintf "GroupedNewton: Adaptive.BlowUpFactor must be above 1 (+infinity turns the check off), got %g" a.BlowUpFactor)

type GroupedNewtonOptions = {
    Variant: GroupedNewtonVariant
    Damping: float
    Cubic: bool
    LambdaInt: float
    CurvaturePeriod: int
    RateMomentum: float
    SummaryMomentum: float
    ThirdOrderMomentum: float
    AveragePeriod: int
    Warmup: int
    ClipNegativeRates: bool
    ClipAfterRateMomentum: bool
    Ridge: float
    SecondOrderOnly: bool
    DiagonalOnly: bool
    SingularThreshold: float
    MaxRateGrowth: float
    OnCurvatureFailure: CurvatureFailure
    /// The Adaptive variant's settings (the other variants ignore them).
    Adaptive: AdaptiveRateOptions
} with

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
        Adaptive = AdaptiveRateOptions.Defaults
    }

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

    /// grouped-newton-auto: the Adaptive variant with the cubic term (λ_int = 1), one curvature
    /// update every 10 steps, no warm-up and no damping to choose.
    static member Auto = {
        GroupedNewtonOptions.Defaults with
            Variant = GroupedNewtonVariant.Adaptive
            Damping = 1.0
            Cubic = true
            LambdaInt = 1.0
            CurvaturePeriod = 10
    }

    static member RateJumpWarningFactor = 100.0

    static member LossJumpWarningFactor = 10.0

    member o.Validate() =
        let nonNeg name (v: float) =
            if not (Double.IsFinite v) || v < 0.0 then
                invalidArg name (sprintf "GroupedNewton: %s must be finite and non-negative, got %g" name v)

        let unit = OptionChecks.unitInterval "GroupedNewton"

        nonNeg "Damping" o.Damping
        nonNeg "LambdaInt" o.LambdaInt
        nonNeg "Ridge" o.Ridge
        nonNeg "SingularThreshold" o.SingularThreshold
        unit "RateMomentum" o.RateMomentum
        unit "SummaryMomentum" o.SummaryMomentum
        unit "ThirdOrderMomentum" o.ThirdOrderMomentum

        OptionChecks.atLeastOne "GroupedNewton" "CurvaturePeriod" o.CurvaturePeriod

        OptionChecks.atLeastOne "GroupedNewton" "AveragePeriod" o.AveragePeriod

        OptionChecks.nonNegativeCount "GroupedNewton" "Warmup" o.Warmup

        o.Adaptive.Validate()

        if o.Variant = GroupedNewtonVariant.Adaptive && not (o.Cubic && not o.SecondOrderOnly) then
            invalidArg "Cubic" "GroupedNewton: the Adaptive variant needs the cubic term (Cubic = true, SecondOrderOnly = false)"

        if not (o.MaxRateGrowth >= 1.0) then
            invalidArg
                "MaxRateGrowth"
                (sprintf "GroupedNewton: MaxRateGrowth must be at least 1 (+infinity for no bound), got %g" o.MaxRateGrowth)

    static member ValidateMomentum(momentum: float) =
        if not (momentum >= 0.0 && momentum < 1.0) then
            invalidArg "Momentum" (sprintf "GroupedNewton: Momentum of the direction (its SGD momentum) must be in [0, 1), got %g" momentum)

type CurvatureUpdate = {
    Step: int
    Summary: PartitionSummary
    Solution: CubicSolution option
    Fallback: bool
    Rates: (string * float)[]
    LearningRates: (string * float)[]
}
