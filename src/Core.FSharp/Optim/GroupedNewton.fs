namespace GroupedNewton

open System

/// Which GroupedNewton procedure (spec §2.3).
[<RequireQualifiedAccess>]
type GroupedNewtonVariant =
    /// The README's optimizer: optional EMAs on the summaries and on d; a solver failure
    /// feeds η = 0 into the learning-rate EMA.
    | NewtonSummary
    /// The paper's final runs: uniform averaging of the summaries over the current and the
    /// previous period, a warm-up, and reuse of the previous rates on failure.
    | UniformAverage

/// GroupedNewton hyperparameters (names follow the reference configuration).
type GroupedNewtonOptions =
    { Variant: GroupedNewtonVariant
      /// λ₁: the group learning rate is Damping · η_s.
      Damping: float
      /// Cubic regularisation (nesterov.use); off: η = (H̄ + Ridge·I)⁻¹ḡ.
      Cubic: bool
      /// λ_int, the weight of the cubic term.
      LambdaInt: float
      /// Steps between two curvature updates (period_hg).
      PeriodHg: int
      /// EMA on η (mom_lrs); forced to 0 at the first update.
      MomentumLrs: float
      /// EMA on ḡ, H̄ and D̄ (movavg, NewtonSummary only).
      MovingAverage: float
      /// EMA on d = |D̄_sss|^{1/3} (mom_order3_, NewtonSummary only; superseded by MovingAverage).
      MomentumOrder3: float
      /// Uniform-average period in curvature updates (UniformAverage only).
      AveragePeriod: int
      /// Curvature updates before the parameters move (UniformAverage only).
      Warmup: int
      /// relu on η (remove_negative).
      RemoveNegative: bool
      /// NewtonSummary: true runs the EMA on raw η and applies relu after; false applies relu first.
      MaintainTrueLrs: bool
      /// Added to H̄'s diagonal when the cubic term is off.
      Ridge: float
      /// Order 2 only: η = H̄⁻¹ḡ (no third-order passes).
      NoRegul: bool
      /// Use only the diagonal of H̄.
      DiagonalOnly: bool
      /// Relative threshold on d below which a subset counts as quadratic.
      SingularThreshold: float }

    /// The class defaults of the reference.
    static member Defaults =
        { Variant = GroupedNewtonVariant.NewtonSummary; Damping = 1.0; Cubic = false; LambdaInt = 1.0; PeriodHg = 1
          MomentumLrs = 0.0; MovingAverage = 0.0; MomentumOrder3 = 0.0; AveragePeriod = 1; Warmup = 0
          RemoveNegative = false; MaintainTrueLrs = false; Ridge = 0.0; NoRegul = false; DiagonalOnly = false
          SingularThreshold = 0.0 }

    /// The settings of the paper's final MLP runs (damping .03; LeNet and VGG used .3).
    static member Paper =
        { GroupedNewtonOptions.Defaults with
            Variant = GroupedNewtonVariant.UniformAverage; Damping = 0.03; Cubic = true; LambdaInt = 1.0
            PeriodHg = 10; AveragePeriod = 3; Warmup = 3; RemoveNegative = true }

    member o.Validate() =
        let nonNeg name (v: float) = if not (Double.IsFinite v) || v < 0.0 then invalidArg name (sprintf "GroupedNewton: %s must be finite and non-negative, got %g" name v)
        let unit name (v: float) = if not (v >= 0.0 && v < 1.0) then invalidArg name (sprintf "GroupedNewton: %s must be in [0, 1), got %g" name v)
        nonNeg "Damping" o.Damping
        nonNeg "LambdaInt" o.LambdaInt
        nonNeg "Ridge" o.Ridge
        nonNeg "SingularThreshold" o.SingularThreshold
        unit "MomentumLrs" o.MomentumLrs
        unit "MovingAverage" o.MovingAverage
        unit "MomentumOrder3" o.MomentumOrder3
        if o.PeriodHg < 1 then invalidArg "PeriodHg" (sprintf "GroupedNewton: PeriodHg must be at least 1, got %d" o.PeriodHg)
        if o.AveragePeriod < 1 then invalidArg "AveragePeriod" (sprintf "GroupedNewton: AveragePeriod must be at least 1, got %d" o.AveragePeriod)
        if o.Warmup < 0 then invalidArg "Warmup" (sprintf "GroupedNewton: Warmup must be non-negative, got %d" o.Warmup)

