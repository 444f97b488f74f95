/// `train`: one optimizer on one task, with live progress, metrics and checkpoints.
module GroupedNewton.Cli.TrainCommand

open System.IO
open System.Threading
open GroupedNewton.Cli.Settings

/// The folder a run writes to when --out is not given.
let defaultFolder (model: string) (dataset: string) (optimizer: string) =
    Path.Combine("runs", sprintf "%s-%s-%s" model dataset optimizer)

let run (s: TrainSettings) (out: TextWriter) (interactive: bool) (cancel: CancellationToken) : int =
    OptimizerFactory.check s.Optimizer
    let data = Tasks.load s.Task
    out.WriteLine data.Note
    let folder = defaultArg s.Out (defaultFolder s.Task.Model data.Dataset s.Optimizer)
    out.WriteLine(sprintf "optimizer %s, seed %d, %d epochs of batch %d, output in %s" s.Optimizer s.Seed s.Task.Epochs s.Task.BatchSize (Path.GetFullPath folder))
    let spec : TrainRun.RunSpec =
        { Task = s.Task; Optimizer = s.Optimizer; Hyper = s.Hyper; Seed = s.Seed; Out = folder; Resume = s.Resume
          Label = s.Optimizer }
    let result = Progress.run interactive out (fun p -> TrainRun.execute data spec p cancel)
    let last = match result.LastCheckpoint with Some c -> c | None -> "(none written by this invocation)"
    if result.Cancelled then
        out.WriteLine(sprintf "interrupted: the last complete checkpoint is %s; continue with --resume --out %s"
                          (match RunCheckpoint.latest folder with Some c -> c | None -> "(none)") folder)
        ExitCode.Cancelled
    else
        out.WriteLine(sprintf "metrics: %s and %s; last checkpoint: %s"
                          (Path.Combine(folder, TrainRun.metricsJsonName)) (Path.Combine(folder, TrainRun.metricsCsvName)) last)
        ExitCode.Ok
