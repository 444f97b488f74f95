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
