namespace GroupedNewton

open System
open System.Collections.Generic

[<RequireQualifiedAccess>]
type KbfgsAStatistic =
    | MovingAverage
    | MiniBatch

[<RequireQualifiedAccess>]
type KbfgsMomentum =
    | Average
    | HeavyBall

[<RequireQualifiedAccess>]
type KbfgsInitialHa =
    | Inverse
    | Identity

[<RequireQualifiedAccess>]
type KbfgsPrecision =
    | ModelDtype
    | Float64

type KbfgsOptions = {
    LearningRate: float
    Lambda: float
    Mu1: float
    SecondStage: SecondStageDamping
    GradientMomentum: float
    MomentumForm: KbfgsMomentum
    PairMomentum: float
    AMomentum: float
    AStatistic: KbfgsAStatistic
    MlpRulesForLinear: bool
    InitialHa: KbfgsInitialHa
    WeightDecay: float
    GateTolerance: float
    UpdateEvery: int
    Memory: int
    FactorProducts: KbfgsPrecision
    MaxFactorSize: int
} with

    static member Mlp = {
        LearningRate = 0.3
        Lambda = 0.3
        Mu1 = 0.2
        SecondStage = SecondStageDamping.Powell
        GradientMomentum = 0.9
        MomentumForm = KbfgsMomentum.Average
        PairMomentum = 0.9
        AMomentum = 0.9
        AStatistic = KbfgsAStatistic.MovingAverage
        MlpRulesForLinear = false
        InitialHa = KbfgsInitialHa.Inverse
        WeightDecay = 1e-5
        GateTolerance = 1e-4
        UpdateEvery = 1
        Memory = 100
        FactorProducts = KbfgsPrecision.ModelDtype
        MaxFactorSize = 4096
    }

    static member Cnn = {
        KbfgsOptions.Mlp with
            SecondStage = SecondStageDamping.LevenbergMarquardt
            AStatistic = KbfgsAStatistic.MiniBatch
    }

    static member Defaults = KbfgsOptions.Mlp

    member o.Validate() =
        let positive = OptionChecks.positive "K-BFGS"
        let unitInterval = OptionChecks.unitInterval "K-BFGS"

        positive "LearningRate" o.LearningRate
        positive "Lambda" o.Lambda

        if not (o.Mu1 > 0.0 && o.Mu1 < 1.0) then
            invalidArg "Mu1" (sprintf "K-BFGS: Mu1 must be in (0, 1), got %g" o.Mu1)

        if (o.SecondStage = SecondStageDamping.Powell || o.MlpRulesForLinear) && o.Lambda >= 1.0 then
            invalidArg "Lambda" (sprintf "K-BFGS: the Powell second stage needs μ2 = √λ < 1, got λ = %g" o.Lambda)

        unitInterval "GradientMomentum" o.GradientMomentum
        unitInterval "PairMomentum" o.PairMomentum
        unitInterval "AMomentum" o.AMomentum

        OptionChecks.nonNegative "K-BFGS" "WeightDecay" o.WeightDecay

        OptionChecks.nonNegative "K-BFGS" "GateTolerance" o.GateTolerance

        OptionChecks.atLeastOne "K-BFGS" "UpdateEvery" o.UpdateEvery

        OptionChecks.atLeastOne "K-BFGS" "Memory" o.Memory

        OptionChecks.atLeastOne "K-BFGS" "MaxFactorSize" o.MaxFactorSize

type KbfgsLayerCounts = {
    Layer: string
    GUpdated: int
    GSkipped: int
    PowellDamped: int
    SecondStageDamped: int
    AUpdated: int
    ASkipped: int
}
