namespace GroupedNewton

open System
open System.Collections.Generic

[<RequireQualifiedAccess>]
type KfacDampingSplit =
    | Pi
    | Plain

[<RequireQualifiedAccess>]
type KfacConvScaling =
    | AverageActivations
    | SumActivations

[<RequireQualifiedAccess>]
type KfacFisher =
    | Empirical
    | Sampled of sampler: (int -> Tensor -> Tensor)

type KfacOptions = {
    LearningRate: float
    Damping: float
    DampingSplit: KfacDampingSplit
    Momentum: float
    WeightDecay: float
    StatDecay: float
    CovarianceInterval: int
    InverseInterval: int
    InverseWarmup: int
    KlClip: float option
    ConvScaling: KfacConvScaling
    Fisher: KfacFisher
    MaxFactorSize: int
    Seed: int
} with

    static member Defaults = {
        LearningRate = 0.1
        Damping = 0.1
        DampingSplit = KfacDampingSplit.Pi
        Momentum = 0.9
        WeightDecay = 1e-5
        StatDecay = 0.9
        CovarianceInterval = 1
        InverseInterval = 20
        InverseWarmup = 20
        KlClip = None
        ConvScaling = KfacConvScaling.AverageActivations
        Fisher = KfacFisher.Empirical
        MaxFactorSize = 4096
        Seed = 0
    }

    member o.Validate() =
        let positive = OptionChecks.positive "K-FAC"

        positive "LearningRate" o.LearningRate
        positive "Damping" o.Damping

        OptionChecks.unitInterval "K-FAC" "Momentum" o.Momentum

        OptionChecks.unitInterval "K-FAC" "StatDecay" o.StatDecay

        OptionChecks.nonNegative "K-FAC" "WeightDecay" o.WeightDecay

        OptionChecks.atLeastOne "K-FAC" "CovarianceInterval" o.CovarianceInterval

        OptionChecks.atLeastOne "K-FAC" "InverseInterval" o.InverseInterval

        OptionChecks.nonNegativeCount "K-FAC" "InverseWarmup" o.InverseWarmup

        OptionChecks.atLeastOne "K-FAC" "MaxFactorSize" o.MaxFactorSize

        match o.KlClip with
        | Some k -> positive "KlClip" k
        | None -> ()

type KfacDiagnostics = {
    Steps: int
    FactorUpdates: int
    SkippedFactorUpdates: int
    Inversions: int
    InversionRetries: int
    FailedInversions: int
    PreconditionedLayers: int
    FallbackParameters: string[]
    LastKlScale: float
}

[<RequireQualifiedAccess>]
module KfacSamplers =
    let bernoulliLogits (seed: int) (logits: Tensor) =
        let z = Tensor.toArray logits
        let rng = Random(seed)
        let y = z |> Array.map (fun v -> if rng.NextDouble() < 1.0 / (1.0 + Math.Exp(-v)) then 1.0 else 0.0)
        let targets = Tensor.cast logits.Dtype (Tensor.ofArrayShape y logits.Shape)
        Losses.bceWithLogits logits targets

    let categorical (seed: int) (logits: Tensor) =
        let n, k = logits.Shape.[0], logits.Shape.[1]
        let z = Tensor.toArray logits
        let rng = Random(seed)

        let labels =
            Array.init n (fun i ->
                let row = Array.sub z (i * k) k
                let top = Array.max row
                let w = row |> Array.map (fun v -> Math.Exp(v - top))
                let u = rng.NextDouble() * Array.sum w
                let mutable acc = 0.0
                let mutable c = k - 1
                let mutable j = 0

                while j < k do
                    acc <- acc + w.[j]

                    if u < acc then
                        c <- j
                        j <- k

                    j <- j + 1

                c)

        Losses.crossEntropy logits (Tensor.ofInts labels)
