namespace GroupedNewton

open System

/// Multiplies every group's learning rate by gamma every `stepSize` epochs:
/// lr = initial · gamma^⌊epoch / stepSize⌋. Call `Step()` once per epoch.
type StepLR(optimizer: Optimizer, stepSize: int, gamma: float) =
    do
        if stepSize < 1 then invalidArg "stepSize" (sprintf "StepLR: stepSize must be at least 1, got %d" stepSize)
        if not (gamma > 0.0) then invalidArg "gamma" (sprintf "StepLR: gamma must be positive, got %g" gamma)
    let mutable epoch = 0
    member _.Epoch = epoch
    member _.Step() =
        epoch <- epoch + 1
        for g in optimizer.Groups do
            g.LearningRate <- g.InitialLearningRate * Math.Pow(gamma, float (epoch / stepSize))

/// Multiplies the learning rates by `factor` when a metric (lower is better) has not
/// improved by more than the relative `threshold` for `patience` epochs, then waits
/// `cooldown` epochs; never below `minLearningRate`. Call `Step(metric)` once per epoch.
type ReduceLROnPlateau(optimizer: Optimizer, factor: float, patience: int, threshold: float, cooldown: int, minLearningRate: float) =
    do
        if not (factor > 0.0 && factor < 1.0) then invalidArg "factor" (sprintf "ReduceLROnPlateau: factor must be in (0, 1), got %g" factor)
        if patience < 0 then invalidArg "patience" (sprintf "ReduceLROnPlateau: patience must be non-negative, got %d" patience)
        if threshold < 0.0 then invalidArg "threshold" (sprintf "ReduceLROnPlateau: threshold must be non-negative, got %g" threshold)
    let mutable best = Double.PositiveInfinity
    let mutable bad = 0
    let mutable cool = 0
    new(optimizer) = ReduceLROnPlateau(optimizer, 0.1, 10, 1e-4, 0, 0.0)
    member _.Best = best
    member _.Step(metric: float) =
        if Double.IsNaN metric then invalidArg "metric" "ReduceLROnPlateau: the metric is NaN"
        if metric < best * (1.0 - threshold) || Double.IsPositiveInfinity best then
            best <- metric
            bad <- 0
        else bad <- bad + 1
        if cool > 0 then
            cool <- cool - 1
            bad <- 0
        if bad > patience then
            for g in optimizer.Groups do
                g.LearningRate <- max minLearningRate (g.LearningRate * factor)
            cool <- cooldown
            bad <- 0
