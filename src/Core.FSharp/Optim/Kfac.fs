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
    /// conv statistic); G = mean over samples and locations of ggᵀ (KFC's Γ). The spec marks
    /// the conv rules as reconstructed, hence the switch.
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
type KfacOptions =
    { /// α: the step is W ← W − α·G⁻¹ M A⁻¹ with M the gradient momentum.
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
      Seed: int }

    static member Defaults =
        { LearningRate = 0.1; Damping = 0.1; DampingSplit = KfacDampingSplit.Pi; Momentum = 0.9; WeightDecay = 1e-5
          StatDecay = 0.9; CovarianceInterval = 1; InverseInterval = 20; InverseWarmup = 20; KlClip = None
          ConvScaling = KfacConvScaling.AverageActivations; Fisher = KfacFisher.Empirical; MaxFactorSize = 4096; Seed = 0 }

    member o.Validate() =
        let positive name (v: float) =
            if not (Double.IsFinite v) || v <= 0.0 then invalidArg name (sprintf "K-FAC: %s must be positive, got %g" name v)
        positive "LearningRate" o.LearningRate
        positive "Damping" o.Damping
        if not (o.Momentum >= 0.0 && o.Momentum < 1.0) then invalidArg "Momentum" (sprintf "K-FAC: Momentum must be in [0, 1), got %g" o.Momentum)
        if not (o.StatDecay >= 0.0 && o.StatDecay < 1.0) then invalidArg "StatDecay" (sprintf "K-FAC: StatDecay must be in [0, 1), got %g" o.StatDecay)
        if not (Double.IsFinite o.WeightDecay) || o.WeightDecay < 0.0 then
            invalidArg "WeightDecay" (sprintf "K-FAC: WeightDecay must be non-negative, got %g" o.WeightDecay)
        if o.CovarianceInterval < 1 then invalidArg "CovarianceInterval" (sprintf "K-FAC: CovarianceInterval must be at least 1, got %d" o.CovarianceInterval)
        if o.InverseInterval < 1 then invalidArg "InverseInterval" (sprintf "K-FAC: InverseInterval must be at least 1, got %d" o.InverseInterval)
        if o.InverseWarmup < 0 then invalidArg "InverseWarmup" (sprintf "K-FAC: InverseWarmup must be non-negative, got %d" o.InverseWarmup)
        if o.MaxFactorSize < 1 then invalidArg "MaxFactorSize" (sprintf "K-FAC: MaxFactorSize must be at least 1, got %d" o.MaxFactorSize)
        match o.KlClip with
        | Some k -> positive "KlClip" k
        | None -> ()

/// Counters of what K-FAC has done so far.
type KfacDiagnostics =
    { Steps: int
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
      LastKlScale: float }

/// One preconditioned layer's state: factor moving averages (float64), their damped
/// inverses (model dtype) and the gradient momentum [W | b] (model dtype).
type internal KfacLayerState =
    { A: Tensor option
      G: Tensor option
      AInv: Tensor option
      GInv: Tensor option
      Momentum: Tensor option }

    static member Empty = { A = None; G = None; AInv = None; GInv = None; Momentum = None }

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

/// The pieces of K-FAC as functions (used by the optimizer and checked by the tests).
module internal KfacMath =
    /// The batch statistics (A_batch, G_batch) of one layer in float64, g = N·∂L/∂h:
    /// see KfacConvScaling for the location scaling.
    let batchFactors (scaling: KfacConvScaling) (kl: KroneckerLayer) =
        let n = float kl.BatchSize
        let locations = float kl.Locations
        let a = Tensor.cast Dtype.Float64 (Tensor.matmulT true false kl.Activations kl.Activations)
        let g = Tensor.cast Dtype.Float64 (Tensor.matmulT true false kl.OutputGradients kl.OutputGradients)
        match scaling with
        | KfacConvScaling.AverageActivations -> a / (n * locations), g * n
        | KfacConvScaling.SumActivations -> a / n, g * (n / locations)

    let trace (n: int) (m: float[]) =
        let mutable s = 0.0
        for i in 0 .. n - 1 do s <- s + m.[i * n + i]
        s

    /// π of the factored damping (1 when either factor's mean eigenvalue is not a positive
    /// finite number).
    let pi (split: KfacDampingSplit) (na: int) (a: float[]) (ng: int) (g: float[]) =
        match split with
        | KfacDampingSplit.Plain -> 1.0
        | KfacDampingSplit.Pi ->
            let ta = trace na a / float na
            let tg = trace ng g / float ng
            let p = sqrt (ta / tg)
            if ta > 0.0 && tg > 0.0 && Double.IsFinite p && p > 0.0 then p else 1.0

    /// (m + δI)⁻¹ as a flat row-major array, with up to three retries adding more diagonal
    /// jitter; returns the inverse (or None) and the number of retries used.
    let dampedInverse (n: int) (m: float[]) (delta: float) =
        let scale = max 1e-300 (trace n m / float n |> abs)
        let rec attempt (extra: float) (retries: int) =
            let md = Array.copy m
            for i in 0 .. n - 1 do md.[i * n + i] <- md.[i * n + i] + delta + extra
            match SpdInverse.tryInvert n md with
            | Some inv -> Some inv, retries
            | None when retries < 3 -> attempt (max (extra * 100.0) (1e-8 * max scale delta)) (retries + 1)
            | None -> None, retries
        attempt 0.0 0

    /// Δ = G⁻¹ M A⁻¹: the Kronecker-factored inverse applied to a d_g × d_a matrix
    /// ((A⁻¹ ⊗ G⁻¹) vec(M) with column-major vec; A⁻¹ is symmetric).
    let precondition (gInv: Tensor) (m: Tensor) (aInv: Tensor) = Tensor.matmul (Tensor.matmul gInv m) aInv

