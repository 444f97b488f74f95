namespace GroupedNewton

open System
open System.Collections.Generic

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

        for i in 0 .. n - 1 do
            s <- s + m.[i * n + i]

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

            for i in 0 .. n - 1 do
                md.[i * n + i] <- md.[i * n + i] + delta + extra

            match DenseAlgebra.trySpdInverse n md with
            | Some inv -> Some inv, retries
            | None when retries < 3 -> attempt (max (extra * 100.0) (1e-8 * max scale delta)) (retries + 1)
            | None -> None, retries

        attempt 0.0 0

    /// Δ = G⁻¹ M A⁻¹: the Kronecker-factored inverse applied to a d_g × d_a matrix
    /// ((A⁻¹ ⊗ G⁻¹) vec(M) with column-major vec; A⁻¹ is symmetric).
    let precondition (gInv: Tensor) (m: Tensor) (aInv: Tensor) = Tensor.matmul (Tensor.matmul gInv m) aInv

/// One preconditioned layer's state: factor moving averages (float64), their damped
/// inverses (model dtype) and the gradient momentum [W | b] (model dtype).
type internal KfacLayerState = {
    A: Tensor option
    G: Tensor option
    AInv: Tensor option
    GInv: Tensor option
    Momentum: Tensor option
} with

    static member Empty = { A = None; G = None; AInv = None; GInv = None; Momentum = None }

/// The running counts behind KfacDiagnostics.
type internal KfacCounts = {
    FactorUpdates: int
    SkippedFactorUpdates: int
    Inversions: int
    InversionRetries: int
    FailedInversions: int
    LastKlScale: float
} with

    static member Zero = {
        FactorUpdates = 0
        SkippedFactorUpdates = 0
        Inversions = 0
        InversionRetries = 0
        FailedInversions = 0
        LastKlScale = 1.0
    }

/// Everything K-FAC carries between steps; Layers is aligned with the selection's layers.
type internal KfacState = {
    Step: int
    Layers: KfacLayerState[]
    Fallback: IReadOnlyDictionary<ParameterKey, Tensor>
    Counts: KfacCounts
}

/// What one K-FAC step needs besides the state.
type internal KfacInput = {
    Parameters: Parameters
    /// The traced pass of the training loss at the current parameters.
    Main: ModelTrace
    /// The traced pass whose output gradients give G (called on covariance steps only).
    Fisher: unit -> ModelTrace
    LearningRate: ParameterKey -> float
}

