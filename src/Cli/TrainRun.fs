/// One training run as the CLI runs it (used by `train` and by every run of `compare`):
/// builds the model and optimizer, resumes from the latest checkpoint when asked, trains
/// with the core's trainer and writes metrics (JSON lines and CSV) and a checkpoint per
/// epoch into the run's folder.
module GroupedNewton.Cli.TrainRun

open System
open System.Diagnostics
open System.IO
open System.Threading
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Settings
open GroupedNewton.Cli.Progress

type RunSpec =
    { Task: TaskSettings
      Optimizer: string
      Hyper: Hyper
      Seed: int
      Out: string
      Resume: bool
      /// Label shown in progress lines.
      Label: string }

type RunResult =
    { Optimizer: string
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
      LastCheckpoint: string option }

let metricsJsonName = "metrics.jsonl"
let metricsCsvName = "metrics.csv"

/// Removes the files of an earlier run in `folder` (metrics and checkpoints).
let private clearRun (folder: string) =
    for f in [ metricsJsonName; metricsCsvName ] do
        let p = Path.Combine(folder, f)
        if File.Exists p then File.Delete p
    for f in Directory.GetFiles(folder, "epoch-*.ckpt") do File.Delete f

/// Runs one training. Stops between steps when `cancel` is signalled, keeping the last
/// complete checkpoint.
let execute (data: Tasks.TaskData) (spec: RunSpec) (progress: IRunProgress) (cancel: CancellationToken) : RunResult =
    OptimizerFactory.check spec.Optimizer
    spec.Task.Threads |> Option.iter BackendRegistry.setThreads
    let model = Tasks.model spec.Task data spec.Seed
    let curvature = CurvatureSource(model, data.Objective, data.Data.Train, spec.Task.BatchSize, spec.Task.Dtype)
    let optimizer =
        OptimizerFactory.create spec.Optimizer { Model = model; Partition = spec.Task.Partition; Hyper = spec.Hyper; Curvature = curvature }
    Directory.CreateDirectory spec.Out |> ignore
    let startEpoch =
        if spec.Resume then
            match RunCheckpoint.latest spec.Out with
            | None -> Fail.usage "--resume: there is no checkpoint (epoch-*.ckpt) in %s" spec.Out
            | Some path ->
                let info = RunCheckpoint.readInfo path
                if info.Seed <> spec.Seed then Fail.usage "--resume: %s was written with --seed %d, not %d" path info.Seed spec.Seed
                if info.Optimizer <> spec.Optimizer then
                    Fail.usage "--resume: %s was written by optimizer '%s', not '%s'" path info.Optimizer spec.Optimizer
                if info.Dataset <> data.Dataset then
                    Fail.usage "--resume: %s was written for data set '%s', not '%s'" path info.Dataset data.Dataset
                let epoch = Checkpoint.load path model optimizer
                curvature.Position <- info.CurvaturePosition
                progress.Message(sprintf "resuming from %s after epoch %d" path epoch)
                epoch
        else
            if Distributed.isRoot () then clearRun spec.Out  // data-parallel hook: rank 0 writes
            Distributed.barrier ()
            0
    let options =
        { TrainerOptions.Defaults with
            Epochs = spec.Task.Epochs
            BatchSize = spec.Task.BatchSize
            Seed = spec.Seed
            Dtype = spec.Task.Dtype
            Objective = data.Objective
            MetricsPath = Some(Path.Combine(spec.Out, metricsJsonName))
            CheckpointFolder = None }
    let train = data.Data.Train
    let stepsPerEpoch = Loader.batchCount (Loader.defaults spec.Task.BatchSize) train
    progress.Start(spec.Label, startEpoch, spec.Task.Epochs, stepsPerEpoch)
    let clock = Stopwatch.StartNew()
    let stepSeconds = ResizeArray<float>()
    let mutable epochStepStart = 0
    let mutable lastCheckpoint = None
    let onEvent (e: TrainingEvent) =
        match e with
        | StepCompleted (epoch, step, loss) ->
            let dt = clock.Elapsed.TotalSeconds
            clock.Restart()
            stepSeconds.Add dt
            let size = min spec.Task.BatchSize (train.Count - (step - 1) * spec.Task.BatchSize)
            progress.Step(epoch, step, loss, (if dt > 0.0 then float size / dt else 0.0), OptimizerFactory.subsetRates optimizer)
        | EpochCompleted m ->
            let n = stepSeconds.Count - epochStepStart
            let mean = if n = 0 then nan else (Seq.sum (Seq.skip epochStepStart stepSeconds)) / float n
            epochStepStart <- stepSeconds.Count
            let info : RunCheckpoint.RunInfo = { Seed = spec.Seed; Optimizer = spec.Optimizer; Dataset = data.Dataset; CurvaturePosition = curvature.Position }
            if Distributed.isRoot () then  // data-parallel hook: rank 0 writes
                MetricsCsv.append (Path.Combine(spec.Out, metricsCsvName)) m mean
                lastCheckpoint <- Some(RunCheckpoint.save spec.Out m.Epoch model optimizer info)
            else lastCheckpoint <- Some(Checkpoint.fileFor spec.Out m.Epoch)
            progress.Epoch(m, OptimizerFactory.subsetRates optimizer)
            clock.Restart()
        | CheckpointWritten _ -> ()
    let epochs = Trainer.run model optimizer options data.Data startEpoch onEvent cancel
    let history =
        match optimizer with
        | :? GroupedNewtonOptimizer as g -> g.History |> Array.map (fun h -> h.Step, h.LearningRates)
        | _ -> [||]
    { Optimizer = spec.Optimizer
      Seed = spec.Seed
      Epochs = epochs
      StepSeconds = stepSeconds.ToArray()
      RateHistory = history
      Cancelled = Distributed.anyRank cancel.IsCancellationRequested  // data-parallel hook: agreed
      Parameters = optimizer.Parameters
      LastCheckpoint = lastCheckpoint }
