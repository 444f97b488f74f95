namespace GroupedNewton

open System

/// Multiplies every group's learning rate by gamma every `stepSize` epochs:
/// lr = initial · gamma^⌊epoch / stepSize⌋. Call `Step()` once per epoch.
type StepLR(optimizer: Optimizer, stepSize: int, gamma: float) =
    do
        if stepSize < 1 then
            invalidArg "stepSize" (sprintf "StepLR: stepSize must be at least 1, got %d" stepSize)

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

/// Multiplies the learning rates by `factor` when a metric (lower is better) has not
/// improved by more than the relative `threshold` for `patience` epochs, then waits
/// `cooldown` epochs; never below `minLearningRate`. Call `Step(metric)` once per epoch.
type ReduceLROnPlateau(optimizer: Optimizer, factor: float, patience: int, threshold: float, cooldown: int, minLearningRate: float) =
    do Plateau.validate "ReduceLROnPlateau" factor patience threshold
    let mutable state = PlateauState.Initial
    new(optimizer) = ReduceLROnPlateau(optimizer, 0.1, 10, 1e-4, 0, 0.0)
    member _.Best = state.Best

    member _.Step(metric: float) =
        if Double.IsNaN metric then
            invalidArg "metric" "ReduceLROnPlateau: the metric is NaN"

        let next, reduce = Plateau.step patience threshold cooldown state metric
        state <- next

        if reduce then
            for g in optimizer.Groups do
                g.LearningRate <- max minLearningRate (g.LearningRate * factor)

/// The same plateau rule applied to GroupedNewton's damping (or to λ_int): multiplies it by
/// `factor` when the epoch-mean training loss has not improved by the relative `threshold` for
/// `patience` epochs.
type ReduceDampingOnPlateau
    (optimizer: GroupedNewtonOptimizer, factor: float, patience: int, threshold: float, cooldown: int, applyToLambdaInt: bool) =
    do Plateau.validate "ReduceDampingOnPlateau" factor patience threshold
    let mutable state = PlateauState.Initial
    /// The paper's final-run settings: factor 0.5, patience 2, threshold 1e-4, cooldown 0, on damping.
    new(optimizer) = ReduceDampingOnPlateau(optimizer, 0.5, 2, 1e-4, 0, false)
    member _.Best = state.Best

    member _.Step(epochLoss: float) =
        if Double.IsNaN epochLoss then
            invalidArg "epochLoss" "ReduceDampingOnPlateau: the loss is NaN"

        let next, reduce = Plateau.step patience threshold cooldown state epochLoss
        state <- next

        if reduce then
            if applyToLambdaInt then
                optimizer.LambdaInt <- optimizer.LambdaInt * factor
            else
                for s in 0 .. optimizer.Partition.Count - 1 do
                    optimizer.SetDamping(s, optimizer.Damping.[s] * factor)
