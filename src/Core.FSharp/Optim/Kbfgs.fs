namespace GroupedNewton

open System
open System.Collections.Generic

/// K-BFGS and K-BFGS(L) (Goldfarb, Ren, Bahamou 2020; Ren, Bahamou, Goldfarb 2021;
/// docs/kbfgs.md) for the Linear and Conv2d layers of a model: per layer the direction
/// H_g·Ĝ·H_a with H_a ≈ (A + √λI)⁻¹ kept by BFGS updates with exact Hessian-action pairs and
/// H_g ≈ (G + √λI)⁻¹ by damped BFGS (or L-BFGS) updates from secant pairs of a second
/// forward/backward pass at the new point on the same batch. The factors and their updates are
/// float64; the wide products go through the tensor GEMM in the model's dtype or in float64
/// (FactorProducts). Stepped with StepOn; a step that fails changes nothing. The step itself
/// is KbfgsStep.step; this object holds the state.
type KbfgsOptimizer internal (model: Model, options: KbfgsOptions, limited: bool) =
    inherit Optimizer(model.Parameters, OptimizerSupport.defaultGroups model.Parameters options.LearningRate)
    do options.Validate()
    let display = if limited then "K-BFGS(L)" else "K-BFGS"

    let setup = {
        Options = options
        Limited = limited
        Display = display
        Selection = Layerwise.select display model model.Parameters options.MaxFactorSize
    }

    let infos = setup.Selection.Layers
    let trainable = Model.trainableLayers model
    let schema = KbfgsStateSchema.schema setup model.Parameters

    let rates =
        StateSchema.groupRates (OptimizerSupport.defaultGroups model.Parameters options.LearningRate)

    let mutable state = {
        Step = 0
        Layers = None
        Fallback = Dictionary<ParameterKey, Tensor>(HashIdentity.Reference)
        WarmA = None
        WarmBatches = 0
    }

    let mutable warned = false

    let checkModel (m: Model) =
        let theirs = Model.trainableLayers m

        let same =
            theirs.Length = trainable.Length
            && Array.forall2
                (fun (a: Layer) (b: Layer) ->
                    a.Spec = b.Spec
                    && Option.map2 (fun x y -> obj.ReferenceEquals(x, y)) a.Weight b.Weight = Some true
                    && (match a.Bias, b.Bias with
                        | Some x, Some y -> obj.ReferenceEquals(x, y)
                        | None, None -> true
                        | _ -> false))
                theirs
                trainable

        if not same then
            invalidArg
                "model"
                (sprintf
                    "%s: model '%s' is not the model this optimizer was created for ('%s'): its layers or parameter keys differ"
                    display
                    m.Name
                    model.Name)

    /// The forward pass only, returning each trainable layer's input.
    let layerInputs (m: Model) (ps: Parameters) (x: Tensor) =
        m.CheckInput x
        let inputs = ResizeArray<Tensor>()
        let mutable h = x

        for l in m.Layers do
            if l.Weight.IsSome then
                inputs.Add h

            h <- Layer.forward l ps h

        inputs.ToArray()

    /// Whether the layers' factors exist (after the first step or a restored state).
    member _.Initialised = state.Layers.IsSome

    /// The weights of the layers K-BFGS preconditions, in model order.
    member _.PreconditionedLayers = infos |> Array.map (fun i -> i.Name)

    /// The parameters that take the momentum SGD step instead.
    member _.FallbackParameters = setup.Selection.FallbackKeys |> Array.map (fun k -> k.Name)

    /// Per preconditioned layer, the updates done, skipped and damped so far.
    member _.LayerCounts =
        match state.Layers with
        | Some ls -> ls |> Array.map (fun l -> l.Counts)
        | None -> infos |> Array.map KbfgsLayerUpdate.zeroCounts

    /// The warm start of the moving-average A (docs/kbfgs.md, "The A side"): one pass over the
    /// batches (for example a loader's epoch mapped to its inputs) with no parameter update,
    /// A = the running mean of the batches' Ā. Only before the first step, for the layers that
    /// keep a moving-average A; the first step then uses this A undecayed.
    member o.WarmStart(m: Model, batches: seq<Tensor>) =
        if state.Layers.IsSome then
            invalidOp (sprintf "%s: the warm start must come before the first step (the factors exist, step %d)" display state.Step)

        let keepsA (i: PreconditionedLayer) = KbfgsLayerUpdate.aStatisticOf options i = KbfgsAStatistic.MovingAverage

        if not (infos |> Array.exists keepsA) then
            invalidOp (
                sprintf
                    "%s: the warm start averages the moving-average A, and no layer keeps one (AStatistic is %A)"
                    display
                    options.AStatistic
            )

        checkModel m
        let ps = o.Parameters
        let acc = infos |> Array.map (fun i -> Array2D.zeroCreate<float> i.Da i.Da)
        let mutable j = 0

        for x in batches do
            j <- j + 1
            let inputs = layerInputs m ps x

            for li in 0 .. infos.Length - 1 do
                let i = infos.[li]

                if keepsA i then
                    let rows = KroneckerLayers.activationRows i.Layer inputs.[i.Position]

                    let ab =
                        KbfgsAlgebra.batchCovariance (Tensor.cast (KbfgsLayerUpdate.productDtype options rows) rows) x.Shape.[0]

                    let w = 1.0 / float j
                    acc.[li] <- Bfgs.blend (1.0 - w) acc.[li] w ab

        if j = 0 then
            invalidArg "batches" (sprintf "%s: the warm start needs at least one batch" display)

        for a in acc do
            for r in 0 .. Array2D.length1 a - 1 do
                for c in 0 .. Array2D.length2 a - 1 do
                    if not (Double.IsFinite a.[r, c]) then
                        invalidArg
                            "batches"
                            (sprintf "%s: the warm-start average of A is not finite (a batch holds NaN or infinity)" display)

        state <- { state with WarmA = Some acc; WarmBatches = j }

    override _.Name = if limited then "kbfgs-l" else "kbfgs"
    override _.NeedsModel = true
    override _.StepCount = state.Step

    override _.Step(_closure) =
        raise (
            OptimizationException(
                sprintf
                    "%s preconditions layer by layer and needs the model and the batch: step it with StepOn(model, input, loss), not Step(closure)"
                    display
            )
        )

    override o.StepOn(m, input, loss) =
        checkModel m

        if not warned then
            warned <- true

            for note in setup.Selection.Notes do
                o.Warn note

        let ps = o.Parameters
        let main = Layerwise.trace display state.Step "main" true true m ps input loss
        let trial at = Layerwise.trace display state.Step "trial" true false m at input loss

        let next, updated =
            KbfgsStep.step setup state { Parameters = ps; Main = main; Trial = trial; LearningRate = fun k -> o.GroupOf(k).LearningRate }

        o.Commit updated
        state <- next
        main.Loss

    override o.StateEntries() = StateSchema.save schema state |> StateSchema.withGroupRates rates o.Groups

    override o.RestoreState(source, entries) = state <- StateSchema.loadWithGroupRates schema rates o.Groups source entries state

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
