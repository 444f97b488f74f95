namespace GroupedNewton

open System

/// Multiplies every group's learning rate by gamma every `stepSize` epochs:
/// lr = initial · gamma^⌊epoch / stepSize⌋. Call `Step()` once per epoch.
type StepLR(optimizer: Optimizer, stepSize: int, gamma: float) =
    do
        OptionChecks.atLeastOne "StepLR" "stepSize" stepSize

        if not (gamma > 0.0) then
            invalidArg "gamma" (sprintf "StepLR: gamma must be positive, got %g" gamma)

    let mutable epoch = 0
    member _.Epoch = epoch

    member _.Step() =
        epoch <- epoch + 1

        for g in optimizer.Groups do
            g.LearningRate <- g.InitialLearningRate * Math.Pow(gamma, float (epoch / stepSize))

/// The plateau rule shared by the schedulers below: a metric (lower is better) that has not
/// improved on its best by more than the relative `threshold` for more than `patience` calls
/// triggers a reduction, after which `cooldown` calls pass before counting again.
type PlateauState = {
    Best: float
    BadEpochs: int
    Cooldown: int
} with

    static member Initial = { Best = Double.PositiveInfinity; BadEpochs = 0; Cooldown = 0 }

module internal Plateau =
    /// Checks the rule's settings; `owner` names the scheduler in the messages.
    let validate (owner: string) (factor: float) (patience: int) (threshold: float) =
        if not (factor > 0.0 && factor < 1.0) then
            invalidArg "factor" (sprintf "%s: factor must be in (0, 1), got %g" owner factor)

        if patience < 0 then
            invalidArg "patience" (sprintf "%s: patience must be non-negative, got %d" owner patience)

        if not (threshold >= 0.0) then
            invalidArg "threshold" (sprintf "%s: threshold must be non-negative, got %g" owner threshold)

    /// The state after one metric, and whether to reduce now.
    let step (patience: int) (threshold: float) (cooldown: int) (s: PlateauState) (metric: float) =
        let improved = metric < s.Best * (1.0 - threshold) || Double.IsPositiveInfinity s.Best
        let best, bad = if improved then metric, 0 else s.Best, s.BadEpochs + 1
        let cool, bad = if s.Cooldown > 0 then s.Cooldown - 1, 0 else s.Cooldown, bad

        if bad > patience then
            { Best = best; BadEpochs = 0; Cooldown = cooldown }, true
        else
            { Best = best; BadEpochs = bad; Cooldown = cool }, false

/// One scheduler's plateau state across calls.
type internal PlateauTracker(patience: int, threshold: float, cooldown: int) =
    let mutable state = PlateauState.Initial
    member _.Best = state.Best

    /// Refuses a NaN metric (as argument `argName`, with `message`), advances the state and
    /// says whether to reduce now.
    member _.Observe(argName: string, message: string, metric: float) : bool =
        if Double.IsNaN metric then
            invalidArg argName message

        let next, reduce = Plateau.step patience threshold cooldown state metric
        state <- next
        reduce

/// Multiplies the learning rates by `factor` when a metric (lower is better) has not
/// improved by more than the relative `threshold` for `patience` epochs, then waits
/// `cooldown` epochs; never below `minLearningRate`. Call `Step(metric)` once per epoch.
type ReduceLROnPlateau(optimizer: Optimizer, factor: float, patience: int, threshold: float, cooldown: int, minLearningRate: float) =
    do Plateau.validate "ReduceLROnPlateau" factor patience threshold
    let tracker = PlateauTracker(patience, threshold, cooldown)
    new(optimizer) = ReduceLROnPlateau(optimizer, 0.1, 10, 1e-4, 0, 0.0)
    member _.Best = tracker.Best

    member _.Step(metric: float) =
        if tracker.Observe("metric", "ReduceLROnPlateau: the metric is NaN", metric) then
            for g in optimizer.Groups do
                g.LearningRate <- max minLearningRate (g.LearningRate * factor)

/// The same plateau rule applied to GroupedNewton's damping (or to λ_int): multiplies it by
/// `factor` when the epoch-mean training loss has not improved by the relative `threshold` for
/// `patience` epochs.
type ReduceDampingOnPlateau
    (optimizer: GroupedNewtonOptimizer, factor: float, patience: int, threshold: float, cooldown: int, applyToLambdaInt: bool) =
    do Plateau.validate "ReduceDampingOnPlateau" factor patience threshold
    let tracker = PlateauTracker(patience, threshold, cooldown)
    /// The paper's final-run settings: factor 0.5, patience 2, threshold 1e-4, cooldown 0, on damping.
    new(optimizer) = ReduceDampingOnPlateau(optimizer, 0.5, 2, 1e-4, 0, false)
    member _.Best = tracker.Best

    member _.Step(epochLoss: float) =
        if tracker.Observe("epochLoss", "ReduceDampingOnPlateau: the loss is NaN", epochLoss) then
            if applyToLambdaInt then
                optimizer.LambdaInt <- optimizer.LambdaInt * factor
            else
                for s in 0 .. optimizer.Partition.Count - 1 do
                    optimizer.SetDamping(s, optimizer.Damping.[s] * factor)

