namespace GroupedNewton

open System
open System.Collections.Generic

/// Which statistic of the layer inputs the A side of K-BFGS uses (kbfgs.md §3, §6.3).
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

/// K-BFGS / K-BFGS(L) hyperparameters (defaults from the authors' MLP code, kbfgs.md §7).
type KbfgsOptions =
    { /// α: the step is W ← W − α·H_g·Ĝ·H_a.
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
      /// the options. Off by default (the spec's CNN mode applies one rule to every layer).
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
      MaxFactorSize: int }

    /// The NeurIPS 2020 MLP settings (α = 0.3, λ = 0.3 as in the authors' MNIST demo).
    static member Mlp =
        { LearningRate = 0.3; Lambda = 0.3; Mu1 = 0.2; SecondStage = SecondStageDamping.Powell
          GradientMomentum = 0.9; MomentumForm = KbfgsMomentum.Average; PairMomentum = 0.9; AMomentum = 0.9
          AStatistic = KbfgsAStatistic.MovingAverage; MlpRulesForLinear = false; InitialHa = KbfgsInitialHa.Inverse; WeightDecay = 1e-5
          GateTolerance = 1e-4; UpdateEvery = 1; Memory = 100; FactorProducts = KbfgsPrecision.ModelDtype
          MaxFactorSize = 4096 }

    /// CNN mode (kbfgs.md §6.3, reconstructed): Levenberg–Marquardt second stage and the
    /// minibatch A used only through products, for every layer.
    static member Cnn =
        { KbfgsOptions.Mlp with SecondStage = SecondStageDamping.LevenbergMarquardt; AStatistic = KbfgsAStatistic.MiniBatch }

    static member Defaults = KbfgsOptions.Mlp

    member o.Validate() =
        let positive name (v: float) =
            if not (Double.IsFinite v) || v <= 0.0 then invalidArg name (sprintf "K-BFGS: %s must be positive, got %g" name v)
        let unitInterval name (v: float) =
            if not (v >= 0.0 && v < 1.0) then invalidArg name (sprintf "K-BFGS: %s must be in [0, 1), got %g" name v)
        positive "LearningRate" o.LearningRate
        positive "Lambda" o.Lambda
        if not (o.Mu1 > 0.0 && o.Mu1 < 1.0) then invalidArg "Mu1" (sprintf "K-BFGS: Mu1 must be in (0, 1), got %g" o.Mu1)
        if (o.SecondStage = SecondStageDamping.Powell || o.MlpRulesForLinear) && o.Lambda >= 1.0 then
            invalidArg "Lambda" (sprintf "K-BFGS: the Powell second stage needs μ2 = √λ < 1, got λ = %g" o.Lambda)
        unitInterval "GradientMomentum" o.GradientMomentum
        unitInterval "PairMomentum" o.PairMomentum
        unitInterval "AMomentum" o.AMomentum
        if not (Double.IsFinite o.WeightDecay) || o.WeightDecay < 0.0 then
            invalidArg "WeightDecay" (sprintf "K-BFGS: WeightDecay must be non-negative, got %g" o.WeightDecay)
        if not (Double.IsFinite o.GateTolerance) || o.GateTolerance < 0.0 then
            invalidArg "GateTolerance" (sprintf "K-BFGS: GateTolerance must be non-negative, got %g" o.GateTolerance)
        if o.UpdateEvery < 1 then invalidArg "UpdateEvery" (sprintf "K-BFGS: UpdateEvery must be at least 1, got %d" o.UpdateEvery)
        if o.Memory < 1 then invalidArg "Memory" (sprintf "K-BFGS: Memory must be at least 1, got %d" o.Memory)
        if o.MaxFactorSize < 1 then invalidArg "MaxFactorSize" (sprintf "K-BFGS: MaxFactorSize must be at least 1, got %d" o.MaxFactorSize)

/// What the factor updates of one preconditioned layer have done so far.
type KbfgsLayerCounts =
    { /// The layer's weight parameter.
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
      ASkipped: int }

[<RequireQualifiedAccess>]
type internal GSide =
    | Dense of float[,]
    | Limited of LbfgsMemory

