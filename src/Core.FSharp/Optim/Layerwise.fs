namespace GroupedNewton

open System
open System.Collections.Generic

/// A layer a Kronecker-factored optimizer preconditions: its position among the model's
/// trainable layers, its weight's name and its factor sizes (d_a with the bias column).
type internal PreconditionedLayer = { Layer: Layer; Position: int; Name: string; Dg: int; Da: int }

/// Which layers a layer-wise optimizer preconditions and which parameters fall back to the
/// momentum SGD step, with the notes that explain each fallback.
type internal LayerSelection = {
    Layers: PreconditionedLayer[]
    /// Parameters outside the preconditioned layers, in parameter order.
    FallbackKeys: ParameterKey[]
    /// One line per fallback, for the optimizer's Warning at its first step.
    Notes: string list
}

/// What K-FAC and K-BFGS share: the layer selection, the traced passes with their failures
/// translated, and the momentum SGD step of the parameters they do not precondition.
module internal Layerwise =
    /// A layer as the messages name it: index, spec and weight name.
    let describe (l: Layer) = sprintf "layer %d (%O) '%s'" l.Index l.Spec l.Weight.Value.Name

    /// Raises OptimizationException for a failed step of optimizer `display`.
    let fail (display: string) (step: int) (message: string) : 'a =
        raise (OptimizationException(sprintf "%s step %d: %s; parameters and optimizer state are unchanged" display step message))

    /// The Linear and Conv2d layers of `model` whose parameters all lie in `ps` and whose
    /// factors are at most `maxFactorSize`; every other parameter of `ps` falls back.
    let select (display: string) (model: Model) (ps: Parameters) (maxFactorSize: int) : LayerSelection =
        let trainable = Model.trainableLayers model
        let notes = ResizeArray<string>()
        let layers = ResizeArray<PreconditionedLayer>()
        let inSet (l: Layer) = ps.Contains l.Weight.Value && (l.Bias.IsNone || ps.Contains l.Bias.Value)

        trainable
        |> Array.iteri (fun pos l ->
            if inSet l then
                let w = ps.[l.Weight.Value]
                let dg = w.Shape.[0]
                let da = Shape.numel w.Shape / dg + (if l.Bias.IsSome then 1 else 0)

                if not (KroneckerLayers.supports l) then
                    notes.Add(sprintf "%s: %s has no Kronecker factors; its parameters take the momentum SGD step" display (describe l))
                elif max da dg > maxFactorSize then
                    notes.Add(
                        sprintf
                            "%s: %s has factors %d×%d and %d×%d, above MaxFactorSize %d; its parameters take the momentum SGD step"
                            display
                            (describe l)
                            da
                            da
                            dg
                            dg
                            maxFactorSize
                    )
                else
                    layers.Add { Layer = l; Position = pos; Name = l.Weight.Value.Name; Dg = dg; Da = da })

        let covered = HashSet<ParameterKey>(HashIdentity.Reference)

        for i in layers do
            covered.Add i.Layer.Weight.Value |> ignore
            i.Layer.Bias |> Option.iter (covered.Add >> ignore)

        let fallbackKeys = ps.KeyArray |> Array.filter (fun k -> not (covered.Contains k))

        for k in fallbackKeys do
            if not (trainable |> Array.exists (fun l -> l.Weight = Some k || l.Bias = Some k)) then
                notes.Add(
                    sprintf
                        "%s: parameter '%s' belongs to no Linear or Conv2d layer of model '%s'; it takes the momentum SGD step"
                        display
                        k.Name
                        model.Name
                )

        { Layers = layers.ToArray(); FallbackKeys = fallbackKeys; Notes = List.ofSeq notes }

    /// Trace.run with its failures raised as OptimizationException naming the pass (`what`);
    /// `checkLoss` also refuses a non-finite loss, `checkGradient` a non-finite parameter gradient.
    let trace
        (display: string)
        (step: int)
        (what: string)
        (checkLoss: bool)
        (checkGradient: bool)
        (model: Model)
        (ps: Parameters)
        (input: Tensor)
        (loss: Tensor -> Tensor)
        =
        let tr =
            try
                Distributed.gatherTrace (Trace.run model ps input loss) // data-parallel hook
            with
            | :? TensorException as e -> fail display step (sprintf "the %s pass failed: %s" what e.Message)
            | :? ArgumentException as e -> fail display step (sprintf "the %s pass failed: %s" what e.Message)

        if checkLoss && not (Double.IsFinite tr.Loss) then
            fail display step (sprintf "the loss of the %s pass is %g" what tr.Loss)

        if checkGradient then
            for k in ps.KeyArray do
                if not (OptimizerSupport.allFinite tr.Gradient.[k]) then
                    fail display step (sprintf "the gradient of '%s' is not finite" k.Name)

        tr

    /// g + τ·θ (τ = 0: g itself).
    let regularised (weightDecay: float) (theta: Tensor) (g: Tensor) = if weightDecay = 0.0 then g else Tensor.addScaled weightDecay g theta

    /// The gradient moving average M ← β·M + (1 − β)·g (the first step: (1 − β)·g; β = 0: g).
    let averageMomentum (beta: float) (previous: Tensor option) (g: Tensor) =
        match previous with
        | Some prev when beta <> 0.0 -> Tensor.addScaled (1.0 - beta) (beta * prev) g
        | _ when beta <> 0.0 -> (1.0 - beta) * g
        | _ -> g

    /// The fallback momentum of each fallback parameter after one step, from the regularised
    /// gradients and the previous momentum (`accumulate previous g`).
    let fallbackMomentum
        (keys: ParameterKey[])
        (accumulate: Tensor option -> Tensor -> Tensor)
        (previous: IReadOnlyDictionary<ParameterKey, Tensor>)
        (regGrad: ParameterKey -> Tensor)
        =
        let next = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)

        for k in keys do
            let prev =
                match previous.TryGetValue k with
                | true, v -> Some v
                | _ -> None

            next.[k] <- Tensor.detach (accumulate prev (regGrad k))

        next :> IReadOnlyDictionary<_, _>

    /// The saved entries "fallback.<parameter>.momentum" of the fallback parameters, checked
    /// against the parameters' shapes and dtypes. `required` refuses a file that lacks one.
    let fallbackField
        (keys: ParameterKey[])
        (initial: Parameters)
        (required: 'S -> bool)
        (get: 'S -> IReadOnlyDictionary<ParameterKey, Tensor>)
        (set: IReadOnlyDictionary<ParameterKey, Tensor> -> 'S -> 'S)
        : StateField<'S> =
        let key (k: ParameterKey) = sprintf "fallback.%s.momentum" k.Name

        {
            Save =
                fun s ->
                    let m = get s

                    [
                        for k in keys do
                            match m.TryGetValue k with
                            | true, v -> yield key k, StoreValue.Tensor v
                            | _ -> ()
                    ]
            Load =
                fun src s ->
                    let next = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
                    let mustHave = required s

                    for k in keys do
                        let p = initial.[k]
                        let codec = StateSchema.tensorCodec p.Shape (Some p.Dtype)

                        if mustHave || src.Entries.ContainsKey(key k) then
                            next.[k] <- codec.Read src (key k)

                    set next s
        }

    /// The parameters after a step: θ − lr·d for each parameter (lr = 0 leaves it as it is),
    /// refused when an entry is not finite.
    let applyStep (display: string) (step: int) (ps: Parameters) (lrOf: ParameterKey -> float) (direction: ParameterKey -> Tensor) =
        let next =
            ps.Map(fun k v ->
                let lr = lrOf k
                if lr = 0.0 then v else Tensor.detach (Tensor.addScaled (-lr) v (Tensor.cast v.Dtype (direction k))))

        for k in next.KeyArray do
            if not (OptimizerSupport.allFinite next.[k]) then
                fail display step (sprintf "the step of '%s' is not finite" k.Name)

        next
