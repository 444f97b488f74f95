namespace GroupedNewton

open System

/// The uniform mean over the current and the previous period of a stream of vectors (the
/// two accumulators never share storage): `Use` is the mean since the start of the previous
/// period, `Up` the mean over the current one.
type UniformAverage = {
    Count: int
    Use: float[]
    Up: float[]
} with

    static member Empty = { Count = 0; Use = [||]; Up = [||] }

module internal UniformAverage =
    /// The average after one more sample x, for a period of `period` samples.
    let add (period: int) (a: UniformAverage) (x: float[]) =
        let k = a.Count
        let t = k % period

        let use0, up0 =
            if k = 0 then Array.zeroCreate x.Length, Array.zeroCreate x.Length
            elif t = 0 then Array.copy a.Up, Array.zeroCreate x.Length
            else a.Use, a.Up

        let nUp = float (t + 1)
        let nUse = float ((if k >= period then period else 0) + t + 1)

        {
            Count = k + 1
            Up = Array.map2 (fun p v -> p * (nUp - 1.0) / nUp + v / nUp) up0 x
            Use = Array.map2 (fun p v -> p * (nUse - 1.0) / nUse + v / nUse) use0 x
        }

/// The uniform average as an object (samples in, current mean out).
type internal UniformAverager(period: int) =
    let mutable state = UniformAverage.Empty

    member _.Add(x: float[]) : float[] =
        state <- UniformAverage.add period state x
        Array.copy state.Use

/// The moving averages of NewtonSummary's summaries (SummaryMomentum).
type SummaryAverage = { Gradient: float[]; Hessian: float[,]; Third: float[] }

/// Everything GroupedNewton carries between steps.
type GroupedNewtonState = {
    Step: int
    /// The state of the first-order rule that gives the direction u.
    Updater: RuleState
    /// η as carried by the rate average.
    Eta: float[]
    /// The rates applied since the last curvature update (after clipping).
    Applied: float[]
    /// Damping per subset (ReduceDampingOnPlateau changes it).
    Damping: float[]
    LambdaInt: float
    /// Curvature updates that reached the solver (the warm-up's are not counted).
    Updates: int
    Average: UniformAverage
    Moving: SummaryAverage option
    ThirdOrderAverage: float[] option
} with

    static member Initial (subsets: int) (options: GroupedNewtonOptions) = {
        Step = 0
        Updater = RuleState.Empty
        Eta = Array.zeroCreate subsets
        Applied = Array.zeroCreate subsets
        Damping = Array.create subsets options.Damping
        LambdaInt = options.LambdaInt
        Updates = 0
        Average = UniformAverage.Empty
        Moving = None
        ThirdOrderAverage = None
    }

/// What one step needs besides the state: the point, its gradient, and the summary of the
/// curvature batch for a direction u (called only on curvature steps).
type GroupedNewtonInput = { Parameters: Parameters; Gradient: Parameters; Summarise: Parameters -> PartitionSummary }

/// What one step produced.
type GroupedNewtonOutput = {
    /// The parameters after the step.
    Parameters: Parameters
    /// Whether the parameters moved (false during the warm-up).
    Moved: bool
    /// The curvature update of this step, if it made one after the warm-up.
    Update: CurvatureUpdate option
    /// Warnings for the user (failed curvature updates, jumping rates).
    Warnings: string list
}

