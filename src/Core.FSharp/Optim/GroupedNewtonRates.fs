namespace GroupedNewton

open System

/// GroupedNewton's curvature update as functions (docs/groupednewton.md): the summary average,
/// the solve for the fresh rates η, and the rates applied after averaging, clipping and the
/// growth bound.
module internal GroupedNewtonRates =
    let flatten (h: float[,]) = let n = Array2D.length1 h in Array.init (n * n) (fun i -> h.[i / n, i % n])
    let unflatten (n: int) (a: float[]) = Array2D.init n n (fun i j -> a.[i * n + j])

    /// The summary a failed curvature update reports: every entry NaN.
    let unknownSummary (s: int) = {
        Gradient = Array.create s nan
        Hessian = Array2D.create s s nan
        ThirdDiagonal = [||]
        Loss = nan
        ReversePasses = 0
    }

    /// d_s = |D̄_sss|^{1/3}, the weights of the cubic term.
    let cubeRoots (r: PartitionSummary) = r.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))

    /// The running average of the training loss after one more step (an EMA with weight 0.1).
    let lossAverage (previous: float option) (loss: float) =
        Some(
            match previous with
            | Some m -> 0.9 * m + 0.1 * loss
            | None -> loss
        )

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
    let average (options: GroupedNewtonOptions) (state: GroupedNewtonState) (r: PartitionSummary) =
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
    let solve (options: GroupedNewtonOptions) (state: GroupedNewtonState) (r: PartitionSummary) =
        let s = r.Gradient.Length

        if options.Cubic && not options.SecondOrderOnly then
            let d0 = cubeRoots r

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
    let rates (options: GroupedNewtonOptions) (names: string[]) (state: GroupedNewtonState) (fresh: Result<float[], string>) =
        let s = names.Length

        let fallbackNote =
            match options.Variant with
            | GroupedNewtonVariant.UniformAverage
            | GroupedNewtonVariant.Adaptive -> "the previous rates are reused"
            | GroupedNewtonVariant.NewtonSummary -> "η = 0 enters the rate average"

        let fresh, warnings =
            match fresh with
            | Ok eta -> eta, []
            | Error why ->
                let eta =
                    match options.Variant with
                    | GroupedNewtonVariant.UniformAverage
                    | GroupedNewtonVariant.Adaptive -> Array.copy state.Eta
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