/// K-FAC's step as a function of its options, layer selection and state.
module internal KfacStep =
    let display = "K-FAC"

    let private byWeight (t: ModelTrace) =
        let d = Dictionary<ParameterKey, LayerTrace>(HashIdentity.Reference)

        for lt in t.Layers do
            match lt.Layer.Weight with
            | Some w -> d.[w] <- lt
            | None -> ()

        d

    let step (options: KfacOptions) (selection: LayerSelection) (state: KfacState) (input: KfacInput) : KfacState * Parameters =
        let fail msg = Layerwise.fail display state.Step msg
        let ps = input.Parameters
        let traces = byWeight input.Main

        for i in selection.Layers do
            if not (traces.ContainsKey i.Layer.Weight.Value) then
                fail (sprintf "%s of the optimizer's model is not in the model stepped" (Layerwise.describe i.Layer))

        let updateCov = state.Step % options.CovarianceInterval = 0

        let fisherTraces =
            match options.Fisher with
            | KfacFisher.Sampled _ when updateCov -> byWeight (input.Fisher())
            | _ -> traces

        let mutable counts = state.Counts
        let gamma = sqrt options.Damping

        let layerStep (i: PreconditionedLayer) (s: KfacLayerState) =
            let dtype = ps.[i.Layer.Weight.Value].Dtype

            let s =
                if not updateCov then
                    s
                else
                    let ab, gb =
                        KfacMath.batchFactors options.ConvScaling (KroneckerLayers.ofTrace fisherTraces.[i.Layer.Weight.Value])

                    if not (OptimizerSupport.allFinite ab && OptimizerSupport.allFinite gb) then
                        counts <- { counts with SkippedFactorUpdates = counts.SkippedFactorUpdates + 1 }
                        s
                    else
                        counts <- { counts with FactorUpdates = counts.FactorUpdates + 1 }

                        let ema (old: Tensor option) (b: Tensor) =
                            match old with
                            | Some f -> Tensor.addScaled (1.0 - options.StatDecay) (options.StatDecay * f) b
                            | None -> b

                        { s with A = Some(ema s.A ab); G = Some(ema s.G gb) }

            let s =
                let due =
                    state.Step < options.InverseWarmup || state.Step % options.InverseInterval = 0 || s.AInv.IsNone

                match s.A, s.G with
                | Some a, Some g when due ->
                    let na, ng = a.Shape.[0], g.Shape.[0]
                    let av, gv = Tensor.toArray a, Tensor.toArray g
                    let p = KfacMath.pi options.DampingSplit na av ng gv

                    let invert n (m: float[]) delta (previous: Tensor option) =
                        let inv, r = KfacMath.dampedInverse n m delta
                        counts <- { counts with Inversions = counts.Inversions + 1; InversionRetries = counts.InversionRetries + r }

                        match inv with
                        | Some v -> Some(Tensor.cast dtype (Tensor.ofArrayShape v [| n; n |]))
                        | None ->
                            counts <- { counts with FailedInversions = counts.FailedInversions + 1 }

                            match previous with
                            | Some _ -> previous
                            | None -> Some(Tensor.cast dtype (Tensor.ofArray2D (DenseAlgebra.identity n)) * (1.0 / delta))

                    { s with AInv = invert na av (p * gamma) s.AInv; GInv = invert ng gv (gamma / p) s.GInv }
                | _ -> s
            // momentum of the regularised gradient, then the preconditioned direction
            let grad = KroneckerLayers.weightMatrix i.Layer input.Main.Gradient

            let reg =
                if options.WeightDecay = 0.0 then
                    grad
                else
                    Tensor.addScaled options.WeightDecay grad (KroneckerLayers.weightMatrix i.Layer ps)

            let m = Layerwise.averageMomentum options.Momentum s.Momentum reg
            let s = { s with Momentum = Some(Tensor.detach m) }

            match s.AInv, s.GInv with
            | Some ai, Some gi -> s, KfacMath.precondition gi m ai, grad
            | _ ->
                fail (
                    sprintf
                        "%s has no factor inverses yet (CovarianceInterval must let step 0 update the factors)"
                        (Layerwise.describe i.Layer)
                )

        let results = Array.map2 layerStep selection.Layers state.Layers
        // optional KL clipping over the preconditioned layers
        let klScale =
            match options.KlClip with
            | None -> 1.0
            | Some kappa ->
                let mutable vg = 0.0

                Array.iteri2
                    (fun li (i: PreconditionedLayer) (_, d, g) ->
                        let lr = input.LearningRate i.Layer.Weight.Value
                        vg <- vg + lr * lr * Tensor.toScalar (Tensor.sum (Tensor.cast Dtype.Float64 (d * g))))
                    selection.Layers
                    results

                if vg > 0.0 && Double.IsFinite vg then min 1.0 (sqrt (kappa / vg)) else 1.0

        let direction = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        let scale = Dictionary<ParameterKey, float>(HashIdentity.Reference)

        Array.iter2
            (fun (i: PreconditionedLayer) (_, d, _) ->
                for key, part in KroneckerLayers.splitMatrix i.Layer ps d do
                    direction.[key] <- part
                    scale.[key] <- klScale)
            selection.Layers
            results

        let reg (k: ParameterKey) = Layerwise.regularised options.WeightDecay ps.[k] input.Main.Gradient.[k]

        let fallback =
            Layerwise.fallbackMomentum selection.FallbackKeys (Layerwise.averageMomentum options.Momentum) state.Fallback reg

        for kv in fallback do
            direction.[kv.Key] <- kv.Value

        let lrOf k =
            match scale.TryGetValue k with
            | true, c -> input.LearningRate k * c
            | _ -> input.LearningRate k

        let next = Layerwise.applyStep display state.Step ps lrOf (fun k -> direction.[k])

        {
            Step = state.Step + 1
            Layers = results |> Array.map (fun (s, _, _) -> s)
            Fallback = fallback
            Counts = { counts with LastKlScale = klScale }
        },
        next

    /// The saved layout of K-FAC's state (with the group learning rates, read into `Rates`).
    let schema (selection: LayerSelection) (initial: Parameters) : StateField<KfacState> list =
        let count name (get: KfacCounts -> int) (set: int -> KfacCounts -> KfacCounts) =
            StateSchema.field ("count." + name) StateSchema.intCodec (fun (s: KfacState) -> get s.Counts) (fun v s -> {
                s with
                    Counts = set v s.Counts
            })

        let layerFields (i: PreconditionedLayer) =
            let dtype = initial.[i.Layer.Weight.Value].Dtype

            let entry suffix (shape: int[]) dt get set =
                StateSchema.optional (sprintf "kfac.%s.%s" i.Name suffix) (StateSchema.tensorCodec shape (Some dt)) get set

            [
                entry "A" [| i.Da; i.Da |] Dtype.Float64 (fun s -> s.A) (fun v s -> { s with A = v })
                entry "G" [| i.Dg; i.Dg |] Dtype.Float64 (fun s -> s.G) (fun v s -> { s with G = v })
                entry "Ainv" [| i.Da; i.Da |] dtype (fun s -> s.AInv) (fun v s -> { s with AInv = v })
                entry "Ginv" [| i.Dg; i.Dg |] dtype (fun s -> s.GInv) (fun v s -> { s with GInv = v })
                entry "momentum" [| i.Dg; i.Da |] dtype (fun s -> s.Momentum) (fun v s -> { s with Momentum = v })
            ]

        [
            yield! StateSchema.header "kfac" (fun s -> s.Step) (fun v s -> { s with Step = v })
            yield count "factorUpdates" (fun c -> c.FactorUpdates) (fun v c -> { c with FactorUpdates = v })
            yield count "skippedFactorUpdates" (fun c -> c.SkippedFactorUpdates) (fun v c -> { c with SkippedFactorUpdates = v })
            yield count "inversions" (fun c -> c.Inversions) (fun v c -> { c with Inversions = v })
            yield count "inversionRetries" (fun c -> c.InversionRetries) (fun v c -> { c with InversionRetries = v })
            yield count "failedInversions" (fun c -> c.FailedInversions) (fun v c -> { c with FailedInversions = v })
            for li in 0 .. selection.Layers.Length - 1 do
                let i = selection.Layers.[li]

                yield
                    StateSchema.nested
                        (fun s -> s.Layers.[li])
                        (fun l s -> { s with Layers = Array.updateAt li l s.Layers })
                        (layerFields i)

                yield
                    StateSchema.check (fun src s ->
                        let l = s.Layers.[li]

                        if l.A.IsSome <> l.G.IsSome || l.AInv.IsSome <> l.GInv.IsSome then
                            StateSchema.fail src (sprintf "incomplete factors for '%s'" i.Name)

                        if s.Step > 0 && l.AInv.IsNone then
                            StateSchema.fail src (sprintf "no factor inverses for '%s' after %d steps" i.Name s.Step))
            yield
                Layerwise.fallbackField selection.FallbackKeys initial (fun _ -> false) (fun s -> s.Fallback) (fun v s -> {
                    s with
                        Fallback = v
                })
        ]