/// GroupedNewton's step as a function of its options and state (docs/groupednewton.md).
module internal GroupedNewtonStep =
    let private flatten (h: float[,]) = let n = Array2D.length1 h in Array.init (n * n) (fun i -> h.[i / n, i % n])
    let private unflatten (n: int) (a: float[]) = Array2D.init n n (fun i j -> a.[i * n + j])

    /// Whether a step is a curvature step.
    let isCurvatureStep (options: GroupedNewtonOptions) (state: GroupedNewtonState) = state.Step % options.CurvaturePeriod = 0

    /// The first non-finite entry of a summary, described with subset names, if any.
    let nonFinite (names: string[]) (r: PartitionSummary) =
        let s = r.Gradient.Length
        let fmt (v: float) = v.ToString(Globalization.CultureInfo.InvariantCulture)

        seq {
            if not (Double.IsFinite r.Loss) then
                yield sprintf "the loss on the curvature batch is %s" (fmt r.Loss)

            for i in 0 .. s - 1 do
                if not (Double.IsFinite r.Gradient.[i]) then
                    yield sprintf "ḡ['%s'] = %s" names.[i] (fmt r.Gradient.[i])

            for i in 0 .. s - 1 do
                for j in 0 .. s - 1 do
                    if not (Double.IsFinite r.Hessian.[i, j]) then
                        yield sprintf "H̄['%s', '%s'] = %s" names.[i] names.[j] (fmt r.Hessian.[i, j])

            for i in 0 .. r.ThirdDiagonal.Length - 1 do
                if not (Double.IsFinite r.ThirdDiagonal.[i]) then
                    yield sprintf "D̄['%s'] = %s" names.[i] (fmt r.ThirdDiagonal.[i])
        }
        |> Seq.tryHead

    /// The summary averaged across curvature updates as the variant does, and the new state.
    let private average (options: GroupedNewtonOptions) (state: GroupedNewtonState) (r: PartitionSummary) =
        let s = r.Gradient.Length
        let hasThird = r.ThirdDiagonal.Length = s
        let o3 = if hasThird then r.ThirdDiagonal else Array.zeroCreate s

        match options.Variant with
        | GroupedNewtonVariant.UniformAverage ->
            let avg =
                UniformAverage.add options.AveragePeriod state.Average (Array.concat [ r.Gradient; flatten r.Hessian; o3 ])

            let m = avg.Use

            {
                r with
                    Gradient = m.[0 .. s - 1]
                    Hessian = unflatten s m.[s .. s + s * s - 1]
                    ThirdDiagonal = (if hasThird then m.[s + s * s ..] else [||])
            },
            { state with Average = avg }
        | GroupedNewtonVariant.NewtonSummary when options.SummaryMomentum > 0.0 ->
            let a = options.SummaryMomentum

            let next =
                match state.Moving with
                | None -> { Gradient = r.Gradient; Hessian = r.Hessian; Third = o3 }
                | Some p -> {
                    Gradient = Array.map2 (fun x y -> a * x + (1.0 - a) * y) p.Gradient r.Gradient
                    Hessian = Array2D.init s s (fun i j -> a * p.Hessian.[i, j] + (1.0 - a) * r.Hessian.[i, j])
                    Third = Array.map2 (fun x y -> a * x + (1.0 - a) * y) p.Third o3
                  }

            {
                r with
                    Gradient = next.Gradient
                    Hessian = next.Hessian
                    ThirdDiagonal = (if hasThird then next.Third else [||])
            },
            { state with Moving = Some next }
        | _ -> r, state

    /// η from an averaged summary: Ok η, or Error with why it failed; the solver's answer; the
    /// new state (ThirdOrderMomentum's average).
    let private solve (options: GroupedNewtonOptions) (state: GroupedNewtonState) (r: PartitionSummary) =
        let s = r.Gradient.Length

        if options.Cubic && not options.SecondOrderOnly then
            let d0 = r.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))

            let d, state =
                if
                    options.Variant = GroupedNewtonVariant.NewtonSummary
                    && options.ThirdOrderMomentum > 0.0
                    && options.SummaryMomentum = 0.0
                then
                    let m = options.ThirdOrderMomentum

                    let e =
                        match state.ThirdOrderAverage with
                        | None -> d0
                        | Some p -> Array.map2 (fun a b -> m * a + (1.0 - m) * b) p d0

                    e, { state with ThirdOrderAverage = Some e }
                else
                    d0, state

            let sol =
                CubicRegularization.solveWith
                    { CubicOptions.Defaults with SingularThreshold = options.SingularThreshold }
                    r.Hessian
                    r.Gradient
                    d
                    state.LambdaInt

            (if sol.Converged then
                 Ok sol.Eta
             else
                 Error(sprintf "the cubic solver found no minimiser (%A: %s)" sol.Path sol.Message)),
            Some sol,
            state
        else
            // order 2: η = (H̄ + ridge·I)⁻¹ḡ, with no definiteness check (as the reference); only a
            // singular system fails
            let hr = Array2D.init s s (fun i j -> r.Hessian.[i, j] + (if i = j then options.Ridge else 0.0))

            (match CubicRegularization.solveLinear hr r.Gradient with
             | Some eta -> Ok eta
             | None -> Error "H̄ + Ridge·I is singular"),
            None,
            state

    /// The rates of a curvature update from the fresh η (or the failure's fallback): the rate
    /// average, the clipping, the growth bound. Returns (η carried, rates applied, warnings).
    let private rates (options: GroupedNewtonOptions) (names: string[]) (state: GroupedNewtonState) (fresh: Result<float[], string>) =
        let s = names.Length

        let fallbackNote =
            match options.Variant with
            | GroupedNewtonVariant.UniformAverage -> "the previous rates are reused"
            | GroupedNewtonVariant.NewtonSummary -> "η = 0 enters the rate average"

        let fresh, warnings =
            match fresh with
            | Ok eta -> eta, []
            | Error why ->
                let eta =
                    match options.Variant with
                    | GroupedNewtonVariant.UniformAverage -> Array.copy state.Eta
                    | GroupedNewtonVariant.NewtonSummary -> Array.zeroCreate s

                eta, [ sprintf "GroupedNewton step %d: the curvature update failed: %s; %s" state.Step why fallbackNote ]

        let fresh =
            if Double.IsPositiveInfinity options.MaxRateGrowth || state.Updates = 0 then
                fresh
            else
                Array.init s (fun i ->
                    let bound = options.MaxRateGrowth * abs state.Eta.[i]
                    if state.Eta.[i] = 0.0 then fresh.[i] else max -bound (min bound fresh.[i]))

        let relu (a: float[]) = a |> Array.map (fun v -> max 0.0 v)
        let mom = if state.Updates = 0 then 0.0 else options.RateMomentum
        let mix (prev: float[]) (x: float[]) = Array.map2 (fun p v -> mom * p + (1.0 - mom) * v) prev x
        // NewtonSummary without ClipAfterRateMomentum clips before the average, else after
        let eta, applied =
            match options.Variant with
            | GroupedNewtonVariant.NewtonSummary when not options.ClipAfterRateMomentum ->
                let e = mix state.Eta (if options.ClipNegativeRates then relu fresh else fresh)
                e, e
            | _ ->
                let e = mix state.Eta fresh
                e, (if options.ClipNegativeRates then relu e else e)

        let factor = GroupedNewtonOptions.RateJumpWarningFactor

        let jumps = [
            if state.Updates > 0 then
                for i in 0 .. s - 1 do
                    let before = state.Applied.[i]

                    if before <> 0.0 && abs applied.[i] > factor * abs before then
                        yield
                            sprintf
                                "GroupedNewton step %d: the rate of subset '%s' jumped from %g to %g (more than %g×) since the last curvature update"
                                state.Step
                                names.[i]
                                before
                                applied.[i]
                                factor
        ]

        eta, applied, warnings @ jumps

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

        let curvature = isCurvatureStep options state

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

                    match nonFinite names r with
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
                    let a, st = average options state r

                    match nonFinite names a with
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
                            solve options st r
                        with :? ArgumentException as e ->
                            Error(sprintf "the solver refused the summary: %s" e.Message), None, st

                match fresh with
                | Error why -> raise' why
                | Ok _ -> ()

                let eta, applied, warnings = rates options names st fresh

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
                        | Some m -> [ "moving.hessian", StoreValue.Tensor(Tensor.ofArrayShape (flatten m.Hessian) [| s; s |]) ]
                        | None -> []
                Load =
                    fun src st ->
                        match st.Moving with
                        | Some m -> {
                            st with
                                Moving = Some { m with Hessian = unflatten s ((StateSchema.vectorCodec (s * s)).Read src "moving.hessian") }
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
