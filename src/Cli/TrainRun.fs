/// One training run as the CLI runs it (used by `train` and by every run of `compare`):
/// builds the model and optimizer, resumes from the latest valid checkpoint when asked,
/// trains with the core's trainer (which writes the JSON-lines metrics and the checkpoints in
/// the core's format, with the run's settings and the curvature stream's position) and
/// appends the CSV metrics.
module GroupedNewton.Cli.TrainRun

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Threading
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Settings
open GroupedNewton.Cli.Progress

type RunSpec = {
    Task: TaskSettings
    Optimizer: string
    Hyper: Hyper
    Seed: int
    Out: string
    Resume: bool
    Policy: RunPolicy
    /// Label shown in progress lines.
    Label: string
}

type RunResult = {
    Optimizer: string
    Seed: int
    /// Metrics of the epochs this invocation ran.
    Epochs: EpochMetrics list
    /// Wall time of every step, in order.
    StepSeconds: float[]
    /// GroupedNewton: (step, per-subset learning rates) at every curvature update.
    RateHistory: (int * (string * float)[])[]
    Cancelled: bool
    Parameters: Parameters
    /// The checkpoint written last (None when no epoch completed).
    LastCheckpoint: string option
}

/// Test hook: milliseconds to wait after every step (the fault-injection tests slow a run
/// down to signal or kill it at a chosen step).
let mutable internal stepDelayMs = 0

let metricsJsonName = RunFolder.metricsJsonName
let metricsCsvName = RunFolder.metricsCsvName

/// The settings a run records in its checkpoints, by command-line option: everything that
/// decides the trajectory (not --epochs, not --threads).
let runSettings (spec: RunSpec) (dataset: string) (model: Model) (optimizer: OptimizerSettings) : (string * string) list =
    let t = spec.Task

    let opt (v: int option) =
        match v with
        | Some v -> string v
        | None -> "none"

    [
        yield "--model", model.Name
        yield "--dataset", dataset
        yield "--optimizer", spec.Optimizer
        yield "--seed", string spec.Seed
        yield "--batch-size", string t.BatchSize
        yield "--max-steps", opt t.MaxSteps
        yield "--samples", opt t.Samples
        yield "--dtype", string t.Dtype
        yield "--init", t.Init
        yield
            "--activation",
            (match t.Activation with
             | Some a -> (sprintf "%A" a).ToLowerInvariant()
             | None -> "default")
        if spec.Optimizer.StartsWith "grouped-newton" then
            yield "--partition", t.Partition
        for field, value in OptimizerCatalog.describe optimizer do
            yield OptimizerFactory.optionOf field, value
    ]
    |> List.sortBy fst

/// The differences between a checkpoint's settings and this run's, as "--x A, not B".
let differences (recorded: (string * string) list) (current: (string * string) list) : string list =
    let r = dict recorded

    [
        for name, value in current do
            match r.TryGetValue name with
            | true, v when v = value -> ()
            | true, v -> yield sprintf "%s %s, not %s" name v value
            | _ -> yield sprintf "%s (not recorded), not %s" name value
    ]

/// The newest checkpoint in the folder that reads back, with a message for each newer one
/// that does not (corrupt, truncated); UsageException when there is none.
let private newestValid (folder: string) (message: string -> unit) : CheckpointInfo =
    let rec go (files: string list) =
        match files with
        | [] -> None
        | f :: rest ->
            try
                Some(Checkpoint.readInfo f)
            with :? StateFormatException as e ->
                message (sprintf "warning: %s cannot be used (%s); trying the previous checkpoint" f e.Message)
                go rest

    match Checkpoint.all folder with
    | [] -> Fail.usage "--resume: there is no checkpoint (epoch-*.ckpt) in %s" folder
    | files ->
        match go files with
        | Some info -> info
        | None -> raise (StateFormatException(sprintf "--resume: no checkpoint in %s can be read (%d tried)" folder files.Length))