/// K-FAC (Martens & Grosse 2015; Grosse & Martens 2016 for convolutions) for the Linear and
/// Conv2d layers of a model: per layer the Fisher block is approximated by A ⊗ G with
/// A = E[āāᵀ] (ā the input or patch with a trailing 1 for the bias) and G = E[ggᵀ]
/// (g = N·∂L/∂h per sample), kept as moving averages, damped, inverted in float64 every
/// InverseInterval steps and applied to the gradient momentum. Parameters outside such
/// layers (or in layers above MaxFactorSize) are updated by SGD with the same momentum and
/// learning rate, with a Warning. Stepped with StepOn(model, input, loss).
type KfacOptimizer(model: Model, initial: Parameters, groups: ParamGroup[], options: KfacOptions) =
    inherit Optimizer(initial, groups)
    do options.Validate()

    let layerDims (l: Layer) =
        let w = initial.[l.Weight.Value]
        Shape.numel w.Shape / w.Shape.[0] + (if l.Bias.IsSome then 1 else 0), w.Shape.[0]

    let inSet (l: Layer) = initial.Contains l.Weight.Value && (l.Bias.IsNone || initial.Contains l.Bias.Value)
    let candidates = Model.trainableLayers model |> Array.filter (fun l -> KroneckerLayers.supports l && inSet l)
    let preconditioned =
        candidates |> Array.filter (fun l -> let da, dg = layerDims l in da <= options.MaxFactorSize && dg <= options.MaxFactorSize)
    let oversized = candidates |> Array.filter (fun l -> not (Array.contains l preconditioned))
    let covered = HashSet<ParameterKey>(HashIdentity.Reference)
    do
        for l in preconditioned do
            covered.Add l.Weight.Value |> ignore
            l.Bias |> Option.iter (covered.Add >> ignore)
    let fallbackKeys = initial.KeyArray |> Array.filter (fun k -> not (covered.Contains k))
    let layerByWeight = Dictionary<ParameterKey, Layer>(HashIdentity.Reference)
    do for l in preconditioned do layerByWeight.[l.Weight.Value] <- l

    let mutable step = 0
    let mutable layers = Dictionary<ParameterKey, KfacLayerState>(HashIdentity.Reference)
    let mutable fallbackMomentum = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
    let mutable diag =
        { Steps = 0; FactorUpdates = 0; SkippedFactorUpdates = 0; Inversions = 0; InversionRetries = 0; FailedInversions = 0
          PreconditionedLayers = preconditioned.Length; FallbackParameters = fallbackKeys |> Array.map (fun k -> k.Name); LastKlScale = 1.0 }
    let mutable warned = false

    let layerName (l: Layer) = sprintf "layer %d (%O)" l.Index l.Spec
    let stateOf (l: Layer) = match layers.TryGetValue l.Weight.Value with | true, s -> s | _ -> KfacLayerState.Empty

    member _.Options = options
    member _.Model = model
    /// The layers K-FAC preconditions.
    member _.PreconditionedLayers = Array.copy preconditioned
    /// Counts of factor updates, inversions, fallbacks.
    member _.Diagnostics = diag

    override _.Name = "kfac"
    override _.NeedsModel = true
    override _.StepCount = step

    override _.Step(_closure) =
        raise (OptimizationException "K-FAC preconditions layer by layer and needs the model and the batch: call StepOn(model, input, loss) (the Trainer does) instead of Step(closure); nothing was changed")

    override o.StepOn(stepModel, input, loss) =
        let fail (msg: string) = raise (OptimizationException(sprintf "K-FAC step %d: %s; parameters and optimizer state are unchanged" step msg))
        if not warned then
            warned <- true
            for l in oversized do
                let da, dg = layerDims l
                o.Warn(sprintf "K-FAC: %s has factors %d×%d and %d×%d, above MaxFactorSize %d; its parameters are updated by SGD with momentum" (layerName l) da da dg dg options.MaxFactorSize)
            for k in fallbackKeys do
                if not (Array.exists (fun (l: Layer) -> l.Weight = Some k || l.Bias = Some k) oversized) then
                    o.Warn(sprintf "K-FAC: parameter '%s' belongs to no Linear or Conv2d layer of model '%s'; it is updated by SGD with momentum" k.Name model.Name)
        let ps = o.Parameters
        let runTrace (f: Tensor -> Tensor) =
            try Distributed.gatherTrace (Trace.run stepModel ps input f)  // data-parallel hook
            with
            | :? TensorException as e -> fail (sprintf "the forward/reverse pass failed: %s" e.Message)
            | :? ArgumentException as e -> fail (sprintf "the forward/reverse pass failed: %s" e.Message)
        let tr = runTrace loss
        if not (Double.IsFinite tr.Loss) then fail (sprintf "the loss is %g" tr.Loss)
        for k in ps.KeyArray do
            if not (OptimizerSupport.allFinite tr.Gradient.[k]) then fail (sprintf "the gradient of '%s' is not finite" k.Name)
        let byWeight (t: ModelTrace) =
            let d = Dictionary<ParameterKey, LayerTrace>(HashIdentity.Reference)
            for lt in t.Layers do
                match lt.Layer.Weight with
                | Some w when layerByWeight.ContainsKey w -> d.[w] <- lt
                | _ -> ()
            d
        let traces = byWeight tr
        for l in preconditioned do
            if not (traces.ContainsKey l.Weight.Value) then
                fail (sprintf "%s of the optimizer's model is not in model '%s'" (layerName l) stepModel.Name)
        let updateCov = step % options.CovarianceInterval = 0
        let fisherTraces =
            if not updateCov then traces
            else
                match options.Fisher with
                | KfacFisher.Empirical -> traces
                | KfacFisher.Sampled sampler -> byWeight (runTrace (sampler (Seeds.mix options.Seed step)))
        let mutable factorUpdates, skipped, inversions, retries, failed = 0, 0, 0, 0, 0
        let gamma = sqrt options.Damping
        let newLayers = Dictionary<ParameterKey, KfacLayerState>(HashIdentity.Reference)
        let directions = Dictionary<ParameterKey, Tensor * Tensor>(HashIdentity.Reference)  // Δ, gradient matrix
        for l in preconditioned do
            let s = stateOf l
            let dtype = ps.[l.Weight.Value].Dtype
            // factors
            let s =
                if not updateCov then s
                else
                    let ab, gb = KfacMath.batchFactors options.ConvScaling (KroneckerLayers.ofTrace fisherTraces.[l.Weight.Value])
                    if not (OptimizerSupport.allFinite ab && OptimizerSupport.allFinite gb) then
                        skipped <- skipped + 1
                        s
                    else
                        factorUpdates <- factorUpdates + 1
                        let ema (old: Tensor option) (b: Tensor) =
                            match old with
                            | Some f -> Tensor.addScaled (1.0 - options.StatDecay) (options.StatDecay * f) b
                            | None -> b
                        { s with A = Some (ema s.A ab); G = Some (ema s.G gb) }
            // inverses
            let s =
                let due = step < options.InverseWarmup || step % options.InverseInterval = 0 || s.AInv.IsNone
                match s.A, s.G with
                | Some a, Some g when due ->
                    let na, ng = a.Shape.[0], g.Shape.[0]
                    let av, gv = Tensor.toArray a, Tensor.toArray g
                    let p = KfacMath.pi options.DampingSplit na av ng gv
                    let invert n (m: float[]) delta (previous: Tensor option) =
                        inversions <- inversions + 1
                        let inv, r = KfacMath.dampedInverse n m delta
                        retries <- retries + r
                        match inv with
                        | Some v -> Some (Tensor.cast dtype (Tensor.ofArrayShape v [| n; n |]))
                        | None ->
                            failed <- failed + 1
                            match previous with
                            | Some _ -> previous
                            | None -> Some (Tensor.cast dtype (Tensor.ofArray2D (DenseAlgebra.identity n)) * (1.0 / delta))
                    { s with AInv = invert na av (p * gamma) s.AInv; GInv = invert ng gv (gamma / p) s.GInv }
                | _ -> s
            // momentum of the regularised gradient, then the preconditioned direction
            let grad = KroneckerLayers.weightMatrix l tr.Gradient
            let reg = if options.WeightDecay = 0.0 then grad else Tensor.addScaled options.WeightDecay grad (KroneckerLayers.weightMatrix l ps)
            let m =
                match s.Momentum with
                | Some prev when options.Momentum <> 0.0 -> Tensor.addScaled (1.0 - options.Momentum) (options.Momentum * prev) reg
                | _ when options.Momentum <> 0.0 -> (1.0 - options.Momentum) * reg
                | _ -> reg
            let s = { s with Momentum = Some (Tensor.detach m) }
            match s.AInv, s.GInv with
            | Some ai, Some gi -> directions.[l.Weight.Value] <- (KfacMath.precondition gi m ai, grad)
            | _ -> fail (sprintf "%s has no factor inverses yet (CovarianceInterval must let step 0 update the factors)" (layerName l))
            newLayers.[l.Weight.Value] <- s
        // optional KL clipping over the preconditioned layers
        let lrOf (k: ParameterKey) = o.GroupOf(k).LearningRate
        let klScale =
            match options.KlClip with
            | None -> 1.0
            | Some kappa ->
                let mutable vg = 0.0
                for l in preconditioned do
                    let d, g = directions.[l.Weight.Value]
                    let lr = lrOf l.Weight.Value
                    vg <- vg + lr * lr * Tensor.toScalar (Tensor.sum (Tensor.cast Dtype.Float64 (d * g)))
                if vg > 0.0 && Double.IsFinite vg then min 1.0 (sqrt (kappa / vg)) else 1.0
        let updated = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        for l in preconditioned do
            let d, _ = directions.[l.Weight.Value]
            for key, part in KroneckerLayers.splitMatrix l ps d do
                let lr = lrOf key * klScale
                updated.[key] <- if lr = 0.0 then ps.[key] else Tensor.addScaled -lr ps.[key] part
        let newFallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        for k in fallbackKeys do
            let g = tr.Gradient.[k]
            let reg = if options.WeightDecay = 0.0 then g else Tensor.addScaled options.WeightDecay g ps.[k]
            let m =
                match fallbackMomentum.TryGetValue k with
                | true, prev when options.Momentum <> 0.0 -> Tensor.addScaled (1.0 - options.Momentum) (options.Momentum * prev) reg
                | _ when options.Momentum <> 0.0 -> (1.0 - options.Momentum) * reg
                | _ -> reg
            newFallback.[k] <- Tensor.detach m
            let lr = lrOf k
            updated.[k] <- if lr = 0.0 then ps.[k] else Tensor.addScaled -lr ps.[k] m
        let next = ps.Map(fun k v -> Tensor.detach updated.[k])
        for k in ps.KeyArray do
            if not (OptimizerSupport.allFinite next.[k]) then fail (sprintf "the update of '%s' is not finite" k.Name)
        // commit
        o.Commit next
        layers <- newLayers
        fallbackMomentum <- newFallback
        step <- step + 1
        diag <-
            { diag with
                Steps = step
                FactorUpdates = diag.FactorUpdates + factorUpdates
                SkippedFactorUpdates = diag.SkippedFactorUpdates + skipped
                Inversions = diag.Inversions + inversions
                InversionRetries = diag.InversionRetries + retries
                FailedInversions = diag.FailedInversions + failed
                LastKlScale = klScale }
        tr.Loss

    override o.StateEntries() =
        [ yield "optimizer", StoreValue.Text o.Name
          yield "step", StoreValue.Int step
          for g in o.Groups do
              yield "group." + g.Name + ".lr", StoreValue.Float g.LearningRate
          yield "count.factorUpdates", StoreValue.Int diag.FactorUpdates
          yield "count.skippedFactorUpdates", StoreValue.Int diag.SkippedFactorUpdates
          yield "count.inversions", StoreValue.Int diag.Inversions
          yield "count.inversionRetries", StoreValue.Int diag.InversionRetries
          yield "count.failedInversions", StoreValue.Int diag.FailedInversions
          for l in preconditioned do
              let s = stateOf l
              let w = l.Weight.Value.Name
              for suffix, t in [ "A", s.A; "G", s.G; "Ainv", s.AInv; "Ginv", s.GInv; "momentum", s.Momentum ] do
                  match t with
                  | Some v -> yield sprintf "kfac.%s.%s" w suffix, StoreValue.Tensor v
                  | None -> ()
          for k in fallbackKeys do
              match fallbackMomentum.TryGetValue k with
              | true, m -> yield sprintf "fallback.%s.momentum" k.Name, StoreValue.Tensor m
              | _ -> () ]

    override o.RestoreState(source, entries) =
        OptimizerSupport.checkKind source entries o.Name
        let bad (msg: string) = raise (StateFormatException(sprintf "%s: %s" source msg))
        let st = TensorStore.getInt source entries "step"
        if st < 0 then bad (sprintf "step is %d" st)
        let lrs = o.Groups |> Array.map (fun g -> g, TensorStore.getFloat source entries ("group." + g.Name + ".lr"))
        let count name = TensorStore.getInt source entries ("count." + name)
        let counts = [| count "factorUpdates"; count "skippedFactorUpdates"; count "inversions"; count "inversionRetries"; count "failedInversions" |]
        let opt name (shape: int[]) (dtype: Dtype) =
            if entries.ContainsKey name then
                let t = TensorStore.getTensor source entries name
                if t.Shape <> shape || t.Dtype <> dtype then
                    bad (sprintf "'%s' is %O %s, expected %O %s" name t.Dtype (Shape.str t.Shape) dtype (Shape.str shape))
                Some t
            else None
        let newLayers = Dictionary<ParameterKey, KfacLayerState>(HashIdentity.Reference)
        for l in preconditioned do
            let da, dg = layerDims l
            let w = l.Weight.Value.Name
            let dtype = o.Parameters.[l.Weight.Value].Dtype
            let s =
                { A = opt (sprintf "kfac.%s.A" w) [| da; da |] Dtype.Float64
                  G = opt (sprintf "kfac.%s.G" w) [| dg; dg |] Dtype.Float64
                  AInv = opt (sprintf "kfac.%s.Ainv" w) [| da; da |] dtype
                  GInv = opt (sprintf "kfac.%s.Ginv" w) [| dg; dg |] dtype
                  Momentum = opt (sprintf "kfac.%s.momentum" w) [| dg; da |] dtype }
            if s.A.IsSome <> s.G.IsSome || s.AInv.IsSome <> s.GInv.IsSome then bad (sprintf "incomplete factors for '%s'" w)
            if st > 0 && s.AInv.IsNone then bad (sprintf "no factor inverses for '%s' after %d steps" w st)
            newLayers.[l.Weight.Value] <- s
        let newFallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        for k in fallbackKeys do
            let p = o.Parameters.[k]
            match opt (sprintf "fallback.%s.momentum" k.Name) p.Shape p.Dtype with
            | Some m -> newFallback.[k] <- m
            | None -> ()
        for g, lr in lrs do g.LearningRate <- lr
        step <- st
        layers <- newLayers
        fallbackMomentum <- newFallback
        diag <-
            { diag with
                Steps = st; FactorUpdates = counts.[0]; SkippedFactorUpdates = counts.[1]; Inversions = counts.[2]
                InversionRetries = counts.[3]; FailedInversions = counts.[4]; LastKlScale = 1.0 }

