namespace GroupedNewton

open System

[<RequireQualifiedAccess>]
type GroupedNewtonVariant =
    | NewtonSummary
    | UniformAverage

[<RequireQualifiedAccess>]
type CurvatureFailure =
    | Fallback
    | Raise

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

    static member RateJumpWarningFactor = 100.0

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
