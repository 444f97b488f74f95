namespace GroupedNewton

open System
open System.Collections.Generic

[<RequireQualifiedAccess>]
type internal GSide =
    | Dense of float[,]
    | Limited of LbfgsMemory

/// Everything one preconditioned layer carries between steps.
type internal KbfgsLayerState = {
    /// The moving-average A (MovingAverage statistic only).
    A: float[,] option
    Ha: float[,]
    G: GSide
    /// Ĝ as a float64 d_g × d_a matrix.
    Momentum: Tensor
    SBar: float[]
    YBar: float[]
    Counts: KbfgsLayerCounts
}

module internal KbfgsAlgebra =
    let ofMatrix (m: float[,]) =
        let r, c = Array2D.length1 m, Array2D.length2 m
        let flat = Array.zeroCreate<float>(r * c)
        Buffer.BlockCopy(m, 0, flat, 0, r * c * 8)
        Tensor.ofArrayShape flat [| r; c |]

    let toMatrix (t: Tensor) =
        let r, c = t.Shape.[0], t.Shape.[1]
        let flat = Tensor.toArray t
        let m = Array2D.zeroCreate<float> r c
        Buffer.BlockCopy(flat, 0, m, 0, r * c * 8)
        m

    let identity n =
        let m = Array2D.zeroCreate<float> n n

        for i in 0 .. n - 1 do
            m.[i, i] <- 1.0

        m

    let addDiagonal (c: float) (m: float[,]) =
        let r = m.Clone() :?> float[,]

        for i in 0 .. min (Array2D.length1 m) (Array2D.length2 m) - 1 do
            r.[i, i] <- r.[i, i] + c

        r

    /// (H_a ⊗ H_g) vec(Ĝ) = vec(H_g·Ĝ·H_a) (column-major vec): the preconditioned direction
    /// of a d_g × d_a matrix, through the tensor GEMM in the given dtype (the L-BFGS product
    /// itself is float64).
    let precondition (dtype: Dtype) (g: GSide) (momentum: Tensor) (ha: float[,]) =
        let left =
            match g with
            | GSide.Dense hg -> Tensor.matmul (Tensor.cast dtype (ofMatrix hg)) (Tensor.cast dtype momentum)
            | GSide.Limited mem -> Tensor.cast dtype (Lbfgs.compactTimes mem momentum)

        Tensor.matmul left (Tensor.cast dtype (ofMatrix ha))

    /// The G-side product H_g·v.
    let gTimes (g: GSide) (v: float[]) =
        match g with
        | GSide.Dense hg -> Bfgs.matVec hg v
        | GSide.Limited mem -> Lbfgs.twoLoop mem v

    /// Ā_batch = āᵀā / N for activation rows ā of a batch of N samples (locations summed).
    let batchCovariance (aRows: Tensor) (samples: int) = toMatrix (Tensor.matmulT true false aRows aRows / float samples)

    /// Column means of a [rows, d] tensor, summed in its dtype and divided by the row count in
    /// float64 (so a column of ones has mean exactly 1).
    let columnMeans (t: Tensor) =
        let rows = float t.Shape.[0]
        Tensor.toArray (Tensor.sumDim 0 false t) |> Array.map (fun v -> v / rows)

    /// Column means of after − before: the difference is taken row by row first, so a float32
    /// model loses nothing to the cancellation of two nearly equal means.
    let meanDifference (after: Tensor) (before: Tensor) = columnMeans (after - before)

/// K-BFGS and K-BFGS(L) (Goldfarb, Ren, Bahamou 2020; Ren, Bahamou, Goldfarb 2021) for the
/// Linear and Conv2d layers of a model: per layer the direction H_g·Ĝ·H_a with H_a ≈ (A + √λI)⁻¹
/// kept by BFGS updates with exact Hessian-action pairs and H_g ≈ (G + √λI)⁻¹ by damped BFGS
/// (or L-BFGS) updates from secant pairs of a second forward/backward pass at the new point on
/// the same batch. The factors and their updates are float64; the wide products go through the
/// tensor GEMM in the model's dtype or in float64 (FactorProducts). Stepped with StepOn; a step
/// that fails changes nothing.
/// Everything K-BFGS carries between steps (Layers: None before the first step).
type internal KbfgsState = {
    Step: int
    Layers: KbfgsLayerState[] option
    Fallback: IReadOnlyDictionary<ParameterKey, Tensor>
    /// The warm-start average of A per layer, until the first step uses it.
    WarmA: float[,][] option
    WarmBatches: int
}

/// What is fixed for an optimizer: its options, whether H_g is limited-memory, its layers.
type internal KbfgsSetup = { Options: KbfgsOptions; Limited: bool; Display: string; Selection: LayerSelection }