/// A per-step learning-rate schedule: a factor of the step t (the number of steps the
/// optimizer has completed, from 0); before step t every group's rate becomes its initial
/// rate times factor(t). Stateless: a resumed optimizer (its step count restored) gets the
/// rates an uninterrupted run would have. Schedules compose: `Times` multiplies two
/// factors, `Then` runs one schedule for a number of steps and the next one after it (its
/// steps counted from 0 again). It sets the rates itself, so it replaces what a per-epoch
/// scheduler (StepLR, ReduceLROnPlateau) set on the same optimizer. GroupedNewton computes
/// its rates at every step and is refused (schedule its damping with ReduceDampingOnPlateau).
[<RequireQualifiedAccess>]
type LearningRateSchedule =
    /// factor(t) = 1.
    | Constant
    /// factor(t) = start + (1 − start)·min(t, steps)/steps: from `startFactor` at step 0 up
    /// to 1 at step `steps`, then 1.
    | LinearWarmup of steps: int * startFactor: float
    /// factor(t) = min + (1 − min)·(1 + cos(π·min(t, steps)/steps))/2: from 1 at step 0
    /// down to `minFactor` at step `steps`, then `minFactor`.
    | Cosine of steps: int * minFactor: float
    /// factor(t) = first(t) · second(t).
    | Times of first: LearningRateSchedule * second: LearningRateSchedule
    /// factor(t) = first(t) for t < firstSteps, else next(t − firstSteps).
    | Then of first: LearningRateSchedule * firstSteps: int * next: LearningRateSchedule

/// Building, checking and applying per-step learning-rate schedules.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module LearningRateSchedule =

    /// A linear warm-up from `startFactor` (in [0, 1]) to 1 over `steps` (≥ 1) steps.
    let linearWarmup (steps: int) (startFactor: float) = LearningRateSchedule.LinearWarmup(steps, startFactor)

    /// A cosine decay from 1 to `minFactor` (in [0, 1]) over `steps` (≥ 1) steps.
    let cosine (steps: int) (minFactor: float) = LearningRateSchedule.Cosine(steps, minFactor)

    /// The product of two schedules' factors.
    let times (first: LearningRateSchedule) (second: LearningRateSchedule) = LearningRateSchedule.Times(first, second)

    /// `first` for `firstSteps` steps, then `next` from its own step 0: a warm-up followed
    /// by a cosine decay is `andThen (linearWarmup w 0.0) w (cosine t 0.0)`.
    let andThen (first: LearningRateSchedule) (firstSteps: int) (next: LearningRateSchedule) =
        LearningRateSchedule.Then(first, firstSteps, next)

    let private unit (what: string) (name: string) (v: float) =
        if not (v >= 0.0 && v <= 1.0) then
            invalidArg name (sprintf "LearningRateSchedule.%s: %s must be in [0, 1], got %g" what name v)

    let private positive (what: string) (name: string) (v: int) =
        if v < 1 then
            invalidArg name (sprintf "LearningRateSchedule.%s: %s must be at least 1, got %d" what name v)

    /// Raises ArgumentException naming the first bad value (a step count below 1, a factor
    /// outside [0, 1]).
    let rec validate (schedule: LearningRateSchedule) : unit =
        match schedule with
        | LearningRateSchedule.Constant -> ()
        | LearningRateSchedule.LinearWarmup(steps, start) ->
            positive "LinearWarmup" "steps" steps
            unit "LinearWarmup" "startFactor" start
        | LearningRateSchedule.Cosine(steps, minFactor) ->
            positive "Cosine" "steps" steps
            unit "Cosine" "minFactor" minFactor
        | LearningRateSchedule.Times(a, b) ->
            validate a
            validate b
        | LearningRateSchedule.Then(a, n, b) ->
            positive "Then" "firstSteps" n
            validate a
            validate b

    /// The factor before step `step` (from 0). Raises ArgumentException for a negative step.
    let rec factor (schedule: LearningRateSchedule) (step: int) : float =
        if step < 0 then
            invalidArg "step" (sprintf "LearningRateSchedule: the step must be non-negative, got %d" step)

        match schedule with
        | LearningRateSchedule.Constant -> 1.0
        | LearningRateSchedule.LinearWarmup(steps, start) -> start + (1.0 - start) * float (min step steps) / float steps
        | LearningRateSchedule.Cosine(steps, minFactor) ->
            minFactor
            + (1.0 - minFactor) * 0.5 * (1.0 + Math.Cos(Math.PI * float (min step steps) / float steps))
        | LearningRateSchedule.Times(a, b) -> factor a step * factor b step
        | LearningRateSchedule.Then(a, n, b) -> if step < n then factor a step else factor b (step - n)

    /// Raises ArgumentException for an optimizer whose rates are not set from outside
    /// (GroupedNewton computes them at every step).
    let checkOptimizer (_: LearningRateSchedule) (optimizer: Optimizer) =
        if optimizer :? GroupedNewtonOptimizer then
            invalidArg
                "optimizer"
                (sprintf
                    "LearningRateSchedule: %s computes its learning rates at every step, so a schedule would be overwritten; schedule its damping with ReduceDampingOnPlateau instead"
                    optimizer.Name)

    /// Sets every group's rate to its initial rate times factor(optimizer.StepCount): the
    /// rates of the optimizer's next step. Validates the schedule and the optimizer first.
    let apply (schedule: LearningRateSchedule) (optimizer: Optimizer) : unit =
        validate schedule
        checkOptimizer schedule optimizer
        let f = factor schedule optimizer.StepCount

        for g in optimizer.Groups do
            g.LearningRate <- g.InitialLearningRate * f