/// K-FAC (Martens & Grosse 2015; Grosse & Martens 2016 for convolutions) for the Linear and
/// Conv2d layers of a model: per layer the Fisher block is approximated by A ⊗ G with
/// A = E[āāᵀ] (ā the input or patch with a trailing 1 for the bias) and G = E[ggᵀ]
/// (g = N·∂L/∂h per sample), kept as moving averages, damped, inverted in float64 every
/// InverseInterval steps and applied to the gradient momentum. Parameters outside such
/// layers (or in layers above MaxFactorSize) are updated by SGD with the same momentum and
/// learning rate, with a Warning. Stepped with StepOn(model, input, loss); the step itself is
/// KfacStep.step, this object holds the state.
type KfacOptimizer(model: Model, initial: Parameters, groups: ParamGroup[], options: KfacOptions) =
    inherit Optimizer(initial, groups)
    do options.Validate()
    let selection = Layerwise.select KfacStep.display model initial options.MaxFactorSize

    let mutable state = {
        Step = 0
        Layers = selection.Layers |> Array.map (fun _ -> KfacLayerState.Empty)
        Fallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        Counts = KfacCounts.Zero
    }

    let schema = KfacStep.schema selection initial
    let rates = StateSchema.groupRates groups
    let mutable warned = false

    member _.Options = options
    member _.Model = model
    /// The layers K-FAC preconditions.
    member _.PreconditionedLayers = selection.Layers |> Array.map (fun i -> i.Layer)

    /// Counts of factor updates, inversions, fallbacks.
    member _.Diagnostics =
        let c = state.Counts

        {
            Steps = state.Step
            FactorUpdates = c.FactorUpdates
            SkippedFactorUpdates = c.SkippedFactorUpdates
            Inversions = c.Inversions
            InversionRetries = c.InversionRetries
            FailedInversions = c.FailedInversions
            PreconditionedLayers = selection.Layers.Length
            FallbackParameters = selection.FallbackKeys |> Array.map (fun k -> k.Name)
            LastKlScale = c.LastKlScale
        }

    override _.Name = "kfac"
    override _.NeedsModel = true
    override _.StepCount = state.Step

    override _.Step(_closure) =
        raise (
            OptimizationException
                "K-FAC preconditions layer by layer and needs the model and the batch: call StepOn(model, input, loss) (the Trainer does) instead of Step(closure); nothing was changed"
        )

    override o.StepOn(stepModel, input, loss) =
        if not warned then
            warned <- true

            for note in selection.Notes do
                o.Warn note

        let ps = o.Parameters
        let trace what checks f = Layerwise.trace KfacStep.display state.Step what checks checks stepModel ps input f
        let main = trace "main" true loss

        let fisher () =
            match options.Fisher with
            | KfacFisher.Sampled sampler -> trace "sampled-Fisher" false (sampler (Seeds.mix options.Seed state.Step))
            | KfacFisher.Empirical -> main

        let next, updated =
            KfacStep.step options selection state {
                Parameters = ps
                Main = main
                Fisher = fisher
                LearningRate = fun k -> o.GroupOf(k).LearningRate
            }

        o.Commit updated
        state <- next
        main.Loss

    override o.StateEntries() =
        let entries = StateSchema.save schema state
        // the header, then the group rates, then the rest (the order of the first release)
        entries.[..1] @ rates.Save(o.Groups |> Array.map (fun g -> g.LearningRate)) @ entries.[2..]

    override o.RestoreState(source, entries) =
        let src = { Source = source; Entries = entries }
        let next = StateSchema.load schema src state
        let lrs = rates.Load src [||]
        Array.iter2 (fun (g: ParamGroup) lr -> g.LearningRate <- lr) o.Groups lrs
        state <- { next with Counts = { next.Counts with LastKlScale = 1.0 } }