/// What one step needs besides the state.
type internal KbfgsInput = {
    Parameters: Parameters
    Main: ModelTrace
    /// The second pass at the new point on the same batch (called on factor-update steps).
    Trial: Parameters -> ModelTrace
    LearningRate: ParameterKey -> float
}

/// A layer's A side and direction before the step.
type internal KbfgsPrepared = {
    /// The moving-average A statistic (None when the mini-batch statistic is used).
    A: float[,] option
    Ha: float[,]
    G: GSide
    /// The momentum Ĝ of the regularised gradient.
    Momentum: Tensor
    /// H_g·Ĝ·H_a.
    Direction: Tensor
}

/// One layer of K-BFGS's step (docs/kbfgs.md): the momentum, the direction H_g·Ĝ·H_a, and the
/// factor updates from the BFGS pairs of the trial pass.
module internal KbfgsLayerUpdate =
    let zeroCounts (i: PreconditionedLayer) = {
        Layer = i.Name
        GUpdated = 0
        GSkipped = 0
        PowellDamped = 0
        SecondStageDamped = 0
        AUpdated = 0
        ASkipped = 0
    }

    /// What a layer carries into a step: its counts and the averaged secant pair (zeros before
    /// the first step).
    let carried (i: PreconditionedLayer) (prev: KbfgsLayerState option) =
        match prev with
        | Some p -> p.Counts, p.SBar, p.YBar
        | None -> zeroCounts i, Array.zeroCreate<float> i.Dg, Array.zeroCreate<float> i.Dg

    /// The gradient momentum Ĝ after one more regularised gradient g.
    let accumulate (options: KbfgsOptions) (previous: Tensor option) (g: Tensor) =
        let b = options.GradientMomentum

        match previous, options.MomentumForm with
        | None, KbfgsMomentum.Average -> (1.0 - b) * g
        | None, KbfgsMomentum.HeavyBall -> g
        | Some m, KbfgsMomentum.Average -> Tensor.addScaled (1.0 - b) (b * m) g
        | Some m, KbfgsMomentum.HeavyBall -> Tensor.addScaled 1.0 (b * m) g

    /// The dtype of the factor GEMMs for a layer's activation rows.
    let productDtype (options: KbfgsOptions) (rows: Tensor) =
        match options.FactorProducts with
        | KbfgsPrecision.Float64 -> Dtype.Float64
        | KbfgsPrecision.ModelDtype -> rows.Dtype

    let private mlpRules (options: KbfgsOptions) (i: PreconditionedLayer) =
        options.MlpRulesForLinear
        && (match i.Layer.Spec with
            | LayerSpec.Linear _ -> true
            | _ -> false)

    /// The A statistic and the second damping stage of a layer.
    let aStatisticOf (options: KbfgsOptions) (i: PreconditionedLayer) =
        if mlpRules options i then KbfgsAStatistic.MovingAverage else options.AStatistic

    let secondStageOf (options: KbfgsOptions) (i: PreconditionedLayer) =
        if mlpRules options i then SecondStageDamping.Powell else options.SecondStage

    /// A layer's A side and direction before the step.
    let prepare
        (setup: KbfgsSetup)
        (state: KbfgsState)
        (li: int)
        (i: PreconditionedLayer)
        (kl: KroneckerLayer)
        (aRows: Tensor)
        (regGrad: Parameters)
        =
        let options = setup.Options
        let mu2 = sqrt options.Lambda
        let samples = kl.BatchSize
        let prev = state.Layers |> Option.map (fun ls -> ls.[li])
        let grad = Tensor.cast Dtype.Float64 (KroneckerLayers.weightMatrix i.Layer regGrad)
        let momentum = accumulate options (prev |> Option.map (fun p -> p.Momentum)) grad

        let aNew =
            match aStatisticOf options i with
            | KbfgsAStatistic.MiniBatch -> None
            | KbfgsAStatistic.MovingAverage ->
                match prev |> Option.bind (fun p -> p.A), state.WarmA with
                | Some a, _ -> Some(Bfgs.blend options.AMomentum a (1.0 - options.AMomentum) (KbfgsAlgebra.batchCovariance aRows samples))
                | None, Some w -> Some w.[li]
                | None, None -> Some(KbfgsAlgebra.batchCovariance aRows samples)

        let ha =
            match prev with
            | Some p -> p.Ha
            | None ->
                match options.InitialHa with
                | KbfgsInitialHa.Identity -> KbfgsAlgebra.identity i.Da
                | KbfgsInitialHa.Inverse ->
                    let a0 =
                        match aNew with
                        | Some a -> a
                        | None -> KbfgsAlgebra.batchCovariance aRows samples

                    match Bfgs.choleskyInverse (KbfgsAlgebra.addDiagonal mu2 a0) with
                    | Some inv -> inv
                    | None ->
                        Layerwise.fail
                            setup.Display
                            state.Step
                            (sprintf "A + √λ·I of layer '%s' is not positive definite (non-finite activations?)" i.Name)

        let g =
            match prev with
            | Some p -> p.G
            | None when setup.Limited -> GSide.Limited(Lbfgs.empty options.Memory i.Dg 1.0)
            | None -> GSide.Dense(KbfgsAlgebra.identity i.Dg)

        {
            A = aNew
            Ha = ha
            G = g
            Momentum = momentum
            Direction = KbfgsAlgebra.precondition aRows.Dtype g momentum ha
        }

    /// A layer's factors after the trial pass: the damped BFGS (or L-BFGS) update of H_g from
    /// the secant pair, and H_a's update from the exact Hessian-action pair.
    let updateFactors
        (setup: KbfgsSetup)
        (state: KbfgsState)
        (i: PreconditionedLayer)
        (kl: KroneckerLayer)
        (klt: KroneckerLayer)
        (aRows: Tensor)
        (prepared: KbfgsPrepared)
        (prev: KbfgsLayerState option)
        =
        let aNew, ha, g, momentum = prepared.A, prepared.Ha, prepared.G, prepared.Momentum
        let options = setup.Options
        let mu2 = sqrt options.Lambda

        let counts, sBar0, yBar0 = carried i prev
        // per-sample ∂L/∂h is N·∂L/∂h; its mean over N·|T| rows is Σ/|T|
        let perSample = float kl.BatchSize
        let gBar = KbfgsAlgebra.columnMeans kl.OutputGradients |> Array.map (fun v -> v * perSample)
        let s = KbfgsAlgebra.meanDifference klt.PreActivations kl.PreActivations

        let y =
            KbfgsAlgebra.meanDifference klt.OutputGradients kl.OutputGradients
            |> Array.map (fun v -> v * perSample)

        if not (Array.forall Double.IsFinite s && Array.forall Double.IsFinite y) then
            Layerwise.fail
                setup.Display
                state.Step
                (sprintf "the trial pass gave non-finite outputs or output gradients at layer '%s'" i.Name)

        let beta = options.PairMomentum
        let sBar = Array.map2 (fun a b -> beta * a + (1.0 - beta) * b) sBar0 s
        let yBar = Array.map2 (fun a b -> beta * a + (1.0 - beta) * b) yBar0 y
        let pair = Bfgs.damp (secondStageOf options i) options.Mu1 mu2 (KbfgsAlgebra.gTimes g) sBar yBar

        let gNext, gOk =
            match g with
            | GSide.Dense hg ->
                let status, h = Bfgs.gatedUpdate options.GateTolerance hg pair.S pair.Y gBar
                GSide.Dense h, (status = BfgsStatus.Updated)
            | GSide.Limited mem ->
                let ss = Bfgs.dot pair.S pair.S

                if
                    Double.IsFinite ss
                    && Array.forall Double.IsFinite pair.Y
                    && Bfgs.dot pair.S pair.Y > options.GateTolerance * ss * Bfgs.norm gBar
                then
                    GSide.Limited(Lbfgs.push mem pair.S pair.Y), true
                else
                    g, false
        // A side: the exact Hessian-action pair s_a = H_a v, y_a = (A + √λI) s_a
        let v = KbfgsAlgebra.columnMeans kl.Activations
        let sa = Bfgs.matVec ha v

        let aSa =
            match aNew with
            | Some a -> Bfgs.matVec a sa
            | None ->
                let asv = Tensor.matmul aRows (Tensor.cast aRows.Dtype (Tensor.ofArrayShape sa [| sa.Length; 1 |]))
                Tensor.toArray (Tensor.matmulT true false aRows asv) |> Array.map (fun x -> x / float kl.BatchSize)

        let ya = Array.map2 (fun x s -> x + mu2 * s) aSa sa
        let aStatus, haNext = Bfgs.gatedUpdate options.GateTolerance ha sa ya v
        let aOk = aStatus = BfgsStatus.Updated
        let add ok = if ok then 1 else 0

        {
            A = aNew
            Ha = haNext
            G = gNext
            Momentum = momentum
            SBar = sBar
            YBar = yBar
            Counts = {
                counts with
                    GUpdated = counts.GUpdated + add gOk
                    GSkipped = counts.GSkipped + add (not gOk)
                    PowellDamped = counts.PowellDamped + add pair.PowellApplied
                    SecondStageDamped = counts.SecondStageDamped + add pair.SecondStageApplied
                    AUpdated = counts.AUpdated + add aOk
                    ASkipped = counts.ASkipped + add (not aOk)
            }
        }

    /// One step: per layer the direction H_g·Ĝ·H_a, the move to W − α·P, and (every UpdateEvery