/// One curvature update, as observed after it happened.
type CurvatureUpdate =
    { Step: int
      /// The summary after averaging.
      Summary: PartitionSummary
      /// The solver's answer (None without the cubic term).
      Solution: CubicSolution option
      /// True when the solve failed or the summaries were not finite, and the fallback rates were used.
      Fallback: bool
      /// η used for the step, named by subset.
      Rates: (string * float)[]
      /// Damping · η per subset: the group learning rates.
      LearningRates: (string * float)[] }

/// Uniform mean over the current and the previous period (the intended semantics: the
/// two accumulators never share storage).
type internal UniformAverager(period: int) =
    let mutable useAcc : float[] = [||]
    let mutable upAcc : float[] = [||]
    let mutable k = 0
    member _.Add(x: float[]) : float[] =
        let t = k % period
        if k = 0 then
            useAcc <- Array.zeroCreate x.Length
            upAcc <- Array.zeroCreate x.Length
        elif t = 0 then
            useAcc <- Array.copy upAcc
            upAcc <- Array.zeroCreate x.Length
        let nUp = float (t + 1)
        let nUse = float ((if k >= period then period else 0) + t + 1)
        upAcc <- Array.map2 (fun a v -> a * (nUp - 1.0) / nUp + v / nUp) upAcc x
        useAcc <- Array.map2 (fun a v -> a * (nUse - 1.0) / nUse + v / nUse) useAcc x
        k <- k + 1
        Array.copy useAcc
    /// (samples added, "use" accumulator, "up" accumulator), for saving.
    member _.Snapshot() = k, Array.copy useAcc, Array.copy upAcc
    /// Restores a snapshot taken by Snapshot.
    member _.Restore(count: int, useValues: float[], upValues: float[]) =
        k <- count
        useAcc <- Array.copy useValues
        upAcc <- Array.copy upValues

