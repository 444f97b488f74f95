namespace GroupedNewton

open System
open System.Collections.Generic

type SgdOptions = {
    LearningRate: float
    Momentum: float
    Dampening: float
    Nesterov: bool
    WeightDecay: float
} with

    static member Defaults = { LearningRate = 0.01; Momentum = 0.0; Dampening = 0.0; Nesterov = false; WeightDecay = 0.0 }

    member o.Validate() =
        let bad name (v: float) = invalidArg name (sprintf "SGD: %s must be a finite non-negative number, got %g" name v)

        for name, v in
            [
                "LearningRate", o.LearningRate
                "Momentum", o.Momentum
                "Dampening", o.Dampening
                "WeightDecay", o.WeightDecay
            ] do
            if not (Double.IsFinite v) || v < 0.0 then
                bad name v

        if o.Nesterov && (o.Momentum <= 0.0 || o.Dampening <> 0.0) then
            invalidArg
                "Nesterov"
                (sprintf "SGD: Nesterov momentum needs Momentum > 0 and Dampening = 0 (got %g and %g)" o.Momentum o.Dampening)

type SgdRule(options: SgdOptions) =
    inherit UpdateRule()
    do options.Validate()
    member _.Options = options
    override _.Name = "sgd"
    override _.BufferNames = if options.Momentum <> 0.0 then [| "momentum" |] else [||]

    override _.Direction(ps, gradient, state) =
        let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)

        let dir =
            ps.Map(fun k theta ->
                let g = gradient.[k]
                let d = if options.WeightDecay <> 0.0 then Tensor.addScaled options.WeightDecay g theta else g

                if options.Momentum = 0.0 then
                    d
                else
                    let b =
                        match state.Buffers.TryGetValue k with
                        | true, bufs ->
                            let scaled = if options.Dampening = 0.0 then d else (1.0 - options.Dampening) * d
                            Tensor.addScaled options.Momentum scaled bufs.[0]
                        | _ -> d

                    buffers.[k] <- [| b |]
                    if options.Nesterov then Tensor.addScaled options.Momentum d b else b)

        dir, { Step = state.Step + 1; Buffers = buffers }

module Sgd =
    let create (options: SgdOptions) (ps: Parameters) =
        let rule = SgdRule options
        FirstOrderOptimizer(ps, OptimizerSupport.defaultGroups ps options.LearningRate, rule)

    let createWithGroups (options: SgdOptions) (ps: Parameters) (groups: ParamGroup[]) = FirstOrderOptimizer(ps, groups, SgdRule options)
