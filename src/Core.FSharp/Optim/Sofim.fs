namespace GroupedNewton

open System
open System.Collections.Generic

/// Which vector the regularised Fisher inverse is applied to.
[<RequireQualifiedAccess>]
type SofimDirection =
    /// F⁻¹m̂ with F = m̂m̂ᵀ + ρI (the SOFIM algorithm): exactly m̂ / (ρ + ‖m̂‖²).
    | Momentum
    /// F⁻¹g for the current gradient (an ablation): (g − c m̂)/ρ + c m̂/(ρ + ‖m̂‖²), c = m̂ᵀg/‖m̂‖².
    | Gradient

/// Over which parameters F is formed.
[<RequireQualifiedAccess>]
type SofimScope =
    /// One F for the whole model (the paper's O(d) statement).
    | Model
    /// One F per layer (tensors sharing the name prefix before the last '.').
    | Layer
    /// One F per tensor.
    | Tensor

/// SOFIM hyperparameters.
type SofimOptions = {
    /// η; the effective step is η/(ρ + ‖m̂‖²), not comparable to an SGD learning rate.
    LearningRate: float
    /// EMA decay of the gradient moment.
    Beta: float
    /// ρ > 0, the Tikhonov regularisation of the Fisher matrix (also caps the step at η/(2√ρ)).
    Rho: float
    BiasCorrection: bool
    Direction: SofimDirection
    Scope: SofimScope
    /// Coupled L2: λ·w added to the gradient before the moment.
    WeightDecay: float
} with

    static member Defaults = {
        LearningRate = 0.1
        Beta = 0.9
        Rho = 0.5
        BiasCorrection = true
        Direction = SofimDirection.Momentum
        Scope = SofimScope.Model
        WeightDecay = 0.0
    }

    member o.Validate() =
        OptionChecks.positive "SOFIM" "LearningRate" o.LearningRate
        OptionChecks.unitInterval "SOFIM" "Beta" o.Beta
        OptionChecks.positive "SOFIM" "Rho" o.Rho
        OptionChecks.nonNegative "SOFIM" "WeightDecay" o.WeightDecay