/// GroupedNewton (Wolinski, arXiv 2312.03885): a direction u from a first-order rule at
/// learning rate 1, and every PeriodHg steps one learning rate per subset from the
/// derivatives of the loss according to the partition (ḡ, H̄, D̄) on a curvature batch,
/// by the cubic-regularised Newton step on the S-dimensional model. Each step moves
/// θ_s ← θ_s − Damping_s · η_s · u_s.
type GroupedNewtonOptimizer(initial: Parameters, partition: Partition, options: GroupedNewtonOptions, updater: UpdateRule,
                            curvature: unit -> (Parameters -> Tensor)) =
    inherit Optimizer(initial,
                      Array.init partition.Count (fun s -> ParamGroup(partition.Names.[s], partition.Subset s, 0.0)))
    do options.Validate()
    let S = partition.Count
    let mutable updaterState = RuleState.Empty
    let mutable step = 0
    let mutable hgUpdates = 0
    /// η as carried by the EMA, and the rates actually applied (after relu).
    let mutable eta : float[] = Array.zeroCreate S
    let mutable applied : float[] = Array.zeroCreate S
    let damping = Array.create S options.Damping
    let mutable lambdaInt = options.LambdaInt
    let mutable movAvg : (float[] * float[,] * float[]) option = None
    let mutable dEma : float[] option = None
    let history = ResizeArray<CurvatureUpdate>()
    /// Curvature updates made before the state was restored (History holds only later ones).
    let mutable earlierUpdates = 0
    let averager = UniformAverager(options.AveragePeriod)
    let flatten (h: float[,]) = Array.init (S * S) (fun i -> h.[i / S, i % S])
    let unflatten (a: float[]) = Array2D.init S S (fun i j -> a.[i * S + j])

    member _.Partition = partition
    member _.Options = options
    /// η applied since the last curvature update (per subset, in partition order).
    member _.Rates = Array.copy applied
    /// Damping per subset (ReduceDampingOnPlateau changes it).
    member _.Damping = Array.copy damping
    member _.SetDamping(s: int, v: float) =
        if not (Double.IsFinite v) || v < 0.0 then invalidArg "v" (sprintf "damping must be non-negative, got %g" v)
        damping.[s] <- v
    member _.LambdaInt with get () = lambdaInt and set v = (if not (Double.IsFinite v) || v < 0.0 then invalidArg "value" (sprintf "λ_int must be non-negative, got %g" v)); lambdaInt <- v
    /// Every curvature update so far, oldest first.
    member _.History = history.ToArray()

    override _.Name = "grouped-newton"
    override _.StepCount = step

    /// θ_s − Damping_s·η_s·u_s with the applied rates (signed: without remove_negative a
    /// rate may be negative; the groups show max(0, ·)).
    member private o.ApplyStep(ps: Parameters, u: Parameters) =
        for s in 0 .. S - 1 do o.Groups.[s].LearningRate <- max 0.0 (damping.[s] * applied.[s])
        OptimizerSupport.applyStep ps u (fun k -> let s = partition.SubsetOf k in damping.[s] * applied.[s])

    override o.Step(closure) =
        let ps = o.Parameters
        let loss, gradient = OptimizerSupport.lossAndGradient "grouped-newton" step closure ps
        let k = step / options.PeriodHg
        let warmupEnded =
            options.Variant = GroupedNewtonVariant.NewtonSummary || k >= options.Warmup
        if step % options.PeriodHg <> 0 then
            if warmupEnded then
                let u, next = updater.Direction(ps, gradient, updaterState)
                let updated = o.ApplyStep(ps, u)
                o.Commit updated
                updaterState <- next
            step <- step + 1
            loss
        else
            let u, next = updater.Direction(ps, gradient, updaterState)
            let summaryOptions = { ThirdOrder = options.Cubic && not options.NoRegul; DiagonalOnly = options.DiagonalOnly }
            let raw =
                try Some (Summary.computeWith summaryOptions (curvature ()) ps partition u)
                with :? OptimizationException -> None
            // data-parallel hook: ḡ, H̄, D̄ summed over the ranks (None everywhere if any failed)
            let raw = Distributed.reduceSummary S raw
            // averaging across curvature updates
            let averaged =
                raw |> Option.map (fun r ->
                    let o3 = if r.ThirdDiagonal.Length = S then r.ThirdDiagonal else Array.zeroCreate S
                    match options.Variant with
                    | GroupedNewtonVariant.UniformAverage ->
                        let packed = Array.concat [ r.Gradient; flatten r.Hessian; o3 ]
                        let avg = averager.Add packed
                        { r with Gradient = avg.[0 .. S - 1]; Hessian = unflatten avg.[S .. S + S * S - 1]; ThirdDiagonal = (if r.ThirdDiagonal.Length = S then avg.[S + S * S ..] else [||]) }
                    | GroupedNewtonVariant.NewtonSummary when options.MovingAverage > 0.0 ->
                        let a = options.MovingAverage
                        let g, h, t =
                            match movAvg with
                            | None -> r.Gradient, r.Hessian, o3
                            | Some (g0, h0, t0) ->
                                Array.map2 (fun x y -> a * x + (1.0 - a) * y) g0 r.Gradient,
                                Array2D.init S S (fun i j -> a * h0.[i, j] + (1.0 - a) * r.Hessian.[i, j]),
                                Array.map2 (fun x y -> a * x + (1.0 - a) * y) t0 o3
                        movAvg <- Some (g, h, t)
                        { r with Gradient = g; Hessian = h; ThirdDiagonal = (if r.ThirdDiagonal.Length = S then t else [||]) }
                    | _ -> r)
            hgUpdates <- hgUpdates + 1
            if not warmupEnded then
                updaterState <- next
                step <- step + 1
                loss
            else
                let solution, solved =
                    match averaged with
                    | None -> None, None
                    | Some r when options.Cubic && not options.NoRegul ->
                        let d0 = r.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))
                        let d =
                            if options.Variant = GroupedNewtonVariant.NewtonSummary && options.MomentumOrder3 > 0.0 && options.MovingAverage = 0.0 then
                                let m = options.MomentumOrder3
                                let e = match dEma with None -> d0 | Some p -> Array.map2 (fun a b -> m * a + (1.0 - m) * b) p d0
                                dEma <- Some e
                                e
                            else d0
                        let sol = CubicRegularization.solveWith { CubicOptions.Defaults with SingularThreshold = options.SingularThreshold } r.Hessian r.Gradient d lambdaInt
                        Some sol, (if sol.Converged then Some sol.Eta else None)
                    | Some r ->
                        // order 2: η = (H̄ + ridge·I)⁻¹ḡ, with no definiteness check (as the
                        // reference); only a singular system fails
                        let hr = Array2D.init S S (fun i j -> r.Hessian.[i, j] + (if i = j then options.Ridge else 0.0))
                        None, CubicRegularization.solveLinear hr r.Gradient
                let fallback = solved.IsNone
                let fresh =
                    match solved with
                    | Some e -> e
                    | None ->
                        match options.Variant with
                        | GroupedNewtonVariant.UniformAverage -> Array.copy eta
                        | GroupedNewtonVariant.NewtonSummary -> Array.zeroCreate S
                let relu (a: float[]) = a |> Array.map (fun v -> max 0.0 v)
                let mom = if earlierUpdates + history.Count = 0 then 0.0 else options.MomentumLrs
                let mix (prev: float[]) (x: float[]) = Array.map2 (fun p v -> mom * p + (1.0 - mom) * v) prev x
                // NewtonSummary without maintain_true_lrs applies relu before the EMA, else after
                match options.Variant with
                | GroupedNewtonVariant.NewtonSummary when not options.MaintainTrueLrs ->
                    eta <- mix eta (if options.RemoveNegative then relu fresh else fresh)
                    applied <- eta
                | _ ->
                    eta <- mix eta fresh
                    applied <- if options.RemoveNegative then relu eta else eta
                let used = applied
                let updated = o.ApplyStep(ps, u)
                o.Commit updated
                updaterState <- next
                let summary =
                    match averaged with
                    | Some r -> r
                    | None -> { Gradient = Array.create S nan; Hessian = Array2D.create S S nan; ThirdDiagonal = [||]; Loss = nan; ReversePasses = 0 }
                history.Add
                    { Step = step
                      Summary = summary
                      Solution = solution
                      Fallback = fallback
                      Rates = Array.map2 (fun n v -> n, v) partition.Names used
                      LearningRates = Array.init S (fun s -> partition.Names.[s], damping.[s] * used.[s]) }
                step <- step + 1
                loss

    override o.StateEntries() =
        [ yield "optimizer", StoreValue.Text o.Name
          yield "step", StoreValue.Int step
          yield "updater.step", StoreValue.Int updaterState.Step
          for s in 0 .. S - 1 do
              yield sprintf "eta.%d" s, StoreValue.Float eta.[s]
              yield sprintf "applied.%d" s, StoreValue.Float applied.[s]
              yield sprintf "damping.%d" s, StoreValue.Float damping.[s]
          yield "lambda_int", StoreValue.Float lambdaInt
          // the averaging state, so that a resumed run continues the same trajectory
          yield "updates", StoreValue.Int(earlierUpdates + history.Count)
          let count, useAcc, upAcc = averager.Snapshot()
          yield "average.count", StoreValue.Int count
          if count > 0 then
              yield "average.use", StoreValue.Tensor(Tensor.ofArrayShape useAcc [| useAcc.Length |])
              yield "average.up", StoreValue.Tensor(Tensor.ofArrayShape upAcc [| upAcc.Length |])
          match movAvg with
          | Some (g, h, t) ->
              yield "moving.gradient", StoreValue.Tensor(Tensor.ofArrayShape g [| S |])
              yield "moving.hessian", StoreValue.Tensor(Tensor.ofArrayShape (flatten h) [| S; S |])
              yield "moving.third", StoreValue.Tensor(Tensor.ofArrayShape t [| S |])
          | None -> ()
          match dEma with
          | Some e -> yield "order3.ema", StoreValue.Tensor(Tensor.ofArrayShape e [| S |])
          | None -> ()
          yield! OptimizerSupport.bufferEntries o.Parameters updater updaterState ]

    override o.RestoreState(source, entries) =
        OptimizerSupport.checkKind source entries o.Name
        let st = TensorStore.getInt source entries "step"
        let ust = TensorStore.getInt source entries "updater.step"
        let etas = Array.init S (fun s -> TensorStore.getFloat source entries (sprintf "eta.%d" s))
        let app = Array.init S (fun s -> TensorStore.getFloat source entries (sprintf "applied.%d" s))
        let damps = Array.init S (fun s -> TensorStore.getFloat source entries (sprintf "damping.%d" s))
        let li = TensorStore.getFloat source entries "lambda_int"
        let buffers = OptimizerSupport.parseBuffers source entries o.Parameters updater
        // the averaging state (absent from files written before it was saved)
        let floats name (n: int) =
            let t = TensorStore.getTensor source entries name
            if t.Numel <> n then raise (StateFormatException(sprintf "%s: entry '%s' has %d values, expected %d" source name t.Numel n))
            Tensor.toArray t
        let has (name: string) = entries.ContainsKey name
        let updates = if has "updates" then TensorStore.getInt source entries "updates" else 0
        let average =
            if has "average.count" then
                let count = TensorStore.getInt source entries "average.count"
                let width = S + S * S + S
                Some(if count > 0 then count, floats "average.use" width, floats "average.up" width else 0, [||], [||])
            else None
        let moving =
            if has "moving.gradient" then
                Some(floats "moving.gradient" S, unflatten (floats "moving.hessian" (S * S)), floats "moving.third" S)
            else None
        let order3 = if has "order3.ema" then Some(floats "order3.ema" S) else None
        step <- st
        earlierUpdates <- updates - history.Count
        average |> Option.iter averager.Restore
        movAvg <- moving
        dEma <- order3
        updaterState <- { Step = ust; Buffers = buffers }
        eta <- etas
        applied <- app
        Array.blit damps 0 damping 0 S
        lambdaInt <- li