/// Runs one training. Stops between steps when `cancel` is signalled, keeping the last
/// complete checkpoint. Raises DivergenceException when the divergence guard stops the run.
let execute (data: Tasks.TaskData) (spec: RunSpec) (progress: IRunProgress) (cancel: CancellationToken) : RunResult =
    let optimizerSettings = OptimizerFactory.settings spec.Optimizer spec.Task.Model spec.Hyper
    spec.Task.Threads |> Option.iter BackendRegistry.setThreads
    let model = Tasks.model spec.Task data spec.Seed

    let curvature =
        CurvatureStream(model, data.Objective, data.Data.Train, spec.Task.BatchSize, spec.Task.Dtype)

    let optimizer = OptimizerCatalog.create optimizerSettings model spec.Task.Partition curvature.Next
    let settings = runSettings spec data.Dataset model optimizerSettings
    progress.Message(Tasks.describe model)
    RunFolder.create spec.Out
    // data-parallel hook: rank 0 alone locks, cleans and writes the run folder
    let root = Distributed.isRoot ()

    use _lock =
        if root then
            RunFolder.acquire spec.Out progress.Message :> IDisposable
        else
            {
                new IDisposable with
                    member _.Dispose() = ()
            }

    if root then
        for t in RunFolder.removeTemporaries spec.Out do
            progress.Message(sprintf "removed %s, left by an interrupted run" t)

    let jsonPath = Path.Combine(spec.Out, metricsJsonName)
    let csvPath = Path.Combine(spec.Out, metricsCsvName)

    let startEpoch, reference =
        if spec.Resume then
            let info = newestValid spec.Out progress.Message

            match differences info.Run.Settings settings with
            | [] -> ()
            | ds ->
                Fail.usage
                    "--resume: %s was written with %s (only --epochs and --threads may change when resuming)"
                    info.Path
                    (String.Join("; ", ds))

            let restored = Checkpoint.restore info.Path model optimizer (Some curvature)

            let cut =
                if root then
                    Metrics.truncateTo jsonPath restored.Epoch + RunFolder.truncateCsv csvPath restored.Epoch
                else
                    0

            if cut > 0 then
                progress.Message(sprintf "removed %d metrics lines of epochs after %d (not in the checkpoint)" cut restored.Epoch)

            progress.Message(sprintf "resuming from %s after epoch %d" info.Path restored.Epoch)
            restored.Epoch, restored.Run.ReferenceLoss
        else
            match RunFolder.runFiles spec.Out with
            | _ when not root -> 0, None
            | [] -> 0, None
            | files when spec.Policy.Overwrite ->
                progress.Message(sprintf "--overwrite: removing the earlier run in %s (%d files)" spec.Out files.Length)
                RunFolder.clear spec.Out
                0, None
            | files ->
                Fail.usage
                    "--out: %s already holds a run (%s); continue it with --resume, replace it with --overwrite, or choose another folder"
                    spec.Out
                    (String.Join(", ", files |> List.truncate 3 |> List.map Path.GetFileName))

    Distributed.barrier () // data-parallel hook: the folder is ready before any rank trains

    let options = {
        TrainerOptions.Defaults with
            Epochs = spec.Task.Epochs
            BatchSize = spec.Task.BatchSize
            Seed = spec.Seed
            Dtype = spec.Task.Dtype
            Objective = data.Objective
            MetricsPath = Some jsonPath
            CheckpointFolder = Some spec.Out
            DivergenceFactor = spec.Policy.DivergenceFactor
            ReferenceLoss = reference
            Curvature = Some curvature
            RunSettings = settings
    }

    let train = data.Data.Train
    let stepsPerEpoch = Loader.batchCount (Loader.defaults spec.Task.BatchSize) train
    progress.Start(spec.Label, startEpoch, spec.Task.Epochs, stepsPerEpoch)
    let clock = Stopwatch.StartNew()
    let stepSeconds = ResizeArray<float>()
    let mutable epochStepStart = 0
    let mutable lastCheckpoint = None

    let onEvent (e: TrainingEvent) =
        match e with
        | StepCompleted(epoch, step, loss) ->
            if stepDelayMs > 0 then
                Thread.Sleep stepDelayMs

            let dt = clock.Elapsed.TotalSeconds
            clock.Restart()
            stepSeconds.Add dt

            let size =
                int (min (int64 spec.Task.BatchSize) (int64 train.Count - int64 (step - 1) * int64 spec.Task.BatchSize))

            progress.Step(epoch, step, loss, (if dt > 0.0 then float size / dt else 0.0), OptimizerFactory.subsetRates optimizer)
        | EpochCompleted m ->
            let n = stepSeconds.Count - epochStepStart
            let mean = if n = 0 then nan else (Seq.sum (Seq.skip epochStepStart stepSeconds)) / float n
            epochStepStart <- stepSeconds.Count

            if root then
                MetricsCsv.append csvPath m mean // data-parallel hook: rank 0 writes

            progress.Epoch(m, OptimizerFactory.subsetRates optimizer)
            clock.Restart()
        | CheckpointWritten path ->
            // keep the new checkpoint and the one before it
            Checkpoint.prune spec.Out (defaultArg (Checkpoint.epochOfName path) 0) 1
            lastCheckpoint <- Some path
        | Warning text -> progress.Message("warning: " + text)

    let epochs = Trainer.run model optimizer options data.Data startEpoch onEvent cancel

    let history =
        match optimizer with
        | :? GroupedNewtonOptimizer as g -> g.History |> Array.map (fun h -> h.Step, h.LearningRates)
        | _ -> [||]

    {
        Optimizer = spec.Optimizer
        Seed = spec.Seed
        Epochs = epochs
        StepSeconds = stepSeconds.ToArray()
        RateHistory = history
        Cancelled = Distributed.anyRank cancel.IsCancellationRequested // data-parallel hook: agreed
        Parameters = optimizer.Parameters
        LastCheckpoint = lastCheckpoint
    }