/// SOFIM (arXiv 2403.02833): m ← βm + (1−β)g, m̂ = m/(1 − βᵗ), direction F⁻¹m̂ with
/// F = m̂m̂ᵀ + ρI, never formed. By Sherman–Morrison F⁻¹m̂ = m̂/(ρ + ‖m̂‖²) exactly; this
/// closed form is what is computed (the textbook difference m̂/ρ − m̂‖m̂‖²/(ρ² + ρ‖m̂‖²)
/// cancels catastrophically in float32). Norms and inner products accumulate in float64.
type SofimRule(options: SofimOptions) =
    inherit UpdateRule()
    do options.Validate()

    let layerOf (name: string) =
        match name.LastIndexOf '.' with
        | -1 -> name
        | i -> name.Substring(0, i)

    let sum64 (t: Tensor) = Tensor.toArray t |> Array.sum

    let mutable fusedSteps = 0

    /// The momentum direction through the backends' fused kernels (Backend.FusedMoment, then
    /// Backend.MulScalar2): on the managed backend two SIMD passes per float32 tensor instead
    /// of six (the step's cost must stay close to SGD-momentum's). Every element goes through
    /// the float32 operations of the tensor route in the same order (coupled decay θ·wd + g,
    /// g·(1 − β) + b·β, m·(1/bc), m̂·(1/(ρ + ‖m̂‖²))); only the float64 sum ‖m̂‖² is
    /// accumulated in SIMD lanes instead of index order. None when a tensor's backend has no
    /// fused kernel for it or the variant is not the momentum direction.
    let fastMomentum (ps: Parameters) (gradient: Parameters) (state: RuleState) (bc: float) (groupOf: int -> string) =
        if options.Direction <> SofimDirection.Momentum then
            None
        else
            let keys = ps.KeyArray
            let inv = 1.0 / bc

            let moments =
                keys
                |> Array.map (fun k ->
                    let theta = ps.[k].Raw

                    let prev =
                        match state.Buffers.TryGetValue k with
                        | true, b -> Some b.[0].Raw
                        | _ -> None

                    theta.Backend.FusedMoment(theta, gradient.[k].Raw, prev, options.WeightDecay, options.Beta, inv))

            if moments |> Array.exists Option.isNone then
                None
            else
                let moments = moments |> Array.map Option.get
                let norm2 = Dictionary<string, float>()

                moments
                |> Array.iteri (fun i (_, acc) ->
                    let grp = groupOf i

                    norm2.[grp] <-
                        (match norm2.TryGetValue grp with
                         | true, x -> x
                         | _ -> 0.0)
                        + acc)

                for kv in norm2 do
                    if not (Double.IsFinite kv.Value) then
                        raise (
                            OptimizationException(
                                sprintf "SOFIM step %d: ‖m̂‖² is %g (the gradient is not finite)" (state.Step + 1) kv.Value
                            )
                        )

                let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)

                let dir =
                    Array.init keys.Length (fun i ->
                        let m, _ = moments.[i]
                        let scale = 1.0 / (options.Rho + norm2.[groupOf i])
                        buffers.[keys.[i]] <- [| Tensor(Autodiff.Const m) |]
                        Tensor(Autodiff.Const(m.Backend.MulScalar2(m, inv, scale))))

                fusedSteps <- fusedSteps + 1
                Some(ps.WithValues dir, { Step = state.Step + 1; Buffers = buffers })

    /// The groups sharing one F, by parameter position.
    let groupOfKeys (keys: ParameterKey[]) =
        match options.Scope with
        | SofimScope.Model -> fun (_: int) -> ""
        | SofimScope.Layer -> fun i -> layerOf keys.[i].Name
        | SofimScope.Tensor -> fun i -> keys.[i].Name

    let biasCorrection (state: RuleState) = if options.BiasCorrection then 1.0 - Math.Pow(options.Beta, float (state.Step + 1)) else 1.0
    member _.Options = options

    /// How many Direction calls took the backends' fused kernels (the rest took TensorDirection).
    member internal _.FusedSteps = fusedSteps

    override _.Name = "sofim"
    override _.BufferNames = [| "m" |]

    override r.Direction(ps, gradient, state) =
        match fastMomentum ps gradient state (biasCorrection state) (groupOfKeys ps.KeyArray) with
        | Some result -> result
        | None -> r.TensorDirection(ps, gradient, state)

    /// The direction through tensor operations (any backend, dtype and variant).
    member internal _.TensorDirection(ps: Parameters, gradient: Parameters, state: RuleState) =
        let t = state.Step + 1
        let bc = biasCorrection state
        let keys = ps.KeyArray

        let g =
            keys
            |> Array.map (fun k ->
                let gk = gradient.[k]
                if options.WeightDecay <> 0.0 then Tensor.addScaled options.WeightDecay gk ps.[k] else gk)

        let m =
            Array.map2
                (fun (k: ParameterKey) (gk: Tensor) ->
                    match state.Buffers.TryGetValue k with
                    | true, b -> Tensor.addScaled (1.0 - options.Beta) (options.Beta * b.[0]) gk
                    | _ -> (1.0 - options.Beta) * gk)
                keys
                g

        let mhat = m |> Array.map (fun v -> v / bc)
        let groupOf = groupOfKeys keys
        let norm2 = Dictionary<string, float>()
        let dotMg = Dictionary<string, float>()

        for i in 0 .. keys.Length - 1 do
            let grp = groupOf i

            let add (d: Dictionary<string, float>) v =
                d.[grp] <-
                    (match d.TryGetValue grp with
                     | true, x -> x
                     | _ -> 0.0)
                    + v

            let m64 = Tensor.cast Dtype.Float64 mhat.[i]
            add norm2 (sum64 (m64 * m64))

            if options.Direction = SofimDirection.Gradient then
                add dotMg (sum64 (m64 * Tensor.cast Dtype.Float64 g.[i]))

        for kv in norm2 do
            if not (Double.IsFinite kv.Value) then
                raise (OptimizationException(sprintf "SOFIM step %d: ‖m̂‖² is %g (the gradient is not finite)" t kv.Value))

        let dir =
            Array.init keys.Length (fun i ->
                let s2 = norm2.[groupOf i]

                match options.Direction with
                | SofimDirection.Momentum -> mhat.[i] / (options.Rho + s2)
                | SofimDirection.Gradient ->
                    let c = if s2 = 0.0 then 0.0 else dotMg.[groupOf i] / s2
                    // (g − c m̂)/ρ + c m̂/(ρ + ‖m̂‖²): no cancelling difference of large terms
                    Tensor.addScaled (c / (options.Rho + s2)) (Tensor.addScaled -c g.[i] mhat.[i] / options.Rho) mhat.[i])

        let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)
        Array.iteri2 (fun i (k: ParameterKey) (mk: Tensor) -> buffers.[k] <- [| Tensor.detach mk |]) keys m
        ps.WithValues(dir |> Array.map Tensor.detach), { Step = t; Buffers = buffers }

module Sofim =
    /// A SOFIM optimizer over all parameters in one group (learning rate η).
    let create (options: SofimOptions) (ps: Parameters) =
        let rule = SofimRule options
        FirstOrderOptimizer(ps, OptimizerSupport.defaultGroups ps options.LearningRate, rule)