/// Builds GroupedNewton optimizers.
module GroupedNewton =
    /// A GroupedNewton optimizer with the SGD-momentum updater of the paper (lr 1,
    /// momentum `momentum`, no dampening). `curvature ()` returns the loss closure of the
    /// next curvature batch (the reference cycles an unshuffled loader).
    let create (options: GroupedNewtonOptions) (momentum: float) (partition: Partition) (curvature: unit -> (Parameters -> Tensor)) (ps: Parameters) =
        GroupedNewtonOptimizer(ps, partition, options, SgdRule { SgdOptions.Defaults with LearningRate = 1.0; Momentum = momentum }, curvature)

    /// A GroupedNewton optimizer with any first-order rule as the direction.
    let createWith (options: GroupedNewtonOptions) (updater: UpdateRule) (partition: Partition) (curvature: unit -> (Parameters -> Tensor)) (ps: Parameters) =
        GroupedNewtonOptimizer(ps, partition, options, updater, curvature)

    /// The per-subset rates η that one summary suggests: the cubic-regularised step with
    /// d_s = |D̄_sss|^{1/3} and weight λ_int (the η GroupedNewton multiplies by its damping),
    /// or η = H̄⁻¹ḡ when the summary has no third-order diagonal or λ_int is 0. Used to
    /// read per-subset learning rates off a model without running the optimizer.
    let suggestRates (lambdaInt: float) (summary: PartitionSummary) : CubicSolution =
        let d = summary.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))
        let d = if d.Length = summary.Gradient.Length then d else Array.zeroCreate summary.Gradient.Length
        CubicRegularization.solve summary.Hessian summary.Gradient d lambdaInt

