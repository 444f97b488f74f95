/// `compare`: several optimizers on the same task and seeds; an HTML report with plots and
/// the summary table as markdown and CSV.
module GroupedNewton.Cli.CompareCommand

open System
open System.IO
open System.Threading
open GroupedNewton
open GroupedNewton.Cli.Settings
open GroupedNewton.Cli.Report

let reportName = "report.html"
let markdownName = "summary.md"
let csvName = "summary.csv"

/// An entry of --optimizers: a name, optionally with its own learning rate ("sgd@0.03").
let entry (hyper: Hyper) (o: string) : string * Hyper =
    match o.Split '@' with
    | [| name |] -> name, hyper
    | [| name; lr |] ->
        match Double.TryParse(lr, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
        | true, v when v >= 0.0 && Double.IsFinite v -> name, { hyper with LearningRate = Some v }
        | _ -> Fail.usage "--optimizers: '%s' has learning rate '%s', expected a non-negative number" o lr
    | _ -> Fail.usage "--optimizers: '%s' is not NAME or NAME@LR" o

let run (s: CompareSettings) (out: TextWriter) (err: TextWriter) (interactive: bool) (cancel: CancellationToken) : int =
    for o in s.Optimizers do
        OptimizerFactory.check (fst (entry s.Hyper o))

    TrainCommand.preflight s.Task [ for o in s.Optimizers -> entry s.Hyper o ] err
    let runFolder (o: string) (seed: int) = Path.Combine(s.Out, "runs", sprintf "%s-seed%d" o seed)

    if not s.Policy.Overwrite then
        let taken = [
            for o in s.Optimizers do
                for seed in s.Seeds do
                    if not (RunFolder.runFiles (runFolder o seed)).IsEmpty then
                        yield runFolder o seed
        ]

        if not taken.IsEmpty then
            Fail.usage
                "--out: %s already holds runs of an earlier comparison (%s); replace them with --overwrite or choose another folder"
                s.Out
                (String.Join(", ", taken |> List.truncate 3))

    let data = Tasks.load s.Task
    out.WriteLine data.Note
    RunFolder.create s.Out
    let started = DateTime.UtcNow

    let all = [
        for o in s.Optimizers do
            let runs = ResizeArray()
            let failures = ResizeArray()

            for seed in s.Seeds do
                if not cancel.IsCancellationRequested then
                    let name, hyper = entry s.Hyper o

                    let spec: TrainRun.RunSpec = {
                        Task = s.Task
                        Optimizer = name
                        Hyper = hyper
                        Seed = seed
                        Out = runFolder o seed
                        Resume = false
                        Policy = s.Policy
                        Label = sprintf "%s seed %d" o seed
                    }

                    try
                        let r = Progress.run interactive out (fun p -> TrainRun.execute data spec p cancel)

                        if not r.Cancelled then
                            runs.Add r
                    with
                    | :? OptimizationException as e ->
                        out.WriteLine(sprintf "%s seed %d failed: %s" o seed e.Message)
                        failures.Add((seed, e.Message))
                    | :? DivergenceException as e ->
                        // the run is listed as diverged; the comparison goes on
                        out.WriteLine(sprintf "%s seed %d %s" o seed e.Message)
                        failures.Add((seed, e.Message))

            yield {
                CompareReport.Optimizer = o
                CompareReport.Runs = List.ofSeq runs
                CompareReport.Failures = List.ofSeq failures
            }
    ]

    if cancel.IsCancellationRequested then
        out.WriteLine "interrupted: no report written (the completed runs are under runs/)"
        ExitCode.Cancelled
    elif not (Distributed.isRoot ()) then
        ExitCode.Ok // data-parallel hook: rank 0 writes the report
    else
        let notes = [
            data.Note
            sprintf
                "model %s, %d epochs, batch %d, partition %s, dtype %O, seeds %s"
                s.Task.Model
                s.Task.Epochs
                s.Task.BatchSize
                s.Task.Partition
                s.Task.Dtype
                (String.Join(", ", s.Seeds))
            sprintf "written %s UTC by groupednewton compare" (started.ToString("yyyy-MM-dd HH:mm"))
        ]

        File.WriteAllText(Path.Combine(s.Out, reportName), CompareReport.html "Optimizer comparison" notes all)
        let rows = CompareReport.tableRows all
        File.WriteAllText(Path.Combine(s.Out, markdownName), Html.markdown CompareReport.tableHeaders rows)
        File.WriteAllText(Path.Combine(s.Out, csvName), Html.csv CompareReport.tableHeaders rows)
        out.Write(Html.markdown CompareReport.tableHeaders rows)
        out.WriteLine(sprintf "report: %s" (Path.Combine(s.Out, reportName)))
        ExitCode.Ok
