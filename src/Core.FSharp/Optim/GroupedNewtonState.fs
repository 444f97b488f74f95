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

/// What the Adaptive variant carries between steps (the other variants keep it at its start).
type AdaptiveState = {
    /// c_s per subset.
    Scales: float[]
    /// Σ over the period of cos(∇_s L, u_s of the step before), and the number of terms.
    CosineSum: float[]
    CosineCount: int
    /// The direction of the previous step (empty before the first step and after a restore).
    Previous: Tensor[]
    /// The parameter values at the last curvature update (empty before the first).
    Snapshot: Tensor[]
    /// The step count at which Snapshot was taken.
    SnapshotStep: int
    /// Whether the next step makes a curvature update whatever the period (after a restore).
    Force: bool
    /// Restores so far.
    Restores: int
} with

    static member Initial (subsets: int) (options: AdaptiveRateOptions) = {
        Scales = Array.create subsets options.InitialScale
        CosineSum = Array.zeroCreate subsets
        CosineCount = 0
        Previous = [||]
        Snapshot = [||]
        SnapshotStep = 0
        Force = false
        Restores = 0
    }

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
    /// The running average of the training loss (None before the first step): the paper's
    /// variants warn on a loss far above it, the adaptive one restores.
    LossAverage: float option
    Adaptive: AdaptiveState
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
        LossAverage = None
        Adaptive = AdaptiveState.Initial subsets options.Adaptive
    }

/// What one step needs besides the state: the point, the loss and gradient of the step's
/// batch there, and the summary of the next curvature batch for a direction u with the loss on
/// that same batch at other parameters (called only on curvature steps).
type GroupedNewtonInput = {
    Parameters: Parameters
    Loss: float
    Gradient: Parameters
    Summarise: Parameters -> PartitionSummary * (Parameters -> float)
}

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