/// Builds K-FAC optimizers.
module Kfac =
    /// K-FAC over a model's parameters in one group (learning rate α).
    let create (options: KfacOptions) (model: Model) =
        KfacOptimizer(model, model.Parameters, OptimizerSupport.defaultGroups model.Parameters options.LearningRate, options)

    /// K-FAC over an explicit parameter set that holds the model's parameters (and possibly
    /// others, which are updated by the SGD-momentum fallback).
    let createFor (options: KfacOptions) (model: Model) (ps: Parameters) =
        KfacOptimizer(model, ps, OptimizerSupport.defaultGroups ps options.LearningRate, options)

    /// The K-BFGS authors' K-FAC baseline (spec kbfgs.md §8): sampled true Fisher, factor
    /// EMA 0.9 updated every step, inverses of A + √λI and G + √λI (no π) every 20 steps and
    /// at each of the first 20, EMA gradient momentum 0.9, L2 1e-5, no KL clipping.
    let authorsBaseline (learningRate: float) (lambda: float) (sampler: int -> Tensor -> Tensor) =
        { KfacOptions.Defaults with
            LearningRate = learningRate; Damping = lambda; DampingSplit = KfacDampingSplit.Plain; Momentum = 0.9
            WeightDecay = 1e-5; StatDecay = 0.9; CovarianceInterval = 1; InverseInterval = 20; InverseWarmup = 20
            KlClip = None; Fisher = KfacFisher.Sampled sampler; MaxFactorSize = Int32.MaxValue }
