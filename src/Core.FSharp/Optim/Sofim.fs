namespace GroupedNewton

open System
open System.Collections.Generic
open System.Numerics
open GroupedNewton.Backends.Managed

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
        if not (Double.IsFinite o.LearningRate) || o.LearningRate <= 0.0 then
            invalidArg "LearningRate" (sprintf "SOFIM: LearningRate must be positive, got %g" o.LearningRate)

        if not (o.Beta >= 0.0 && o.Beta < 1.0) then
            invalidArg "Beta" (sprintf "SOFIM: Beta must be in [0, 1), got %g" o.Beta)

        if not (Double.IsFinite o.Rho) || o.Rho <= 0.0 then
            invalidArg "Rho" (sprintf "SOFIM: Rho must be positive, got %g" o.Rho)

        if not (Double.IsFinite o.WeightDecay) || o.WeightDecay < 0.0 then
            invalidArg "WeightDecay" (sprintf "SOFIM: WeightDecay must be non-negative, got %g" o.WeightDecay)

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

    /// The float32 storage of a managed tensor holding exactly its elements.
    let managed32 (x: Tensor) =
        match x.Raw with
        | :? CpuTensor as c ->
            match c.Storage with
            | F32 a when a.Length = x.Numel -> Some a
            | _ -> None
        | _ -> None

    let wrap32 (like: Tensor) (a: float32[]) = Tensor(Autodiff.Const(CpuTensor(like.Raw.Backend, like.Shape, F32 a) :> RawTensor))

    /// The momentum direction for float32 tensors of the managed backend in two fused SIMD
    /// passes per tensor instead of six (the step's cost must stay close to SGD-momentum's).
    /// Every element goes through the float32 operations of the tensor route in the same
    /// order (coupled decay θ·wd + g, g·(1 − β) + b·β, m·(1/bc), m̂·(1/(ρ + ‖m̂‖²))); only
    /// the float64 sum ‖m̂‖² is accumulated in SIMD lanes instead of index order. None when
    /// a tensor is not such a tensor or the variant is not the momentum direction.
    let fastMomentum (ps: Parameters) (gradient: Parameters) (state: RuleState) (bc: float) (groupOf: int -> string) =
        let keys = ps.KeyArray

        let arrays =
            keys
            |> Array.map (fun k ->
                let prev =
                    match state.Buffers.TryGetValue k with
                    | true, b -> managed32 b.[0] |> Option.map Some
                    | _ -> Some None

                match managed32 ps.[k], managed32 gradient.[k], prev with
                | Some th, Some g, Some p -> Some(th, g, p)
                | _ -> None)

        if options.Direction <> SofimDirection.Momentum || arrays |> Array.exists Option.isNone then
            None
        else
            let beta32 = float32 options.Beta
            let omb32 = float32 (1.0 - options.Beta)
            let wd32 = float32 options.WeightDecay
            let inv32 = float32 (1.0 / bc)
            let ms = Array.zeroCreate<float32[]> keys.Length
            let norm2 = Dictionary<string, float>()
            let w = Vector<float32>.Count

            let vBeta, vOmb, vWd, vInv =
                Vector<float32>(beta32), Vector<float32>(omb32), Vector<float32>(wd32), Vector<float32>(inv32)

            let decay = options.WeightDecay <> 0.0

            for i in 0 .. keys.Length - 1 do
                let th, g, prev = arrays.[i].Value
                let hasPrev = prev.IsSome
                let b = if hasPrev then prev.Value else Array.empty<float32>
                let n = g.Length
                let m = GC.AllocateUninitializedArray<float32> n
                let mutable acc0 = Vector<float>.Zero
                let mutable acc1 = Vector<float>.Zero
                let mutable j = 0

                while j + w <= n do
                    let gv = if decay then Vector<float32>(th, j) * vWd + Vector<float32>(g, j) else Vector<float32>(g, j)
                    let mv = if hasPrev then gv * vOmb + Vector<float32>(b, j) * vBeta else gv * vOmb
                    mv.CopyTo(m, j)
                    let mutable lo = Vector<float>.Zero
                    let mutable hi = Vector<float>.Zero
                    Vector.Widen(mv * vInv, &lo, &hi)
                    acc0 <- acc0 + lo * lo
                    acc1 <- acc1 + hi * hi
                    j <- j + w

                let mutable acc = Vector.Sum(acc0 + acc1)

                while j < n do
                    let gj = if decay then th.[j] * wd32 + g.[j] else g.[j]
                    let mj = if hasPrev then gj * omb32 + b.[j] * beta32 else gj * omb32
                    m.[j] <- mj
                    let h = float (mj * inv32)
                    acc <- acc + h * h
                    j <- j + 1

                ms.[i] <- m
                let grp = groupOf i

                norm2.[grp] <-
                    (match norm2.TryGetValue grp with
                     | true, x -> x
                     | _ -> 0.0)
                    + acc

            for kv in norm2 do
                if not (Double.IsFinite kv.Value) then
                    raise (
                        OptimizationException(sprintf "SOFIM step %d: ‖m̂‖² is %g (the gradient is not finite)" (state.Step + 1) kv.Value)
                    )

            let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)

            let dir =
                Array.init keys.Length (fun i ->
                    let m = ms.[i]
                    let scale = float32 (1.0 / (options.Rho + norm2.[groupOf i]))
                    let d = GC.AllocateUninitializedArray<float32> m.Length
                    let vScale = Vector<float32>(scale)
                    let mutable j = 0

                    while j + w <= m.Length do
                        ((Vector<float32>(m, j) * vInv) * vScale).CopyTo(d, j)
                        j <- j + w

                    while j < m.Length do
                        d.[j] <- (m.[j] * inv32) * scale
                        j <- j + 1

                    buffers.[keys.[i]] <- [| wrap32 ps.ValueArray.[i] m |]
                    wrap32 ps.ValueArray.[i] d)

            Some(ps.WithValues dir, { Step = state.Step + 1; Buffers = buffers })

    /// The groups sharing one F, by parameter position.
    let groupOfKeys (keys: ParameterKey[]) =
        match options.Scope with
        | SofimScope.Model -> fun (_: int) -> ""
        | SofimScope.Layer -> fun i -> layerOf keys.[i].Name
        | SofimScope.Tensor -> fun i -> keys.[i].Name

    let biasCorrection (state: RuleState) = if options.BiasCorrection then 1.0 - Math.Pow(options.Beta, float (state.Step + 1)) else 1.0
    member _.Options = options
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
