namespace GroupedNewton

open System
open System.Collections.Generic

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

    let schema = KfacStateSchema.schema selection initial
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

    override o.StateEntries() = StateSchema.save schema state |> StateSchema.withGroupRates rates o.Groups

    override o.RestoreState(source, entries) =
        let next = StateSchema.loadWithGroupRates schema rates o.Groups source entries state
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
    /// at each of the first 20, EMA gradient momentum 0.9, L2 1e-5, no KL clipping, no size
    /// limit on the factors. The settings not named here are KfacOptions.Defaults' (a test
    /// holds the whole list).
    let authorsBaseline (learningRate: float) (lambda: float) (sampler: int -> Tensor -> Tensor) = {
        KfacOptions.Defaults with
            LearningRate = learningRate
            Damping = lambda
            DampingSplit = KfacDampingSplit.Plain
            Fisher = KfacFisher.Sampled sampler
            MaxFactorSize = Int32.MaxValue
    }
