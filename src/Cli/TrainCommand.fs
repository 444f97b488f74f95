/// `train`: one optimizer on one task, with live progress, metrics and checkpoints.
module GroupedNewton.Cli.TrainCommand

open System
open System.IO
open System.Threading
open GroupedNewton
open GroupedNewton.Cli.Settings

/// The folder a run writes to when --out is not given.
let defaultFolder (model: string) (dataset: string) (optimizer: string) = Path.Combine("runs", sprintf "%s-%s-%s" model dataset optimizer)

/// Warnings for options given on the command line that the model or optimizer does not use.
let unusedWarnings (task: TaskSettings) (optimizers: string list) (hyper: Hyper) : string list = [
    if task.Model <> "mlp" && List.contains "--hidden" task.Given then
        yield sprintf "--hidden does not apply to --model %s (only the mlp has hidden sizes); ignored" task.Model
    for o in optimizers do
        match OptimizerFactory.unusedOptions o hyper task with
        | [] -> ()
        | names ->
            yield
                sprintf
                    "%s %s not apply to --optimizer %s; ignored"
                    (String.Join(", ", names))
                    (if names.Length = 1 then "does" else "do")
                    o
]

/// Checks made before any work: the optimizer's values, the sizes, the warnings.
let preflight (task: TaskSettings) (optimizers: (string * Hyper) list) (err: TextWriter) =
    for name, hyper in optimizers do
        OptimizerFactory.settings name task.Model hyper |> ignore

    Tasks.checkSizes task

    for w in
        unusedWarnings
            task
            (List.map fst optimizers)
            (optimizers |> List.map snd |> List.tryHead |> Option.defaultValue OptimizerOverrides.None) do
        err.WriteLine("warning: " + w)

let run (s: TrainSettings) (out: TextWriter) (err: TextWriter) (interactive: bool) (cancel: CancellationToken) : int =
    OptimizerFactory.check s.Optimizer
    preflight s.Task [ s.Optimizer, s.Hyper ] err
    let data = Tasks.load s.Task
    out.WriteLine data.Note
    let folder = defaultArg s.Out (defaultFolder s.Task.Model data.Dataset s.Optimizer)

    out.WriteLine(
        sprintf
            "optimizer %s, seed %d, %d epochs of batch %d, output in %s"
            s.Optimizer
            s.Seed
            s.Task.Epochs
            s.Task.BatchSize
            (Path.GetFullPath folder)
    )

    let spec: TrainRun.RunSpec = {
        Task = s.Task
        Optimizer = s.Optimizer
        Hyper = s.Hyper
        Seed = s.Seed
        Out = folder
        Resume = s.Resume
        Policy = s.Policy
        Label = s.Optimizer
    }

    let result = Progress.run interactive out (fun p -> TrainRun.execute data spec p cancel)

    let last =
        match result.LastCheckpoint with
        | Some c -> c
        | None -> "(none written by this invocation)"

    if result.Cancelled then
        match Checkpoint.latest folder with
        | Some c -> out.WriteLine(sprintf "interrupted: the last complete checkpoint is %s; continue with --resume --out %s" c folder)
        | None -> out.WriteLine "interrupted before the first checkpoint: nothing was saved; start the run again (without --resume)"

        ExitCode.Cancelled
    else
        out.WriteLine(
            sprintf
                "metrics: %s and %s; last checkpoint: %s"
                (Path.Combine(folder, TrainRun.metricsJsonName))
                (Path.Combine(folder, TrainRun.metricsCsvName))
                last
        )

        ExitCode.Ok
