namespace GroupedNewton

open System

/// GroupedNewton (Wolinski, arXiv 2312.03885; docs/groupednewton.md): a direction u from a
/// first-order rule at learning rate 1, and every CurvaturePeriod steps one learning rate per
/// subset from the derivatives of the loss according to the partition (ḡ, H̄, D̄) on a
/// curvature batch, by the cubic-regularised Newton step on the S-dimensional model. Each
/// step moves θ_s ← θ_s − Damping_s · η_s · u_s. The step itself is GroupedNewtonStep.step;
/// this object holds the current state and the history of the curvature updates.
type GroupedNewtonOptimizer
    (
        initial: Parameters,
        partition: Partition,
        options: GroupedNewtonOptions,
        updater: UpdateRule,
        curvature: unit -> (Parameters -> Tensor)
    ) =
    inherit Optimizer(initial, Array.init partition.Count (fun s -> ParamGroup(partition.Names.[s], partition.Subset s, 0.0)))
    do options.Validate()
    let S = partition.Count
    let mutable state = GroupedNewtonState.Initial S options
    let history = ResizeArray<CurvatureUpdate>()
    let schema = GroupedNewtonStateSchema.schema initial updater S
    let summaryOptions = { ThirdOrder = options.Cubic && not options.SecondOrderOnly; DiagonalOnly = options.DiagonalOnly }

    member _.Partition = partition
    member _.Options = options
    /// The whole state (step count, rates, averages, the direction's buffers).
    member _.State = state
    /// η applied since the last curvature update (per subset, in partition order).
    member _.Rates = Array.copy state.Applied
    /// Damping per subset (ReduceDampingOnPlateau changes it).
    member _.Damping = Array.copy state.Damping

    member _.SetDamping(s: int, v: float) =
        if not (Double.IsFinite v) || v < 0.0 then
            invalidArg "v" (sprintf "damping must be non-negative, got %g" v)

        state <- { state with Damping = Array.init S (fun i -> if i = s then v else state.Damping.[i]) }

    member _.LambdaInt
        with get () = state.LambdaInt
        and set v =
            if not (Double.IsFinite v) || v < 0.0 then
                invalidArg "value" (sprintf "λ_int must be non-negative, got %g" v)

            state <- { state with LambdaInt = v }

    /// Every curvature update so far, oldest first.
    member _.History = history.ToArray()

    override _.Name = "grouped-newton"
    override _.StepCount = state.Step

    override o.Step(closure) =
        let ps = o.Parameters
        let loss, gradient = OptimizerSupport.lossAndGradient "grouped-newton" state.Step closure ps

        let summarise u =
            let batch = curvature ()
            // data-parallel hook: ḡ, H̄, D̄ summed over the ranks; a failure on any rank fails on all
            let local =
                try
                    Ok(Summary.computeWith summaryOptions batch ps partition u)
                with :? OptimizationException as e ->
                    Error e

            // the loss on the same batch elsewhere (the adaptive variant's check), summed likewise
            let lossAt (p: Parameters) =
                let l = Tensor.toScalar (batch p)
                let sum = [| l |]
                Distributed.allReduceSum sum
                sum.[0]

            match
                Distributed.reduceSummary
                    S
                    (match local with
                     | Ok r -> Some r
                     | Error _ -> None),
                local
            with
            | Some r, _ -> r, lossAt
            | None, Error e -> raise e
            | None, Ok _ -> raise (OptimizationException "grouped-newton: the curvature summary failed on another rank")

        let next, out =
            GroupedNewtonStep.step options partition updater state {
                Parameters = ps
                Loss = loss
                Gradient = gradient
                Summarise = summarise
            }

        if out.Moved then
            for s in 0 .. S - 1 do
                o.Groups.[s].LearningRate <- max 0.0 (next.Damping.[s] * next.Applied.[s])

            o.Commit out.Parameters

        state <- next
        out.Update |> Option.iter history.Add

        for w in out.Warnings do
            o.Warn w

        loss

    override _.StateEntries() = StateSchema.save schema state

    override o.RestoreState(source, entries) =
        state <- StateSchema.load schema { Source = source; Entries = entries } state
        // the groups show the restored rates, as after the step that wrote the state
        for s in 0 .. S - 1 do
            o.Groups.[s].LearningRate <- max 0.0 (state.Damping.[s] * state.Applied.[s])

/// Builds GroupedNewton optimizers.
module GroupedNewtonOptimizer =
    /// A GroupedNewton optimizer with the SGD-momentum updater of the paper (lr 1,
    /// momentum `momentum` in [0, 1), no dampening). `curvature ()` returns the loss closure
    /// of the next curvature batch (the reference cycles an unshuffled loader).
    let create
        (options: GroupedNewtonOptions)
        (momentum: float)
        (partition: Partition)
        (curvature: unit -> (Parameters -> Tensor))
        (ps: Parameters)
        =
        options.Validate()
        GroupedNewtonOptions.ValidateMomentum momentum

        GroupedNewtonOptimizer(
            ps,
            partition,
            options,
            SgdRule { SgdOptions.Defaults with LearningRate = 1.0; Momentum = momentum },
            curvature
        )

    /// A GroupedNewton optimizer with any first-order rule as the direction.
    let createWith
        (options: GroupedNewtonOptions)
        (updater: UpdateRule)
        (partition: Partition)
        (curvature: unit -> (Parameters -> Tensor))
        (ps: Parameters)
        =
        GroupedNewtonOptimizer(ps, partition, options, updater, curvature)

/// Per-subset rates read off one summary, without running the optimizer.
module RateSuggestion =
    /// The per-subset η that one summary suggests: the cubic-regularised step with
    /// d_s = |D̄_sss|^{1/3} and weight λ_int (the η GroupedNewton multiplies by its damping), or
    /// η = H̄⁻¹ḡ when the summary has no third-order diagonal or λ_int is 0. The η are signed: a
    /// direction along which the loss is locally concave gets a negative one.
    let solve (lambdaInt: float) (summary: PartitionSummary) : CubicSolution =
        let d = GroupedNewtonRates.cubeRoots summary
        let d = if d.Length = summary.Gradient.Length then d else Array.zeroCreate summary.Gradient.Length
        CubicRegularization.solve summary.Hessian summary.Gradient d lambdaInt

    /// Learning rates for the direction the summary was taken along (for the default direction,
    /// the gradient: rates for plain gradient descent, θ_s ← θ_s − rate_s·∇_s L, not for a
    /// method with momentum, whose steps are longer). `solve`'s η, with negative ones clipped
    /// to 0 unless `keepNegative` (a learning rate cannot be negative).
    let learningRates (keepNegative: bool) (lambdaInt: float) (summary: PartitionSummary) : CubicSolution =
        let sol = solve lambdaInt summary
        if keepNegative then sol else { sol with Eta = sol.Eta |> Array.map (fun v -> max 0.0 v) }