/// Multiplies GroupedNewton's damping (or λ_int) by `factor` when the epoch-mean training
/// loss has not improved by the relative `threshold` for `patience` epochs.
type ReduceDampingOnPlateau(optimizer: GroupedNewtonOptimizer, factor: float, patience: int, threshold: float, cooldown: int, applyToLambdaInt: bool) =
    do
        if not (factor > 0.0 && factor < 1.0) then invalidArg "factor" (sprintf "ReduceDampingOnPlateau: factor must be in (0, 1), got %g" factor)
        if patience < 0 then invalidArg "patience" (sprintf "ReduceDampingOnPlateau: patience must be non-negative, got %d" patience)
    let mutable best = Double.PositiveInfinity
    let mutable bad = 0
    let mutable cool = 0
    /// The paper's final-run settings: factor 0.5, patience 2, threshold 1e-4, cooldown 0, on damping.
    new(optimizer) = ReduceDampingOnPlateau(optimizer, 0.5, 2, 1e-4, 0, false)
    member _.Step(epochLoss: float) =
        if Double.IsNaN epochLoss then invalidArg "epochLoss" "ReduceDampingOnPlateau: the loss is NaN"
        if epochLoss < best * (1.0 - threshold) then
            best <- epochLoss
            bad <- 0
        else bad <- bad + 1
        if cool > 0 then
            cool <- cool - 1
            bad <- 0
        if bad > patience then
            if applyToLambdaInt then optimizer.LambdaInt <- optimizer.LambdaInt * factor
            else
                for s in 0 .. optimizer.Partition.Count - 1 do optimizer.SetDamping(s, optimizer.Damping.[s] * factor)
            cool <- cooldown
            bad <- 0
