namespace GroupedNewton

open System

/// GroupedNewton's step as a function of its options and state (docs/groupednewton.md).
module internal GroupedNewtonStep =
    /// θ_s − Damping_s·η_s·u_s with the applied rates (signed: without ClipNegativeRates a rate
    /// may be negative).
    let private move (partition: Partition) (state: GroupedNewtonState) (ps: Parameters) (u: Parameters) =
        OptimizerSupport.applyStep ps u (fun k -> let s = partition.SubsetOf k in state.Damping.[s] * state.Applied.[s])

    let private failed (state: GroupedNewtonState) (why: string) =
        raise (
            OptimizationException(
                sprintf
                    "GroupedNewton step %d: the curvature update failed: %s; parameters and optimizer state are unchanged"
                    state.Step
                    why
            )
        )

    /// The output of a curvature step that moves: the update as observed (the rates of the new
    /// state `st`, named) and the move with them.
    let private moved
        (partition: Partition)
        (state: GroupedNewtonState)
        (st: GroupedNewtonState)
        (ps: Parameters)
        (u: Parameters)
        (summary: PartitionSummary)
        (solution: CubicSolution option)
        (fallback: bool)
        (warnings: string list)
        =
        let names = partition.Names

        let update = {
            Step = state.Step
            Summary = summary
            Solution = solution
            Fallback = fallback
            Rates = Array.map2 (fun n v -> n, v) names st.Applied
            LearningRates = Array.init partition.Count (fun s -> names.[s], st.Damping.[s] * st.Applied.[s])
        }

        { Parameters = move partition st ps u; Moved = true; Update = Some update; Warnings = warnings }

    /// The summary of the next curvature batch along u with the loss on that batch, Error with
    /// why it failed (non-finite entry, failed passes).
    let private summarise (names: string[]) (input: GroupedNewtonInput) (u: Parameters) =
        try
            let r, lossAt = input.Summarise u

            match GroupedNewtonRates.nonFinite names r with
            | Some what -> Error what
            | None -> Ok(r, lossAt)
        with :? OptimizationException as e ->
            Error e.Message

    /// The Adaptive variant's step (GroupedNewtonAdaptive): a blow-up restores the last curvature
    /// update's parameters; otherwise the cosines and the loss average are updated, and on a
    /// curvature step the scales, the rates η and their confirmation on the curvature batch.
    let private adaptiveStep
        (options: GroupedNewtonOptions)
        (partition: Partition)
        (updater: UpdateRule)
        (state: GroupedNewtonState)
        (input: GroupedNewtonInput)
        =
        let o = options.Adaptive
        let ps = input.Parameters
        let names = partition.Names
        let a = state.Adaptive

        if GroupedNewtonAdaptive.blownUp o a state.LossAverage input.Loss then
            let warning =
                sprintf
                    "GroupedNewton step %d: the training loss %g is above %g× its running average %g: the parameters of step %d are restored, every scale is quartered and the direction restarts"
                    state.Step
                    input.Loss
                    o.BlowUpFactor
                    (defaultArg state.LossAverage nan)
                    a.SnapshotStep

            {
                state with
                    Step = state.Step + 1
                    Updater = GroupedNewtonAdaptive.restart state.Updater
                    Adaptive = GroupedNewtonAdaptive.restore o a
            },
            { Parameters = ps.WithValues a.Snapshot; Moved = true; Update = None; Warnings = [ warning ] }
        else
            let state = { state with LossAverage = GroupedNewtonRates.lossAverage state.LossAverage input.Loss }
            let a = GroupedNewtonAdaptive.observe partition input.Gradient a

            let u, next = updater.Direction(ps, input.Gradient, state.Updater)

            if not (GroupedNewtonRates.isCurvatureStep options state || a.Force) then
                let st = { state with Step = state.Step + 1; Updater = next; Adaptive = { a with Previous = u.Values } }
                st, { Parameters = move partition st ps u; Moved = true; Update = None; Warnings = [] }
            else
                let a = GroupedNewtonAdaptive.rescale o a

                let fresh =
                    match summarise names input u with
                    | Error why -> Error why
                    | Ok(r, lossAt) ->
                        let eta = GroupedNewtonAdaptive.rates state.LambdaInt r

                        let lossOf (rates: float[]) = lossAt (OptimizerSupport.applyStep ps u (fun k -> rates.[partition.SubsetOf k]))

                        let scales, _, confirmed =
                            GroupedNewtonAdaptive.confirm o state.LambdaInt state.Damping r lossOf eta a.Scales

                        Ok(r, eta, scales, confirmed)

                match fresh with
                | Error why when options.OnCurvatureFailure = CurvatureFailure.Raise -> failed state why
                | _ -> ()

                let applied, scales, summary, warnings =
                    match fresh with
                    | Ok(r, eta, scales, true) -> Array.map2 (*) scales eta, scales, r, []
                    | Ok(r, _, scales, false) ->
                        Array.zeroCreate partition.Count,
                        scales,
                        r,
                        [
                            sprintf
                                "GroupedNewton step %d: the curvature batch confirmed no rates after %d halvings: the parameters stay until the next curvature update"
                                state.Step
                                o.MaxBacktracks
                        ]
                    | Error why ->
                        state.Applied,
                        a.Scales,
                        GroupedNewtonRates.unknownSummary partition.Count,
                        [
                            sprintf "GroupedNewton step %d: the curvature update failed: %s; the previous rates are reused" state.Step why
                        ]

                let st = {
                    state with
                        Step = state.Step + 1
                        Updater = next
                        Eta = applied
                        Applied = applied
                        Updates = state.Updates + 1
                        Adaptive = {
                            a with
                                Scales = scales
                                Previous = u.Values
                                Snapshot = ps.Values
                                SnapshotStep = state.Step
                                Force = false
                        }
                }

                st, moved partition state st ps u summary None (Result.isError fresh) warnings

    /// The paper's variants' step (NewtonSummary, UniformAverage): the direction u from the
    /// first-order rule; on a curvature step the summary, its average and the new rates; the
    /// move θ_s − Damping_s·η_s·u_s once the warm-up is over.
    let private paperStep
        (options: GroupedNewtonOptions)
        (partition: Partition)
        (updater: UpdateRule)
        (state: GroupedNewtonState)
        (input: GroupedNewtonInput)
        =
        let ps = input.Parameters
        let names = partition.Names

        let warmupEnded =
            options.Variant = GroupedNewtonVariant.NewtonSummary
            || state.Step / options.CurvaturePeriod >= options.Warmup

        let curvature = GroupedNewtonRates.isCurvatureStep options state

        if not curvature then
            if warmupEnded then
                let u, next = updater.Direction(ps, input.Gradient, state.Updater)

                { state with Step = state.Step + 1; Updater = next },
                { Parameters = move partition state ps u; Moved = true; Update = None; Warnings = [] }
            else
                { state with Step = state.Step + 1 }, { Parameters = ps; Moved = false; Update = None; Warnings = [] }
        else
            let u, next = updater.Direction(ps, input.Gradient, state.Updater)

            let raw = summarise names input u |> Result.map fst

            let raise' why =
                if options.OnCurvatureFailure = CurvatureFailure.Raise then
                    failed state why

            let averaged, st =
                match raw with
                | Ok r ->
                    let a, st = GroupedNewtonRates.average options state r

                    match GroupedNewtonRates.nonFinite names a with
                    | Some what -> Error(sprintf "the averaged summary has %s" what), st
                    | None -> Ok a, st
                | Error why -> Error why, state

            if not warmupEnded then
                let warnings =
                    match averaged with
                    | Error why ->
                        raise' why
                        [ sprintf "GroupedNewton step %d (warm-up): the curvature update failed: %s" state.Step why ]
                    | Ok _ -> []

                { st with Step = state.Step + 1; Updater = next }, { Parameters = ps; Moved = false; Update = None; Warnings = warnings }
            else
                let fresh, solution, st =
                    match averaged with
                    | Error why -> Error why, None, st
                    | Ok r ->
                        try
                            GroupedNewtonRates.solve options st r
                        with :? ArgumentException as e ->
                            Error(sprintf "the solver refused the summary: %s" e.Message), None, st

                match fresh with
                | Error why -> raise' why
                | Ok _ -> ()

                let eta, applied, warnings = GroupedNewtonRates.rates options names st fresh

                let st = {
                    st with
                        Step = state.Step + 1
                        Updater = next
                        Eta = eta
                        Applied = applied
                        Updates = st.Updates + 1
                }

                let summary =
                    match averaged with
                    | Ok r -> r
                    | Error _ -> GroupedNewtonRates.unknownSummary partition.Count

                st, moved partition state st ps u summary solution (Result.isError fresh) warnings

    /// One step of the options' variant (the paper's, with a warning on a loss far above its
    /// running average, or the adaptive one).
    let step
        (options: GroupedNewtonOptions)
        (partition: Partition)
        (updater: UpdateRule)
        (state: GroupedNewtonState)
        (input: GroupedNewtonInput)
        =
        if options.Variant = GroupedNewtonVariant.Adaptive then
            adaptiveStep options partition updater state input
        else
            // the paper's variants warn when a step's training loss is far above its running
            // average (the adaptive variant restores instead)
            let st, out = paperStep options partition updater state input
            let factor = GroupedNewtonOptions.LossJumpWarningFactor

            let jump =
                match state.LossAverage with
                | Some m when input.Loss > factor * m -> [
                    sprintf
                        "GroupedNewton step %d: the training loss %g is more than %g× its running average %g"
                        state.Step
                        input.Loss
                        factor
                        m
                  ]
                | _ -> []

            { st with LossAverage = GroupedNewtonRates.lossAverage state.LossAverage input.Loss },
            { out with Warnings = jump @ out.Warnings }