/// Builds K-FAC optimizers.
module Kfac =
    /// K-FAC over a model's parameters in one group (learning rate α).
    let create (options: KfacOptions) (model: Model) =
        KfacOptimizer(model, model.Parameters, OptimizerSupport.defaultGroups model.Parameters options.LearningRate, options)

    /// K-FAC over an explicit parameter set that holds the model's parameters (and possibly
    /// others, which are updated by the SGD-momentum fallback).
    let createFor (options: KfacOptions) (model: Model) (ps: Parameters) =
        KfacOptimizer(model, ps, OptimizerSupport.defaultGroups ps options.LearningRate, options)

    /// The K-BFGS authors' K-FAC baseline (docs/kbfgs.md, "The K-FAC baseline"): sampled true Fisher, factor
    /// EMA 0.9 updated every step, inverses of A + √λI and G + √λI (no π) every 20 steps and
    /// at each of the first 20, EMA gradient momentum 0.9, L2 1e-5, no KL clipping.
    let authorsBaseline (learningRate: float) (lambda: float) (sampler: int -> Tensor -> Tensor) = {
        KfacOptions.Defaults with
            LearningRate = learningRate
            Damping = lambda
            DampingSplit = KfacDampingSplit.Plain
            Momentum = 0.9
            WeightDecay = 1e-5
            StatDecay = 0.9
            CovarianceInterval = 1
            InverseInterval = 20
            InverseWarmup = 20
            KlClip = None
            Fisher = KfacFisher.Sampled sampler
            MaxFactorSize = Int32.MaxValue
    }
