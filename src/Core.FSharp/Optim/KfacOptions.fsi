namespace GroupedNewton

/// <summary>How the Tikhonov damping γ = √λ is shared between the two Kronecker factors.</summary>
[<RequireQualifiedAccess>]
type KfacDampingSplit =
    /// <summary>(A + πγI) ⊗ (G + γ/π·I) with π = sqrt((tr A / d_a) / (tr G / d_g)) (Martens and Grosse);
    /// π = 1 when either trace is zero or not finite.</summary>
    | Pi
    /// <summary>(A + γI) ⊗ (G + γI), as in the K-BFGS authors' K-FAC baseline.</summary>
    | Plain

/// <summary>How a Conv2d layer's statistics are scaled over its T output locations.</summary>
/// <remarks>Both give the same product A ⊗ G (KFC's Ω ⊗ Γ); with the π split they also give the same damped
/// factors, so the choice matters only under plain damping (docs/kbfgs.md, "Convolutional layers").</remarks>
[<RequireQualifiedAccess>]
type KfacConvScaling =
    /// <summary>A = mean over samples and locations of āāᵀ; G = mean over samples of the sum over locations of ggᵀ (the default).</summary>
    | AverageActivations
    /// <summary>A = mean over samples of the sum over locations of āāᵀ (KFC's Ω, the K-BFGS authors' conv statistic);
    /// G = mean over samples and locations of ggᵀ (KFC's Γ).</summary>
    | SumActivations

/// <summary>Where the output gradients g of the G factor come from.</summary>
[<RequireQualifiedAccess>]
type KfacFisher =
    /// <summary>g from the training loss itself (the empirical Fisher; no extra pass).</summary>
    | Empirical
    /// <summary>The true Fisher as the K-BFGS authors' baseline computes it: an extra forward and reverse pass on a loss
    /// with targets sampled from the model's predictive distribution. The sampler gets a seed and the model output and
    /// returns that loss of the output (see <c>KfacSamplers</c>).</summary>
    | Sampled of sampler: (int -> Tensor -> Tensor)

/// <summary>K-FAC hyperparameters.</summary>
/// <remarks>λ (Damping) and the learning rate are the two to tune (the K-BFGS authors' protocol); the other
/// defaults follow their K-FAC baseline where it is known (docs/kbfgs.md, "The K-FAC baseline").</remarks>
type KfacOptions = {
    /// <summary>α &gt; 0: the step is W ← W − α·G⁻¹ M A⁻¹ with M the gradient momentum.</summary>
    LearningRate: float
    /// <summary>λ &gt; 0; each factor is damped by γ = √λ (so the Kronecker product carries λI).</summary>
    Damping: float
    /// <summary>How γ is shared between the factors.</summary>
    DampingSplit: KfacDampingSplit
    /// <summary>β in [0, 1) of the gradient momentum M ← βM + (1 − β)(∇L + τW) (an EMA without bias correction); 0 disables it.</summary>
    Momentum: float
    /// <summary>τ ≥ 0: coupled L2 added to the gradient of weights and biases before the momentum.</summary>
    WeightDecay: float
    /// <summary>ε in [0, 1) of the factor moving averages F ← εF + (1 − ε)F_batch; the first update takes the batch statistic.</summary>
    StatDecay: float
    /// <summary>Factors are updated every CovarianceInterval ≥ 1 steps.</summary>
    CovarianceInterval: int
    /// <summary>Inverses are recomputed every InverseInterval ≥ 1 steps…</summary>
    InverseInterval: int
    /// <summary>…and at every one of the first InverseWarmup ≥ 0 steps.</summary>
    InverseWarmup: int
    /// <summary>Optional KL clipping κ &gt; 0: the step is scaled by min(1, sqrt(κ / (α²·Σ⟨Δ, ∇L⟩))).</summary>
    KlClip: float option
    /// <summary>How Conv2d statistics are scaled over output locations.</summary>
    ConvScaling: KfacConvScaling
    /// <summary>The empirical or the sampled (true) Fisher.</summary>
    Fisher: KfacFisher
    /// <summary>Layers with a factor larger than this (d_a or d_g) are not preconditioned: their parameters fall back
    /// to SGD with momentum, with a Warning.</summary>
    MaxFactorSize: int
    /// <summary>Seed of the sampled-Fisher targets (mixed with the step number).</summary>
    Seed: int
} with

    /// <summary>α = 0.1, λ = 0.1, π split, momentum 0.9, τ = 1e-5, ε = 0.9, factors every step, inverses every 20 steps
    /// and at each of the first 20, no KL clipping, averaged conv activations, empirical Fisher, factors up to 4096, seed 0.</summary>
    static member Defaults: KfacOptions

    /// <summary>Checks every option.</summary>
    /// <exception cref="System.ArgumentException">an option is out of the range its field gives (the parameter name is the option's).</exception>
    member Validate: unit -> unit

/// <summary>Counters of what a K-FAC optimizer has done so far.</summary>
type KfacDiagnostics = {
    /// <summary>Steps taken.</summary>
    Steps: int
    /// <summary>Factor moving-average updates (one per layer and covariance step).</summary>
    FactorUpdates: int
    /// <summary>Factor batch statistics that were not finite and were skipped.</summary>
    SkippedFactorUpdates: int
    /// <summary>Damped factors inverted (two per layer and inverse step).</summary>
    Inversions: int
    /// <summary>Inversions that needed extra diagonal jitter to factorise.</summary>
    InversionRetries: int
    /// <summary>Inversions that failed even with jitter (the previous inverse, or 1/damping·I, was kept).</summary>
    FailedInversions: int
    /// <summary>Layers preconditioned by their Kronecker factors.</summary>
    PreconditionedLayers: int
    /// <summary>Parameters updated by the SGD-momentum fallback.</summary>
    FallbackParameters: string[]
    /// <summary>The KL-clipping scale of the last step (1 without clipping).</summary>
    LastKlScale: float
}

/// <summary>Samplers for <c>KfacFisher.Sampled</c>: a loss of the model output with targets drawn from the
/// distribution the output parameterises, so that its output gradients give the true Fisher.</summary>
[<RequireQualifiedAccess>]
module KfacSamplers =
    /// <summary>Targets y ~ Bernoulli(sigmoid(z)) for logits z of any shape [N; …]; the loss is <c>Losses.bceWithLogits</c>.</summary>
    val bernoulliLogits: seed: int -> logits: Tensor -> Tensor

    /// <summary>Labels y ~ softmax(z) row by row for logits z [N; K]; the loss is the mean cross-entropy.</summary>
    val categorical: seed: int -> logits: Tensor -> Tensor
