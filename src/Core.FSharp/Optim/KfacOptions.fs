namespace GroupedNewton

open System
open System.Collections.Generic

/// How the Tikhonov damping γ = √λ is shared between the two Kronecker factors.
[<RequireQualifiedAccess>]
type KfacDampingSplit =
    /// (A + πγI) ⊗ (G + γ/π·I) with π = sqrt((tr A / d_a) / (tr G / d_g)) (Martens & Grosse);
    /// π = 1 when either trace is zero or not finite.
    | Pi
    /// (A + γI) ⊗ (G + γI), as in the K-BFGS authors' K-FAC baseline.
    | Plain

/// How a Conv2d layer's statistics are scaled over its output locations T. Both give the
/// same product A ⊗ G (KFC's Ω ⊗ Γ); with the π split they also give the same damped
/// factors, so the choice only matters under plain damping.
[<RequireQualifiedAccess>]
type KfacConvScaling =
    /// A = mean over samples and locations of āāᵀ; G = mean over samples of the sum over
    /// locations of ggᵀ (the default).
    | AverageActivations
    /// A = mean over samples of the sum over locations of āāᵀ (KFC's Ω, the K-BFGS authors'
    /// conv statistic); G = mean over samples and locations of ggᵀ (KFC's Γ). The conv rules of the
    /// K-BFGS authors are reconstructed (docs/kbfgs.md, "Convolutional layers"), hence the switch.
    | SumActivations

/// Where the output gradients g of the G factor come from.
[<RequireQualifiedAccess>]
type KfacFisher =
    /// g from the training loss itself (the empirical Fisher; no extra pass).
    | Empirical
    /// The true Fisher as the K-BFGS authors' baseline computes it: an extra forward and
    /// reverse pass on a loss with targets sampled from the model's predictive distribution.
    /// The sampler gets a seed and the model output and returns that loss of the output.
    | Sampled of sampler: (int -> Tensor -> Tensor)

/// K-FAC hyperparameters. λ (Damping) and the learning rate are the two to tune (the K-BFGS
/// authors' protocol); the other defaults follow their K-FAC baseline where it is known.
type KfacOptions = {
    /// α: the step is W ← W − α·G⁻¹ M A⁻¹ with M the gradient momentum.
    LearningRate: float
    /// λ > 0; each factor is damped by γ = √λ (so the Kronecker product carries λI).
    Damping: float
    DampingSplit: KfacDampingSplit
    /// β of the gradient momentum M ← βM + (1 − β)(∇L + τW) (an EMA, no bias correction,
    /// as in the authors' baselines); 0 disables it.
    Momentum: float
    /// τ: coupled L2 added to the gradient of weights and biases before the momentum.
    WeightDecay: float
    /// ε of the factor moving averages F ← εF + (1 − ε)F_batch; the first update takes
    /// the batch statistic.
    StatDecay: float
    /// Factors are updated every CovarianceInterval steps.
    CovarianceInterval: int
    /// Inverses are recomputed every InverseInterval steps…
    InverseInterval: int
    /// …and at every one of the first InverseWarmup steps.
    InverseWarmup: int
    /// Optional KL clipping: the step is scaled by min(1, sqrt(κ / (α²·Σ⟨Δ, ∇L⟩))).
    KlClip: float option
    ConvScaling: KfacConvScaling
    Fisher: KfacFisher
    /// Layers with a factor larger than this (d_a or d_g) are not preconditioned: their
    /// parameters fall back to SGD with momentum (with a warning).
    MaxFactorSize: int
    /// Seed of the sampled-Fisher targets (mixed with the step number).
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
        let positive name (v: float) =
            if not (Double.IsFinite v) || v <= 0.0 then
                invalidArg name (sprintf "K-FAC: %s must be positive, got %g" name v)

        positive "LearningRate" o.LearningRate
        positive "Damping" o.Damping

        if not (o.Momentum >= 0.0 && o.Momentum < 1.0) then
            invalidArg "Momentum" (sprintf "K-FAC: Momentum must be in [0, 1), got %g" o.Momentum)

        if not (o.StatDecay >= 0.0 && o.StatDecay < 1.0) then
            invalidArg "StatDecay" (sprintf "K-FAC: StatDecay must be in [0, 1), got %g" o.StatDecay)

        if not (Double.IsFinite o.WeightDecay) || o.WeightDecay < 0.0 then
            invalidArg "WeightDecay" (sprintf "K-FAC: WeightDecay must be non-negative, got %g" o.WeightDecay)

        if o.CovarianceInterval < 1 then
            invalidArg "CovarianceInterval" (sprintf "K-FAC: CovarianceInterval must be at least 1, got %d" o.CovarianceInterval)

        if o.InverseInterval < 1 then
            invalidArg "InverseInterval" (sprintf "K-FAC: InverseInterval must be at least 1, got %d" o.InverseInterval)

        if o.InverseWarmup < 0 then
            invalidArg "InverseWarmup" (sprintf "K-FAC: InverseWarmup must be non-negative, got %d" o.InverseWarmup)

        if o.MaxFactorSize < 1 then
            invalidArg "MaxFactorSize" (sprintf "K-FAC: MaxFactorSize must be at least 1, got %d" o.MaxFactorSize)

        match o.KlClip with
        | Some k -> positive "KlClip" k
        | None -> ()

/// Counters of what K-FAC has done so far.
type KfacDiagnostics = {
    Steps: int
    /// Factor moving-average updates (one per layer and covariance step).
    FactorUpdates: int
    /// Factor batch statistics that were not finite and were skipped.
    SkippedFactorUpdates: int
    /// Damped factors inverted (two per layer and inverse step).
    Inversions: int
    /// Inversions that needed extra diagonal jitter to factorise.
    InversionRetries: int
    /// Inversions that failed even with jitter (the previous inverse, or 1/damping·I, was kept).
    FailedInversions: int
    PreconditionedLayers: int
    /// Parameters updated by the SGD-momentum fallback.
    FallbackParameters: string[]
    /// The KL-clipping scale of the last step (1 without clipping).
    LastKlScale: float
}

/// Samplers for KfacFisher.Sampled: a loss of the model output with targets drawn from the
/// distribution the output parameterises, so its output gradients give the true Fisher.
[<RequireQualifiedAccess>]
module KfacSamplers =
    /// Targets y ~ Bernoulli(sigmoid(z)) for logits z; the loss is Losses.bceWithLogits
    /// (summed over features, averaged over the batch).
    let bernoulliLogits (seed: int) (logits: Tensor) =
        let z = Tensor.toArray logits
        let rng = Random(seed)
        let y = z |> Array.map (fun v -> if rng.NextDouble() < 1.0 / (1.0 + Math.Exp(-v)) then 1.0 else 0.0)
        let targets = Tensor.cast logits.Dtype (Tensor.ofArrayShape y logits.Shape)
        Losses.bceWithLogits logits targets

    /// Labels y ~ softmax(z) row by row for logits z [N; K]; the loss is the mean cross-entropy.
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
