namespace GroupedNewton

open System.Collections.Generic

/// K-BFGS's step as a function of its setup and state (docs/kbfgs.md): the layers' directions,
/// the move, and the factor updates of KbfgsLayerUpdate.
module internal KbfgsStep =
    let step (setup: KbfgsSetup) (state: KbfgsState) (input: KbfgsInput) : KbfgsState * Parameters =
        let options = setup.Options
        let infos = setup.Selection.Layers
        let ps = input.Parameters
        let tr = input.Main
        let stats = infos |> Array.map (fun i -> KroneckerLayers.ofTrace tr.Layers.[i.Position])

        let acts =
            stats
            |> Array.map (fun kl -> Tensor.cast (KbfgsLayerUpdate.productDtype options kl.Activations) kl.Activations)

        let regGrad =
            ps.WithValues(ps.KeyArray |> Array.map (fun k -> Layerwise.regularised options.WeightDecay ps.[k] tr.Gradient.[k]))

        let prepared =
            infos
            |> Array.mapi (fun li i -> KbfgsLayerUpdate.prepare setup state li i stats.[li] acts.[li] regGrad)
        // fallback parameters: momentum SGD with the same momentum rule
        let fallback =
            Layerwise.fallbackMomentum setup.Selection.FallbackKeys (KbfgsLayerUpdate.accumulate options) state.Fallback (fun k ->
                regGrad.[k])
        // the new point W − α·P (also the trial point)
        let directionOf = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)

        infos
        |> Array.iteri (fun li i ->
            for k, part in KroneckerLayers.splitMatrix i.Layer ps prepared.[li].Direction do
                directionOf.[k] <- part)

        for kv in fallback do
            directionOf.[kv.Key] <- kv.Value

        let updated =
            Layerwise.applyStep setup.Display state.Step ps input.LearningRate (fun k -> directionOf.[k])

        let trial = if state.Step % options.UpdateEvery = 0 then Some(input.Trial updated) else None

        let layers =
            infos
            |> Array.mapi (fun li i ->
                let p = prepared.[li]
                let prev = state.Layers |> Option.map (fun ls -> ls.[li])

                match trial with
                | None ->
                    let counts, sBar, yBar = KbfgsLayerUpdate.carried i prev

                    { A = p.A; Ha = p.Ha; G = p.G; Momentum = p.Momentum; SBar = sBar; YBar = yBar; Counts = counts }
                | Some t ->
                    KbfgsLayerUpdate.updateFactors
                        setup
                        state
                        i
                        stats.[li]
                        (KroneckerLayers.ofTrace t.Layers.[i.Position])
                        acts.[li]
                        p
                        prev)

        {
            state with
                Step = state.Step + 1
                Layers = Some layers
                Fallback = fallback
                WarmA = (if state.Layers.IsNone then None else state.WarmA)
        },
        updated
