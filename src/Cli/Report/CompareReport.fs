/// The comparison report: curves averaged over seeds (one per optimizer), GroupedNewton's
/// per-subset learning rates over steps, time per step, and the summary table.
module GroupedNewton.Cli.Report.CompareReport

open System
open GroupedNewton
open GroupedNewton.Cli.TrainRun
open GroupedNewton.Cli.Report.Svg

/// The runs of one optimizer (one per seed) and the failures (seed, message).
type OptimizerRuns = { Optimizer: string; Runs: RunResult list; Failures: (int * string) list }

let private mean (xs: float list) = if xs.IsEmpty then nan else List.average xs

let private spread (xs: float list) =
    match xs with
    | []
    | [ _ ] -> 0.0
    | _ ->
        let m = List.average xs
        Math.Sqrt((xs |> List.sumBy (fun x -> (x - m) * (x - m))) / float (xs.Length - 1))

/// Per epoch, the mean over seeds of `pick` (epochs that every run reached).
let private perEpoch (runs: RunResult list) (pick: EpochMetrics -> float) =
    if runs.IsEmpty then
        [||]
    else
        let n = runs |> List.map (fun r -> r.Epochs.Length) |> List.min

        Array.init n (fun i ->
            let ms = runs |> List.map (fun r -> r.Epochs.[i])
            float ms.Head.Epoch, mean (ms |> List.map pick))

let private evalLoss (e: Evaluation option) =
    match e with
    | Some e -> e.Loss
    | None -> nan

let private evalAcc (e: Evaluation option) =
    match e with
    | Some e -> e.Accuracy
    | None -> nan

/// The final value of `pick` in each run.
let private finals (runs: RunResult list) (pick: EpochMetrics -> float) =
    runs |> List.choose (fun r -> List.tryLast r.Epochs) |> List.map pick |> List.filter Double.IsFinite

let private pm (xs: float list) (digits: int) =
    if xs.IsEmpty then
        "–"
    else
        let fmt = "F" + string digits
        sprintf "%s ± %s" ((mean xs).ToString(fmt)) ((spread xs).ToString(fmt))

let tableHeaders = [
    "optimizer"
    "seeds"
    "final train loss"
    "final validation loss"
    "test accuracy"
    "time per epoch (s)"
    "time per step (ms)"
]

/// One row per optimizer: means ± sample standard deviations over seeds.
let tableRows (all: OptimizerRuns list) =
    all
    |> List.map (fun o ->
        let rs = o.Runs

        let perEpochTime =
            rs
            |> List.choose (fun r -> List.tryLast r.Epochs |> Option.map (fun m -> m.WallSeconds / float r.Epochs.Length))

        let stepMs =
            rs
            |> List.map (fun r -> if r.StepSeconds.Length = 0 then nan else 1000.0 * Array.average r.StepSeconds)
            |> List.filter Double.IsFinite

        [
            o.Optimizer
            (let diverged = o.Failures |> List.filter (fun (_, m) -> m.StartsWith "diverged") |> List.length
             let failed = o.Failures.Length - diverged

             match diverged, failed with
             | 0, 0 -> string rs.Length
             | 0, f -> sprintf "%d (%d failed)" rs.Length f
             | d, 0 -> sprintf "%d (%d diverged)" rs.Length d
             | d, f -> sprintf "%d (%d diverged, %d failed)" rs.Length d f)
            pm (finals rs (fun m -> m.Train.Loss)) 4
            pm (finals rs (fun m -> evalLoss m.Validation)) 4
            pm (finals rs (fun m -> evalAcc m.Test)) 4
            pm perEpochTime 2
            pm stepMs 1
        ])

/// The charts whose curves are one per optimizer.
let optimizerCharts (all: OptimizerRuns list) =
    let series (pick: EpochMetrics -> float) = all |> List.map (fun o -> { Label = o.Optimizer; Points = perEpoch o.Runs pick })

    let vsTime (pick: EpochMetrics -> float) =
        all
        |> List.map (fun o ->
            let t = perEpoch o.Runs (fun m -> m.WallSeconds)
            let v = perEpoch o.Runs pick
            { Label = o.Optimizer; Points = Array.map2 (fun (_, x) (_, y) -> x, y) t v })

    let hasAccuracy =
        all
        |> List.exists (fun o -> o.Runs |> List.exists (fun r -> r.Epochs |> List.exists (fun m -> Double.IsFinite m.Train.Accuracy)))

    [
        yield lineChart "Training loss" "epoch" "loss" true (series (fun m -> m.Train.Loss))
        yield lineChart "Validation loss" "epoch" "loss" true (series (fun m -> evalLoss m.Validation))
        if hasAccuracy then
            yield lineChart "Training accuracy" "epoch" "accuracy" false (series (fun m -> m.Train.Accuracy))
            yield lineChart "Validation accuracy" "epoch" "accuracy" false (series (fun m -> evalAcc m.Validation))
        yield lineChart "Training loss vs wall time" "seconds" "loss" true (vsTime (fun m -> m.Train.Loss))
        yield lineChart "Validation loss vs wall time" "seconds" "loss" true (vsTime (fun m -> evalLoss m.Validation))
        if hasAccuracy then
            yield lineChart "Validation accuracy vs wall time" "seconds" "accuracy" false (vsTime (fun m -> evalAcc m.Validation))
        yield
            lineChart
                "Time per step (first seed)"
                "step"
                "milliseconds"
                false
                (all
                 |> List.map (fun o -> {
                     Label = o.Optimizer
                     Points =
                         match o.Runs with
                         | r :: _ -> r.StepSeconds |> Array.mapi (fun i s -> float (i + 1), 1000.0 * s)
                         | [] -> [||]
                 }))
    ]

/// GroupedNewton's per-subset learning rates over steps (first seed), one chart per
/// GroupedNewton optimizer, one curve per subset.
let rateCharts (all: OptimizerRuns list) =
    all
    |> List.choose (fun o ->
        match o.Runs with
        | r :: _ when r.RateHistory.Length > 0 ->
            let names = (snd r.RateHistory.[0]) |> Array.map fst

            let series =
                names
                |> Array.mapi (fun s n -> {
                    Label = n
                    Points = r.RateHistory |> Array.map (fun (step, rates) -> float step, snd rates.[s])
                })

            Some(
                lineChart
                    (sprintf "%s: per-subset learning rates (seed %d)" o.Optimizer r.Seed)
                    "step"
                    "learning rate"
                    true
                    (List.ofArray series)
            )
        | _ -> None)

/// The whole HTML page.
let html (title: string) (notes: string list) (all: OptimizerRuns list) =
    let failures =
        all
        |> List.collect (fun o -> o.Failures |> List.map (fun (seed, msg) -> sprintf "%s, seed %d: %s" o.Optimizer seed msg))

    Html.page title [
        yield "Settings", String.Join("\n", notes |> List.map Html.paragraph)
        yield
            "Summary",
            Html.table tableHeaders (tableRows all)
            + Html.paragraph
                "mean ± sample standard deviation over seeds; test accuracy after the last epoch; time per epoch includes evaluation."
        if not failures.IsEmpty then
            yield "Failed and diverged runs", String.Join("\n", failures |> List.map Html.paragraph)
        yield "Loss and accuracy (mean over seeds)", Html.plots (optimizerCharts all)
        match rateCharts all with
        | [] -> ()
        | charts -> yield "GroupedNewton learning rates", Html.plots charts
    ]
