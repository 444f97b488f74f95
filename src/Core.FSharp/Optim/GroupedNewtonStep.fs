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

    /// One step: the direction u from the first-order rule; on a curvature step the summary, its
    /// average and the new rates; the move θ_s − Damping_s·η_s·u_s once the warm-up is over.
    let step
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

            let raw =
                try
                    let r = input.Summarise u

                    match GroupedNewtonRates.nonFinite names r with
                    | Some what -> Error what
                    | None -> Ok r
                with :? OptimizationException as e ->
                    Error e.Message

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
                    | Error _ ->
                        let s = partition.Count

                        {
                            Gradient = Array.create s nan
                            Hessian = Array2D.create s s nan
                            ThirdDiagonal = [||]
                            Loss = nan
                            ReversePasses = 0
                        }

                let update = {
                    Step = state.Step
                    Summary = summary
                    Solution = solution
                    Fallback = Result.isError fresh
                    Rates = Array.map2 (fun n v -> n, v) names applied
                    LearningRates = Array.init partition.Count (fun s -> names.[s], st.Damping.[s] * applied.[s])
                }

                st, { Parameters = move partition st ps u; Moved = true; Update = Some update; Warnings = warnings }

    /// The saved layout of GroupedNewton's state (keys as written since the first release).
    let schema (initial: Parameters) (updater: UpdateRule) (subsets: int) : StateField<GroupedNewtonState> list =
        let s = subsets
        let width = s + s * s + s

        StateSchema.header "grouped-newton" (fun st -> st.Step) (fun v st -> { st with Step = v })
        @ [
            StateSchema.field "updater.step" StateSchema.intCodec (fun st -> st.Updater.Step) (fun v st -> {
                st with
                    Updater = { st.Updater with Step = v }
            })
            StateSchema.indexedFloats "eta" s (fun st -> st.Eta) (fun v st -> { st with Eta = v })
            StateSchema.indexedFloats "applied" s (fun st -> st.Applied) (fun v st -> { st with Applied = v })
            StateSchema.indexedFloats "damping" s (fun st -> st.Damping) (fun v st -> { st with Damping = v })
            StateSchema.field "lambda_int" StateSchema.floatCodec (fun st -> st.LambdaInt) (fun v st -> { st with LambdaInt = v })
            StateSchema.defaulted "updates" StateSchema.intCodec 0 (fun st -> st.Updates) (fun v st -> { st with Updates = v })
            // the averaging state, so that a resumed run continues the same trajectory (absent from
            // files written before it was saved: the current average is kept)
            {
                Save =
                    fun st ->
                        let a = st.Average

                        [
                            yield "average.count", StoreValue.Int a.Count
                            if a.Count > 0 then
                                yield "average.use", (StateSchema.vectorCodec width).Write a.Use
                                yield "average.up", (StateSchema.vectorCodec width).Write a.Up
                        ]
                Load =
                    fun src st ->
                        if not (src.Entries.ContainsKey "average.count") then
                            st
                        else
                            let count = StateSchema.intCodec.Read src "average.count"
                            let v key = if count > 0 then (StateSchema.vectorCodec width).Read src key else [||]
                            { st with Average = { Count = count; Use = v "average.use"; Up = v "average.up" } }
            }
            StateSchema.optional
                "moving.gradient"
                (StateSchema.vectorCodec s)
                (fun st -> st.Moving |> Option.map (fun m -> m.Gradient))
                (fun v st -> {
                    st with
                        Moving = v |> Option.map (fun g -> { Gradient = g; Hessian = Array2D.zeroCreate s s; Third = [||] })
                })
            {
                Save =
                    fun st ->
                        match st.Moving with
                        | Some m -> [
                            "moving.hessian", StoreValue.Tensor(Tensor.ofArrayShape (GroupedNewtonRates.flatten m.Hessian) [| s; s |])
                          ]
                        | None -> []
                Load =
                    fun src st ->
                        match st.Moving with
                        | Some m -> {
                            st with
                                Moving =
                                    Some {
                                        m with
                                            Hessian =
                                                GroupedNewtonRates.unflatten s ((StateSchema.vectorCodec (s * s)).Read src "moving.hessian")
                                    }
                          }
                        | None -> st
            }
            {
                Save =
                    fun st ->
                        match st.Moving with
                        | Some m -> [ "moving.third", (StateSchema.vectorCodec s).Write m.Third ]
                        | None -> []
                Load =
                    fun src st ->
                        match st.Moving with
                        | Some m -> { st with Moving = Some { m with Third = (StateSchema.vectorCodec s).Read src "moving.third" } }
                        | None -> st
            }
            StateSchema.optional "order3.ema" (StateSchema.vectorCodec s) (fun st -> st.ThirdOrderAverage) (fun v st -> {
                st with
                    ThirdOrderAverage = v
            })
            {
                Save = fun st -> OptimizerSupport.bufferEntries initial updater st.Updater
                Load =
                    fun src st -> {
                        st with
                            Updater = { st.Updater with Buffers = OptimizerSupport.parseBuffers src.Source src.Entries initial updater }
                    }
            }
        ]
