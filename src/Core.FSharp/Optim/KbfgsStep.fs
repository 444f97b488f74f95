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

/// K-BFGS's step as a function of its setup and state (docs/kbfgs.md).
module internal KbfgsStep =
    let zeroCounts (i: PreconditionedLayer) = {
        Layer = i.Name
        GUpdated = 0
        GSkipped = 0
        PowellDamped = 0
        SecondStageDamped = 0
        AUpdated = 0
        ASkipped = 0
    }

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

    /// A layer's A side and direction before the step: (A, H_a, H_g, Ĝ, H_g·Ĝ·H_a).
    let private prepare
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

        aNew, ha, g, momentum, KbfgsAlgebra.precondition aRows.Dtype g momentum ha

    /// A layer's factors after the trial pass: the damped BFGS (or L-BFGS) update of H_g from
    /// the secant pair, and H_a's update from the exact Hessian-action pair.
    let private updateFactors
        (setup: KbfgsSetup)
        (state: KbfgsState)
        (i: PreconditionedLayer)
        (kl: KroneckerLayer)
        (klt: KroneckerLayer)
        (aRows: Tensor)
        (aNew: float[,] option)
        (ha: float[,])
        (g: GSide)
        (momentum: Tensor)
        (prev: KbfgsLayerState option)
        =
        let options = setup.Options
        let mu2 = sqrt options.Lambda

        let counts =
            match prev with
            | Some p -> p.Counts
            | None -> zeroCounts i

        let sBar0 =
            match prev with
            | Some p -> p.SBar
            | None -> Array.zeroCreate i.Dg

        let yBar0 =
            match prev with
            | Some p -> p.YBar
            | None -> Array.zeroCreate i.Dg
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
    /// steps) the factor updates from a second pass at the new point on the same batch.
    let step (setup: KbfgsSetup) (state: KbfgsState) (input: KbfgsInput) : KbfgsState * Parameters =
        let options = setup.Options
        let infos = setup.Selection.Layers
        let ps = input.Parameters
        let tr = input.Main
        let stats = infos |> Array.map (fun i -> KroneckerLayers.ofTrace tr.Layers.[i.Position])

        let acts =
            stats |> Array.map (fun kl -> Tensor.cast (productDtype options kl.Activations) kl.Activations)

        let regGrad =
            ps.WithValues(ps.KeyArray |> Array.map (fun k -> Layerwise.regularised options.WeightDecay ps.[k] tr.Gradient.[k]))

        let prepared = infos |> Array.mapi (fun li i -> prepare setup state li i stats.[li] acts.[li] regGrad)
        // fallback parameters: momentum SGD with the same momentum rule
        let fallback =
            Layerwise.fallbackMomentum setup.Selection.FallbackKeys (accumulate options) state.Fallback (fun k -> regGrad.[k])
        // the new point W − α·P (also the trial point)
        let directionOf = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)

        infos
        |> Array.iteri (fun li i ->
            let _, _, _, _, p = prepared.[li]

            for k, part in KroneckerLayers.splitMatrix i.Layer ps p do
                directionOf.[k] <- part)

        for kv in fallback do
            directionOf.[kv.Key] <- kv.Value

        let updated =
            Layerwise.applyStep setup.Display state.Step ps input.LearningRate (fun k -> directionOf.[k])

        let trial = if state.Step % options.UpdateEvery = 0 then Some(input.Trial updated) else None

        let layers =
            infos
            |> Array.mapi (fun li i ->
                let aNew, ha, g, momentum, _ = prepared.[li]
                let prev = state.Layers |> Option.map (fun ls -> ls.[li])

                match trial with
                | None ->
                    let counts =
                        match prev with
                        | Some p -> p.Counts
                        | None -> zeroCounts i

                    let sBar =
                        match prev with
                        | Some p -> p.SBar
                        | None -> Array.zeroCreate i.Dg

                    let yBar =
                        match prev with
                        | Some p -> p.YBar
                        | None -> Array.zeroCreate i.Dg

                    { A = aNew; Ha = ha; G = g; Momentum = momentum; SBar = sBar; YBar = yBar; Counts = counts }
                | Some t ->
                    updateFactors
                        setup
                        state
                        i
                        stats.[li]
                        (KroneckerLayers.ofTrace t.Layers.[i.Position])
                        acts.[li]
                        aNew
                        ha
                        g
                        momentum
                        prev)

        {
            state with
                Step = state.Step + 1
                Layers = Some layers
                Fallback = fallback
                WarmA = (if state.Layers.IsNone then None else state.WarmA)
        },
        updated

    /// The saved layout of K-BFGS's state (keys "layer.<weight>.<field>" as in the first release).
    let schema (setup: KbfgsSetup) (initial: Parameters) : StateField<KbfgsState> list =
        let options = setup.Options
        let infos = setup.Selection.Layers
        let key (i: PreconditionedLayer) (field: string) = sprintf "layer.%s.%s" i.Name field
        let matrix (i: PreconditionedLayer) field n get set = StateSchema.field (key i field) (StateSchema.matrixCodec n n) get set

        let layerFields (i: PreconditionedLayer) : StateField<KbfgsLayerState> list =
            let count field get set =
                StateSchema.field (key i ("counts." + field)) StateSchema.intCodec (fun (l: KbfgsLayerState) -> get l.Counts) (fun v l -> {
                    l with
                        Counts = set v l.Counts
                })

            [
                match aStatisticOf options i with
                | KbfgsAStatistic.MovingAverage ->
                    StateSchema.field (key i "a") (StateSchema.matrixCodec i.Da i.Da) (fun l -> l.A.Value) (fun v l -> {
                        l with
                            A = Some v
                    })
                | KbfgsAStatistic.MiniBatch -> StateSchema.check (fun _ _ -> ())
                matrix i "ha" i.Da (fun l -> l.Ha) (fun v l -> { l with Ha = v })
                if setup.Limited then
                    {
                        Save =
                            fun l ->
                                match l.G with
                                | GSide.Limited mem -> [
                                    yield key i "lbfgs.count", StoreValue.Int mem.Pairs.Length
                                    if mem.Pairs.Length > 0 then
                                        yield
                                            key i "lbfgs.s",
                                            StoreValue.Tensor(
                                                Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map fst)) [| mem.Pairs.Length; i.Dg |]
                                            )

                                        yield
                                            key i "lbfgs.y",
                                            StoreValue.Tensor(
                                                Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map snd)) [| mem.Pairs.Length; i.Dg |]
                                            )
                                  ]
                                | GSide.Dense _ -> []
                        Load =
                            fun src l ->
                                let count = StateSchema.intCodec.Read src (key i "lbfgs.count")

                                if count < 0 || count > options.Memory then
                                    StateSchema.fail
                                        src
                                        (sprintf "layer '%s' holds %d L-BFGS pairs, the memory is %d" i.Name count options.Memory)

                                let rows field =
                                    if count = 0 then
                                        [||]
                                    else
                                        let flat = Tensor.toArray ((StateSchema.tensorCodec [| count; i.Dg |] None).Read src (key i field))
                                        Array.init count (fun r -> flat.[r * i.Dg .. (r + 1) * i.Dg - 1])

                                {
                                    l with
                                        G =
                                            GSide.Limited {
                                                Lbfgs.empty options.Memory i.Dg 1.0 with
                                                    Pairs = Array.zip (rows "lbfgs.s") (rows "lbfgs.y")
                                            }
                                }
                    }
                else
                    {
                        Save =
                            (fun l ->
                                match l.G with
                                | GSide.Dense hg -> [ key i "hg", (StateSchema.matrixCodec i.Dg i.Dg).Write hg ]
                                | GSide.Limited _ -> [])
                        Load = fun src l -> { l with G = GSide.Dense((StateSchema.matrixCodec i.Dg i.Dg).Read src (key i "hg")) }
                    }
                StateSchema.field (key i "momentum") (StateSchema.tensorCodec [| i.Dg; i.Da |] None) (fun l -> l.Momentum) (fun v l -> {
                    l with
                        Momentum = v
                })
                StateSchema.field (key i "sbar") (StateSchema.vectorCodec i.Dg) (fun l -> l.SBar) (fun v l -> { l with SBar = v })
                StateSchema.field (key i "ybar") (StateSchema.vectorCodec i.Dg) (fun l -> l.YBar) (fun v l -> { l with YBar = v })
                count "g_updated" (fun c -> c.GUpdated) (fun v c -> { c with GUpdated = v })
                count "g_skipped" (fun c -> c.GSkipped) (fun v c -> { c with GSkipped = v })
                count "powell_damped" (fun c -> c.PowellDamped) (fun v c -> { c with PowellDamped = v })
                count "second_stage_damped" (fun c -> c.SecondStageDamped) (fun v c -> { c with SecondStageDamped = v })
                count "a_updated" (fun c -> c.AUpdated) (fun v c -> { c with AUpdated = v })
                count "a_skipped" (fun c -> c.ASkipped) (fun v c -> { c with ASkipped = v })
            ]

        let empty (i: PreconditionedLayer) = {
            A = None
            Ha = KbfgsAlgebra.identity 0
            G = GSide.Dense(KbfgsAlgebra.identity 0)
            Momentum = Tensor.zeros [| 0 |]
            SBar = [||]
            YBar = [||]
            Counts = zeroCounts i
        }

        let layersField =
            let perLayer = infos |> Array.map layerFields

            {
                Save =
                    fun (s: KbfgsState) ->
                        match s.Layers with
                        | Some ls -> [
                            for li in 0 .. infos.Length - 1 do
                                yield! StateSchema.save perLayer.[li] ls.[li]
                          ]
                        | None -> []
                Load =
                    fun src s ->
                        if StateSchema.intCodec.Read src "initialised" = 1 then
                            {
                                s with
                                    Layers = Some(Array.init infos.Length (fun li -> StateSchema.load perLayer.[li] src (empty infos.[li])))
                            }
                        else
                            { s with Layers = None }
            }

        let warmField = {
            Save =
                fun (s: KbfgsState) ->
                    match s.WarmA with
                    | Some ws -> [
                        for li in 0 .. infos.Length - 1 ->
                            key infos.[li] "warm_a", (StateSchema.matrixCodec infos.[li].Da infos.[li].Da).Write ws.[li]
                      ]
                    | None -> []
            Load =
                fun src s ->
                    let present = s.Layers.IsNone && infos.Length > 0 && src.Entries.ContainsKey(key infos.[0] "warm_a")

                    {
                        s with
                            WarmA =
                                (if present then
                                     Some(infos |> Array.map (fun i -> (StateSchema.matrixCodec i.Da i.Da).Read src (key i "warm_a")))
                                 else
                                     None)
                    }
        }

        StateSchema.header (if setup.Limited then "kbfgs-l" else "kbfgs") (fun s -> s.Step) (fun v s -> { s with Step = v })
        @ [
            {
                Save = (fun (s: KbfgsState) -> [ "initialised", StoreValue.Int(if s.Layers.IsSome then 1 else 0) ])
                Load = fun _ s -> s
            }
            StateSchema.field "warm.batches" StateSchema.intCodec (fun s -> s.WarmBatches) (fun v s -> { s with WarmBatches = v })
            layersField
            warmField
            Layerwise.fallbackField setup.Selection.FallbackKeys initial (fun s -> s.Layers.IsSome) (fun s -> s.Fallback) (fun v s -> {
                s with
                    Fallback = v
            })
        ]