/// Everything one preconditioned layer carries between steps.
type internal KbfgsLayerState =
    { /// The moving-average A (MovingAverage statistic only).
      A: float[,] option
      Ha: float[,]
      G: GSide
      /// Ĝ as a float64 d_g × d_a matrix.
      Momentum: Tensor
      SBar: float[]
      YBar: float[]
      Counts: KbfgsLayerCounts }

/// A layer the optimizer preconditions: its position among the model's trainable layers
/// and its factor sizes.
type internal KbfgsLayerInfo = { Layer: Layer; Position: int; Name: string; Dg: int; Da: int }

module internal KbfgsAlgebra =
    let ofMatrix (m: float[,]) =
        let r, c = Array2D.length1 m, Array2D.length2 m
        let flat = Array.zeroCreate<float> (r * c)
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
        for i in 0 .. n - 1 do m.[i, i] <- 1.0
        m

    let addDiagonal (c: float) (m: float[,]) =
        let r = m.Clone() :?> float[,]
        for i in 0 .. min (Array2D.length1 m) (Array2D.length2 m) - 1 do r.[i, i] <- r.[i, i] + c
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
    let batchCovariance (aRows: Tensor) (samples: int) =
        toMatrix (Tensor.matmulT true false aRows aRows / float samples)

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
type KbfgsOptimizer internal (model: Model, options: KbfgsOptions, limited: bool) =
    inherit Optimizer(model.Parameters, OptimizerSupport.defaultGroups model.Parameters options.LearningRate)
    do options.Validate()
    let name = if limited then "kbfgs-l" else "kbfgs"
    let display = if limited then "K-BFGS(L)" else "K-BFGS"
    let mu2 = sqrt options.Lambda
    let trainable = Model.trainableLayers model
    let infos, fallbackNotes =
        let infos = ResizeArray<KbfgsLayerInfo>()
        let notes = ResizeArray<string>()
        trainable |> Array.iteri (fun pos l ->
            let w = model.Parameters.[l.Weight.Value]
            let dg = w.Shape.[0]
            let da = w.Numel / dg + (if l.Bias.IsSome then 1 else 0)
            if not (KroneckerLayers.supports l) then
                notes.Add(sprintf "%s: layer %d (%O, '%s') has no Kronecker factors; its parameters take the momentum SGD step" display l.Index l.Spec l.Weight.Value.Name)
            elif max da dg > options.MaxFactorSize then
                notes.Add(sprintf "%s: layer %d (%O, '%s') has factors of size %d×%d and %d×%d, above MaxFactorSize %d; its parameters take the momentum SGD step"
                              display l.Index l.Spec l.Weight.Value.Name da da dg dg options.MaxFactorSize)
            else infos.Add { Layer = l; Position = pos; Name = l.Weight.Value.Name; Dg = dg; Da = da })
        infos.ToArray(), notes
    let preconditioned = HashSet<ParameterKey>(HashIdentity.Reference)
    do for i in infos do
        preconditioned.Add i.Layer.Weight.Value |> ignore
        i.Layer.Bias |> Option.iter (preconditioned.Add >> ignore)
    let fallbackKeys = model.Parameters.KeyArray |> Array.filter (fun k -> not (preconditioned.Contains k))
    do for k in fallbackKeys do
        if not (trainable |> Array.exists (fun l -> l.Weight = Some k || l.Bias = Some k)) then
            fallbackNotes.Add(sprintf "%s: parameter '%s' belongs to no layer; it takes the momentum SGD step" display k.Name)

    let mutable step = 0
    let mutable layers: KbfgsLayerState[] option = None
    let mutable fallbackMomentum = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
    let mutable warmA: float[,][] option = None
    let mutable warmBatches = 0
    let mutable warned = false

    let fail (message: string) =
        raise (OptimizationException(sprintf "%s step %d: %s; parameters and optimizer state are unchanged" display step message))

    let zeroCounts (i: KbfgsLayerInfo) =
        { Layer = i.Name; GUpdated = 0; GSkipped = 0; PowellDamped = 0; SecondStageDamped = 0; AUpdated = 0; ASkipped = 0 }

    let checkModel (m: Model) =
        let theirs = Model.trainableLayers m
        let same =
            theirs.Length = trainable.Length
            && Array.forall2 (fun (a: Layer) (b: Layer) ->
                a.Spec = b.Spec
                && Option.map2 (fun x y -> obj.ReferenceEquals(x, y)) a.Weight b.Weight = Some true
                && (match a.Bias, b.Bias with
                    | Some x, Some y -> obj.ReferenceEquals(x, y)
                    | None, None -> true
                    | _ -> false)) theirs trainable
        if not same then
            invalidArg "model" (sprintf "%s: model '%s' is not the model this optimizer was created for ('%s'): its layers or parameter keys differ" display m.Name model.Name)

    let runTrace (what: string) (m: Model) (ps: Parameters) (input: Tensor) (loss: Tensor -> Tensor) =
        let tr =
            try Distributed.gatherTrace (Trace.run m ps input loss)  // data-parallel hook
            with
            | :? TensorException as e -> fail (sprintf "the %s pass failed: %s" what e.Message)
            | :? ArgumentException as e -> fail (sprintf "the %s pass failed: %s" what e.Message)
        if not (Double.IsFinite tr.Loss) then fail (sprintf "the loss of the %s pass is %g" what tr.Loss)
        tr

    /// The forward pass only, returning each trainable layer's input.
    let layerInputs (m: Model) (ps: Parameters) (x: Tensor) =
        m.CheckInput x
        let inputs = ResizeArray<Tensor>()
        let mutable h = x
        for l in m.Layers do
            if l.Weight.IsSome then inputs.Add h
            h <- Layer.forward l ps h
        inputs.ToArray()

    let regularised (ps: Parameters) (gradient: Parameters) (k: ParameterKey) =
        if options.WeightDecay = 0.0 then gradient.[k] else Tensor.addScaled options.WeightDecay gradient.[k] ps.[k]

    let accumulate (previous: Tensor option) (g: Tensor) =
        let b = options.GradientMomentum
        match previous, options.MomentumForm with
        | None, KbfgsMomentum.Average -> (1.0 - b) * g
        | None, KbfgsMomentum.HeavyBall -> g
        | Some m, KbfgsMomentum.Average -> Tensor.addScaled (1.0 - b) (b * m) g
        | Some m, KbfgsMomentum.HeavyBall -> Tensor.addScaled 1.0 (b * m) g

    /// The dtype of the factor GEMMs for a layer's activation rows.
    let productDtype (rows: Tensor) =
        match options.FactorProducts with
        | KbfgsPrecision.Float64 -> Dtype.Float64
        | KbfgsPrecision.ModelDtype -> rows.Dtype

    let mlpRules (i: KbfgsLayerInfo) =
        options.MlpRulesForLinear && (match i.Layer.Spec with LayerSpec.Linear _ -> true | _ -> false)

    /// The A statistic and the second damping stage of a layer.
    let aStatisticOf (i: KbfgsLayerInfo) = if mlpRules i then KbfgsAStatistic.MovingAverage else options.AStatistic
    let secondStageOf (i: KbfgsLayerInfo) = if mlpRules i then SecondStageDamping.Powell else options.SecondStage

    let stateName (i: KbfgsLayerInfo) (field: string) = sprintf "layer.%s.%s" i.Name field

    /// Whether the layers' factors exist (after the first step or a restored state).
    member _.Initialised = layers.IsSome

    /// The weights of the layers K-BFGS preconditions, in model order.
    member _.PreconditionedLayers = infos |> Array.map (fun i -> i.Name)

    /// The parameters that take the momentum SGD step instead.
    member _.FallbackParameters = fallbackKeys |> Array.map (fun k -> k.Name)

    /// Per preconditioned layer, the updates done, skipped and damped so far.
    member _.LayerCounts =
        match layers with
        | Some ls -> ls |> Array.map (fun l -> l.Counts)
        | None -> infos |> Array.map zeroCounts

    /// The warm start of the moving-average A (kbfgs.md §3.1): one pass over the batches (for
    /// example a loader's epoch mapped to its inputs) with no parameter update, A = the running
    /// mean of the batches' Ā. Only before the first step, for the layers that keep a
    /// moving-average A; the first step then uses this A undecayed.
    member o.WarmStart(m: Model, batches: seq<Tensor>) =
        if layers.IsSome then
            invalidOp (sprintf "%s: the warm start must come before the first step (the factors exist, step %d)" display step)
        if not (infos |> Array.exists (fun i -> aStatisticOf i = KbfgsAStatistic.MovingAverage)) then
            invalidOp (sprintf "%s: the warm start averages the moving-average A, and no layer keeps one (AStatistic is %A)" display options.AStatistic)
        checkModel m
        let ps = o.Parameters
        let acc = infos |> Array.map (fun i -> Array2D.zeroCreate<float> i.Da i.Da)
        let mutable j = 0
        for x in batches do
            j <- j + 1
            let inputs = layerInputs m ps x
            for li in 0 .. infos.Length - 1 do
                let i = infos.[li]
                if aStatisticOf i = KbfgsAStatistic.MovingAverage then
                    let rows = KroneckerLayers.activationRows i.Layer inputs.[i.Position]
                    let ab = KbfgsAlgebra.batchCovariance (Tensor.cast (productDtype rows) rows) x.Shape.[0]
                    let w = 1.0 / float j
                    acc.[li] <- Bfgs.blend (1.0 - w) acc.[li] w ab
        if j = 0 then invalidArg "batches" (sprintf "%s: the warm start needs at least one batch" display)
        for a in acc do
            for r in 0 .. Array2D.length1 a - 1 do
                for c in 0 .. Array2D.length2 a - 1 do
                    if not (Double.IsFinite a.[r, c]) then
                        invalidArg "batches" (sprintf "%s: the warm-start average of A is not finite (a batch holds NaN or infinity)" display)
        warmA <- Some acc
        warmBatches <- j

    override _.Name = name
    override _.NeedsModel = true
    override _.StepCount = step

    override _.Step(_closure) =
        raise (OptimizationException(sprintf "%s preconditions layer by layer and needs the model and the batch: step it with StepOn(model, input, loss), not Step(closure)" display))

    override o.StepOn(m, input, loss) =
        checkModel m
        if not warned then
            warned <- true
            for note in fallbackNotes do o.Warn note
        let ps = o.Parameters
        let tr = runTrace "main" m ps input loss
        for k in ps.KeyArray do
            if not (OptimizerSupport.allFinite tr.Gradient.[k]) then
                fail (sprintf "the gradient of '%s' is not finite" k.Name)
        let first = layers.IsNone
        let stats = infos |> Array.map (fun i -> KroneckerLayers.ofTrace tr.Layers.[i.Position])
        let acts = stats |> Array.map (fun kl -> Tensor.cast (productDtype kl.Activations) kl.Activations)
        let regGrad = ps.WithValues(ps.KeyArray |> Array.map (regularised ps tr.Gradient))
        // A side and the direction, per layer
        let prepared =
            infos |> Array.mapi (fun li i ->
                let kl = stats.[li]
                let aRows = acts.[li]
                let samples = kl.BatchSize
                let prev = layers |> Option.map (fun ls -> ls.[li])
                let grad = Tensor.cast Dtype.Float64 (KroneckerLayers.weightMatrix i.Layer regGrad)
                let momentum = accumulate (prev |> Option.map (fun p -> p.Momentum)) grad
                let aNew =
                    match aStatisticOf i with
                    | KbfgsAStatistic.MiniBatch -> None
                    | KbfgsAStatistic.MovingAverage ->
                        match prev |> Option.bind (fun p -> p.A), warmA with
                        | Some a, _ ->
                            let ab = KbfgsAlgebra.batchCovariance aRows samples
                            Some (Bfgs.blend options.AMomentum a (1.0 - options.AMomentum) ab)
                        | None, Some w -> Some w.[li]
                        | None, None -> Some (KbfgsAlgebra.batchCovariance aRows samples)
                let ha =
                    match prev with
                    | Some p -> p.Ha
                    | None ->
                        match options.InitialHa with
                        | KbfgsInitialHa.Identity -> KbfgsAlgebra.identity i.Da
                        | KbfgsInitialHa.Inverse ->
                            let a0 = match aNew with Some a -> a | None -> KbfgsAlgebra.batchCovariance aRows samples
                            match Bfgs.choleskyInverse (KbfgsAlgebra.addDiagonal mu2 a0) with
                            | Some inv -> inv
                            | None -> fail (sprintf "A + √λ·I of layer '%s' is not positive definite (non-finite activations?)" i.Name)
                let g =
                    match prev with
                    | Some p -> p.G
                    | None when limited -> GSide.Limited (Lbfgs.empty options.Memory i.Dg 1.0)
                    | None -> GSide.Dense (KbfgsAlgebra.identity i.Dg)
                let direction = KbfgsAlgebra.precondition aRows.Dtype g momentum ha
                aNew, ha, g, momentum, direction)
        // fallback parameters: momentum SGD with the same momentum rule
        let nextFallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        for k in fallbackKeys do
            let prev = match fallbackMomentum.TryGetValue k with | true, v -> Some v | _ -> None
            nextFallback.[k] <- accumulate prev regGrad.[k]
        // the new point W − α·P (also the trial point)
        let directionOf = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        infos |> Array.iteri (fun li i ->
            let _, _, _, _, p = prepared.[li]
            for k, part in KroneckerLayers.splitMatrix i.Layer ps p do directionOf.[k] <- part)
        for kv in nextFallback do directionOf.[kv.Key] <- kv.Value
        let updated =
            ps.Map(fun k v ->
                let lr = o.GroupOf(k).LearningRate
                if lr = 0.0 then v else Tensor.addScaled (-lr) v (Tensor.cast v.Dtype directionOf.[k]))
        for k in updated.KeyArray do
            if not (OptimizerSupport.allFinite updated.[k]) then
                fail (sprintf "the step of '%s' is not finite" k.Name)
        // the factor updates, from a second pass at the new point on the same batch
        let updateFactors = step % options.UpdateEvery = 0
        let trial = if updateFactors then Some (runTrace "trial" m updated input loss) else None
        let nextLayers =
            infos |> Array.mapi (fun li i ->
                let aNew, ha, g, momentum, _ = prepared.[li]
                let prev = layers |> Option.map (fun ls -> ls.[li])
                let counts = match prev with Some p -> p.Counts | None -> zeroCounts i
                let sBar0 = match prev with Some p -> p.SBar | None -> Array.zeroCreate i.Dg
                let yBar0 = match prev with Some p -> p.YBar | None -> Array.zeroCreate i.Dg
                match trial with
                | None -> { A = aNew; Ha = ha; G = g; Momentum = momentum; SBar = sBar0; YBar = yBar0; Counts = counts }
                | Some t ->
                    let kl = stats.[li]
                    let klt = KroneckerLayers.ofTrace t.Layers.[i.Position]
                    // per-sample ∂L/∂h is N·∂L/∂h; its mean over N·|T| rows is Σ/|T|
                    let perSample = float kl.BatchSize
                    let gBar = KbfgsAlgebra.columnMeans kl.OutputGradients |> Array.map (fun v -> v * perSample)
                    let s = KbfgsAlgebra.meanDifference klt.PreActivations kl.PreActivations
                    let y = KbfgsAlgebra.meanDifference klt.OutputGradients kl.OutputGradients |> Array.map (fun v -> v * perSample)
                    if not (Array.forall Double.IsFinite s && Array.forall Double.IsFinite y) then
                        fail (sprintf "the trial pass gave non-finite outputs or output gradients at layer '%s'" i.Name)
                    let beta = options.PairMomentum
                    let sBar = Array.map2 (fun a b -> beta * a + (1.0 - beta) * b) sBar0 s
                    let yBar = Array.map2 (fun a b -> beta * a + (1.0 - beta) * b) yBar0 y
                    let pair = Bfgs.damp (secondStageOf i) options.Mu1 mu2 (KbfgsAlgebra.gTimes g) sBar yBar
                    let gNext, gOk =
                        match g with
                        | GSide.Dense hg ->
                            let status, h = Bfgs.gatedUpdate options.GateTolerance hg pair.S pair.Y gBar
                            GSide.Dense h, (status = BfgsStatus.Updated)
                        | GSide.Limited mem ->
                            let ss = Bfgs.dot pair.S pair.S
                            if Double.IsFinite ss && Array.forall Double.IsFinite pair.Y
                               && Bfgs.dot pair.S pair.Y > options.GateTolerance * ss * Bfgs.norm gBar then
                                GSide.Limited (Lbfgs.push mem pair.S pair.Y), true
                            else g, false
                    // A side: the exact Hessian-action pair s_a = H_a v, y_a = (A + √λI) s_a
                    let v = KbfgsAlgebra.columnMeans kl.Activations
                    let sa = Bfgs.matVec ha v
                    let aSa =
                        match aNew with
                        | Some a -> Bfgs.matVec a sa
                        | None ->
                            let aRows = acts.[li]
                            let asv = Tensor.matmul aRows (Tensor.cast aRows.Dtype (Tensor.ofArrayShape sa [| sa.Length; 1 |]))
                            Tensor.toArray (Tensor.matmulT true false aRows asv) |> Array.map (fun x -> x / float kl.BatchSize)
                    let ya = Array.map2 (fun x s -> x + mu2 * s) aSa sa
                    let aStatus, haNext = Bfgs.gatedUpdate options.GateTolerance ha sa ya v
                    let aOk = aStatus = BfgsStatus.Updated
                    { A = aNew; Ha = haNext; G = gNext; Momentum = momentum; SBar = sBar; YBar = yBar
                      Counts =
                        { counts with
                            GUpdated = counts.GUpdated + (if gOk then 1 else 0)
                            GSkipped = counts.GSkipped + (if gOk then 0 else 1)
                            PowellDamped = counts.PowellDamped + (if pair.PowellApplied then 1 else 0)
                            SecondStageDamped = counts.SecondStageDamped + (if pair.SecondStageApplied then 1 else 0)
                            AUpdated = counts.AUpdated + (if aOk then 1 else 0)
                            ASkipped = counts.ASkipped + (if aOk then 0 else 1) } })
        // commit
        o.Commit updated
        layers <- Some nextLayers
        fallbackMomentum <- nextFallback
        if first then warmA <- None
        step <- step + 1
        tr.Loss

    override o.StateEntries() =
        let t (a: float[]) = StoreValue.Tensor(Tensor.ofArrayShape (Array.copy a) [| a.Length |])
        let mat (m: float[,]) = StoreValue.Tensor(KbfgsAlgebra.ofMatrix m)
        [ yield "optimizer", StoreValue.Text name
          yield "step", StoreValue.Int step
          for g in o.Groups do yield "group." + g.Name + ".lr", StoreValue.Float g.LearningRate
          yield "initialised", StoreValue.Int(if layers.IsSome then 1 else 0)
          yield "warm.batches", StoreValue.Int warmBatches
          match warmA with
          | Some ws -> for li in 0 .. infos.Length - 1 do yield stateName infos.[li] "warm_a", mat ws.[li]
          | None -> ()
          match layers with
          | Some ls ->
              for li in 0 .. infos.Length - 1 do
                  let i, l = infos.[li], ls.[li]
                  let n = stateName i
                  match l.A with
                  | Some a -> yield n "a", mat a
                  | None -> ()
                  yield n "ha", mat l.Ha
                  match l.G with
                  | GSide.Dense hg -> yield n "hg", mat hg
                  | GSide.Limited mem ->
                      yield n "lbfgs.count", StoreValue.Int mem.Pairs.Length
                      if mem.Pairs.Length > 0 then
                          yield n "lbfgs.s", StoreValue.Tensor(Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map fst)) [| mem.Pairs.Length; i.Dg |])
                          yield n "lbfgs.y", StoreValue.Tensor(Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map snd)) [| mem.Pairs.Length; i.Dg |])
                  yield n "momentum", StoreValue.Tensor l.Momentum
                  yield n "sbar", t l.SBar
                  yield n "ybar", t l.YBar
                  let c = l.Counts
                  for field, v in [ "g_updated", c.GUpdated; "g_skipped", c.GSkipped; "powell_damped", c.PowellDamped
                                    "second_stage_damped", c.SecondStageDamped; "a_updated", c.AUpdated; "a_skipped", c.ASkipped ] do
                      yield n ("counts." + field), StoreValue.Int v
              for kv in fallbackMomentum do yield sprintf "fallback.%s.momentum" kv.Key.Name, StoreValue.Tensor kv.Value
          | None -> () ]

    override o.RestoreState(source, entries) =
        OptimizerSupport.checkKind source entries name
        let bad (msg: string) = raise (StateFormatException(sprintf "%s: %s" source msg))
        let st = TensorStore.getInt source entries "step"
        if st < 0 then bad (sprintf "negative step count %d" st)
        let lrs = o.Groups |> Array.map (fun g -> g, TensorStore.getFloat source entries ("group." + g.Name + ".lr"))
        let init = TensorStore.getInt source entries "initialised" = 1
        let wb = TensorStore.getInt source entries "warm.batches"
        let tensor (key: string) (shape: int[]) =
            let v = TensorStore.getTensor source entries key
            if v.Shape <> shape then bad (sprintf "entry '%s' has shape %s, expected %s" key (Shape.str v.Shape) (Shape.str shape))
            Tensor.cast Dtype.Float64 v
        let matrix key n = KbfgsAlgebra.toMatrix (tensor key [| n; n |])
        let vector key n = Tensor.toArray (tensor key [| n |])
        let warm =
            if not init && infos.Length > 0 && entries.ContainsKey(stateName infos.[0] "warm_a") then
                Some (infos |> Array.map (fun i -> matrix (stateName i "warm_a") i.Da))
            else None
        let restoredLayers =
            if not init then None
            else
                Some (infos |> Array.map (fun i ->
                    let n = stateName i
                    let a =
                        match aStatisticOf i with
                        | KbfgsAStatistic.MovingAverage -> Some (matrix (n "a") i.Da)
                        | KbfgsAStatistic.MiniBatch -> None
                    let g =
                        if limited then
                            let count = TensorStore.getInt source entries (n "lbfgs.count")
                            if count < 0 || count > options.Memory then bad (sprintf "layer '%s' holds %d L-BFGS pairs, the memory is %d" i.Name count options.Memory)
                            let rows (key: string) =
                                if count = 0 then [||]
                                else
                                    let flat = Tensor.toArray (tensor (n key) [| count; i.Dg |])
                                    Array.init count (fun r -> flat.[r * i.Dg .. (r + 1) * i.Dg - 1])
                            let ss, ys = rows "lbfgs.s", rows "lbfgs.y"
                            GSide.Limited { Lbfgs.empty options.Memory i.Dg 1.0 with Pairs = Array.zip ss ys }
                        else GSide.Dense (matrix (n "hg") i.Dg)
                    let count field = TensorStore.getInt source entries (n ("counts." + field))
                    { A = a
                      Ha = matrix (n "ha") i.Da
                      G = g
                      Momentum = tensor (n "momentum") [| i.Dg; i.Da |]
                      SBar = vector (n "sbar") i.Dg
                      YBar = vector (n "ybar") i.Dg
                      Counts =
                        { Layer = i.Name; GUpdated = count "g_updated"; GSkipped = count "g_skipped"
                          PowellDamped = count "powell_damped"; SecondStageDamped = count "second_stage_damped"
                          AUpdated = count "a_updated"; ASkipped = count "a_skipped" } }))
        let fallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        if init then
            for k in fallbackKeys do
                let key = sprintf "fallback.%s.momentum" k.Name
                let p = o.Parameters.[k]
                let v = TensorStore.getTensor source entries key
                if v.Shape <> p.Shape || v.Dtype <> p.Dtype then
                    bad (sprintf "entry '%s' is %O %s, the parameter is %O %s" key v.Dtype (Shape.str v.Shape) p.Dtype (Shape.str p.Shape))
                fallback.[k] <- v
        // everything parsed: now change the state
        for g, lr in lrs do g.LearningRate <- lr
        step <- st
        warmBatches <- wb
        warmA <- warm
        layers <- restoredLayers
        fallbackMomentum <- fallback

/// Builds K-BFGS optimizers for a model (its Linear and Conv2d layers are preconditioned).
module Kbfgs =
    /// K-BFGS: dense BFGS inverses H_a and H_g per layer.
    let create (options: KbfgsOptions) (model: Model) =
        options.Validate()
        KbfgsOptimizer(model, options, false)

    /// K-BFGS(L): H_g kept as an L-BFGS memory of options.Memory pairs with H⁰ = I.
    let createLimited (options: KbfgsOptions) (model: Model) =
        options.Validate()
        KbfgsOptimizer(model, options, true)
