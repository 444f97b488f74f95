namespace GroupedNewton

open System
open System.Collections.Generic

type AdamOptions = {
    LearningRate: float
    Beta1: float
    Beta2: float
    Epsilon: float
    WeightDecay: float
    SecondMomentOfMomentum: bool
} with

    static member Defaults = {
        LearningRate = 1e-3
        Beta1 = 0.9
        Beta2 = 0.999
        Epsilon = 1e-8
        WeightDecay = 0.0
        SecondMomentOfMomentum = false
    }

    static member KbfgsAuthors = { AdamOptions.Defaults with Beta2 = 0.9; Epsilon = 1e-4; SecondMomentOfMomentum = true }

    member o.Validate() =
        if not (Double.IsFinite o.LearningRate) || o.LearningRate < 0.0 then
            invalidArg "LearningRate" (sprintf "Adam: LearningRate must be non-negative, got %g" o.LearningRate)

        OptionChecks.unitInterval "Adam" "Beta1" o.Beta1
        OptionChecks.unitInterval "Adam" "Beta2" o.Beta2

        if not (o.Epsilon > 0.0) then
            invalidArg "Epsilon" (sprintf "Adam: Epsilon must be positive, got %g" o.Epsilon)

        OptionChecks.nonNegative "Adam" "WeightDecay" o.WeightDecay

type AdamRule(options: AdamOptions) =
    inherit UpdateRule()
    do options.Validate()
    member _.Options = options
    override _.Name = if options.SecondMomentOfMomentum then "adam-kbfgs" else "adam"
    override _.BufferNames = [| "m"; "v" |]

    override _.Direction(ps, gradient, state) =
        let t = state.Step + 1
        let c1 = 1.0 - Math.Pow(options.Beta1, float t)
        let c2 = 1.0 - Math.Pow(options.Beta2, float t)
        let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)

        let dir =
            ps.Map(fun k theta ->
                let g = gradient.[k]
                let g = if options.WeightDecay <> 0.0 then Tensor.addScaled options.WeightDecay g theta else g

                let m0, v0 =
                    match state.Buffers.TryGetValue k with
                    | true, b -> b.[0], b.[1]
                    | _ -> Tensor.zerosLike g, Tensor.zerosLike g

                let m = Tensor.addScaled (1.0 - options.Beta1) (options.Beta1 * m0) g
                let sq = if options.SecondMomentOfMomentum then m else g
                let v = Tensor.addScaled (1.0 - options.Beta2) (options.Beta2 * v0) (sq * sq)
                buffers.[k] <- [| m; v |]
                Tensor.detach ((m / c1) / (Tensor.sqrt (v / c2) + options.Epsilon)))

        dir, { Step = t; Buffers = buffers }

module Adam =
    let create (options: AdamOptions) (ps: Parameters) =
        let rule = AdamRule options
        FirstOrderOptimizer(ps, OptimizerSupport.defaultGroups ps options.LearningRate, rule)

    let createWithGroups (options: AdamOptions) (ps: Parameters) (groups: ParamGroup[]) = FirstOrderOptimizer(ps, groups, AdamRule options)
