namespace GroupedNewton

open System
open System.Collections.Generic

/// Which statistic of the layer inputs the A side of K-BFGS uses (docs/kbfgs.md, "The A side" and "Convolutional layers").
[<RequireQualifiedAccess>]
type KbfgsAStatistic =
    /// A ← β_A·A + (1−β_A)·Ā_batch, formed explicitly (the NeurIPS MLP code). Step 0 starts
    /// from the warm-start average when WarmStart was called, else from the first batch's Ā.
    | MovingAverage
    /// The current batch's Ā only, never formed: used through the products Ā·s (the CNN
    /// paper's "miniBatchADamped", reconstructed). Formed once, at step 0, for H_a's inverse.
    | MiniBatch

/// How the gradient momentum Ĝ accumulates the regularised gradient g.
[<RequireQualifiedAccess>]
type KbfgsMomentum =
    /// Ĝ ← β·Ĝ + (1−β)·g, no bias correction (the NeurIPS code).
    | Average
    /// Ĝ ← β·Ĝ + g (heavy ball, as in the authors' later code; about 1/(1−β) times larger steps).
    | HeavyBall

/// H_a at the first step.
[<RequireQualifiedAccess>]
type KbfgsInitialHa =
    /// (A + √λ·I)⁻¹ by Cholesky: the only explicit inverse of the run.
    | Inverse
    /// The identity (the "IdentityInitial" variant of the authors' CNN-era code).
    | Identity

/// The precision of the wide matrix products of the factor work.
[<RequireQualifiedAccess>]
type KbfgsPrecision =
    /// Ā = āᵀā/N, the Ā·s products and the direction H_g·Ĝ·H_a in the model's dtype (float32
    /// GEMMs for a float32 model); the stored factors, their BFGS updates, the damping and
    /// all inner products stay float64.
    | ModelDtype
    /// Every product in float64.
    | Float64

/// K-BFGS / K-BFGS(L) hyperparameters (defaults from the authors' MLP code; docs/kbfgs.md, "Defaults").
type KbfgsOptions = {
    /// α: the step is W ← W − α·H_g·Ĝ·H_a.
    LearningRate: float
    /// λ: the factors are damped by √λ (λ_A = λ_G = μ2 = √λ).
    Lambda: float
    /// μ1 of Powell's damping on H.
    Mu1: float
    /// Second damping stage: Powell with B = I ("DD", MLP mode) or Levenberg–Marquardt ("DDV2", CNN mode).
    SecondStage: SecondStageDamping
    /// β of the gradient momentum.
    GradientMomentum: float
    MomentumForm: KbfgsMomentum
    /// Decay of the moving averages of the G-side secant pair (s̄, ȳ); 0 uses each pair as it is.
    PairMomentum: float
    /// β_A of the moving-average A.
    AMomentum: float
    AStatistic: KbfgsAStatistic
    /// Linear layers keep the MLP rules (moving-average A, Powell second stage) whatever
    /// AStatistic and SecondStage say, as the third-party CNN code does; conv layers follow
    /// the options. Off by default (CNN mode applies one rule to every layer).
    MlpRulesForLinear: bool
    InitialHa: KbfgsInitialHa
    /// τ: L2 term τ·W added to the gradient (weights and biases).
    WeightDecay: float
    /// The BFGS skip gate: no update when sᵀy ≤ GateTolerance·sᵀs·‖g‖.
    GateTolerance: float
    /// The trial pass and the factor updates happen every UpdateEvery steps (1 in the MLP code).
    UpdateEvery: int
    /// K-BFGS(L): number of (s, y) pairs kept per layer.
    Memory: int
    /// Precision of the GEMMs of the factor work.
    FactorProducts: KbfgsPrecision
    /// Layers with d_a or d_g above this are not preconditioned: they fall back to the
    /// momentum SGD rule (with a Warning).
    MaxFactorSize: int
} with

    /// The NeurIPS 2020 MLP settings (α = 0.3, λ = 0.3 as in the authors' MNIST demo).
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

    /// CNN mode (docs/kbfgs.md, "Convolutional layers"; reconstructed): Levenberg–Marquardt second stage and the
    /// minibatch A used only through products, for every layer.
    static member Cnn = {
        KbfgsOptions.Mlp with
            SecondStage = SecondStageDamping.LevenbergMarquardt
            AStatistic = KbfgsAStatistic.MiniBatch
    }

    static member Defaults = KbfgsOptions.Mlp

    member o.Validate() =
        let positive name (v: float) =
            if not (Double.IsFinite v) || v <= 0.0 then
                invalidArg name (sprintf "K-BFGS: %s must be positive, got %g" name v)

        let unitInterval name (v: float) =
            if not (v >= 0.0 && v < 1.0) then
                invalidArg name (sprintf "K-BFGS: %s must be in [0, 1), got %g" name v)

        positive "LearningRate" o.LearningRate
        positive "Lambda" o.Lambda

        if not (o.Mu1 > 0.0 && o.Mu1 < 1.0) then
            invalidArg "Mu1" (sprintf "K-BFGS: Mu1 must be in (0, 1), got %g" o.Mu1)

        if (o.SecondStage = SecondStageDamping.Powell || o.MlpRulesForLinear) && o.Lambda >= 1.0 then
            invalidArg "Lambda" (sprintf "K-BFGS: the Powell second stage needs μ2 = √λ < 1, got λ = %g" o.Lambda)

        unitInterval "GradientMomentum" o.GradientMomentum
        unitInterval "PairMomentum" o.PairMomentum
        unitInterval "AMomentum" o.AMomentum

        if not (Double.IsFinite o.WeightDecay) || o.WeightDecay < 0.0 then
            invalidArg "WeightDecay" (sprintf "K-BFGS: WeightDecay must be non-negative, got %g" o.WeightDecay)

        if not (Double.IsFinite o.GateTolerance) || o.GateTolerance < 0.0 then
            invalidArg "GateTolerance" (sprintf "K-BFGS: GateTolerance must be non-negative, got %g" o.GateTolerance)

        if o.UpdateEvery < 1 then
            invalidArg "UpdateEvery" (sprintf "K-BFGS: UpdateEvery must be at least 1, got %d" o.UpdateEvery)

        if o.Memory < 1 then
            invalidArg "Memory" (sprintf "K-BFGS: Memory must be at least 1, got %d" o.Memory)

        if o.MaxFactorSize < 1 then
            invalidArg "MaxFactorSize" (sprintf "K-BFGS: MaxFactorSize must be at least 1, got %d" o.MaxFactorSize)

/// What the factor updates of one preconditioned layer have done so far.
type KbfgsLayerCounts = {
    /// The layer's weight parameter.
    Layer: string
    /// H_g updates made (K-BFGS(L): pairs stored).
    GUpdated: int
    /// H_g updates skipped by a gate (K-BFGS(L): pairs rejected).
    GSkipped: int
    /// Pairs whose s Powell's damping on H replaced.
    PowellDamped: int
    /// Pairs whose y the second stage changed.
    SecondStageDamped: int
    /// H_a updates made by the Hessian-action pair.
    AUpdated: int
    ASkipped: int
}
