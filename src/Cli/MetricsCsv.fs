/// Epoch metrics as CSV rows (the JSON-lines file is written by the core's trainer).
module GroupedNewton.Cli.MetricsCsv

open System
open System.Globalization
open System.IO
open GroupedNewton

let private num (v: float) = if Double.IsNaN v then "" else v.ToString("R", CultureInfo.InvariantCulture)

/// Quotes a CSV field when it holds a comma, a quote or a line break.
let field (s: string) = if s.IndexOfAny([| ','; '"'; '\n'; '\r' |]) >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s

let private evalCols (e: Evaluation option) =
    match e with
    | Some e -> [ num e.Loss; num e.Accuracy ]
    | None -> [ ""; "" ]

/// The header for runs whose optimizer has these groups.
let header (groups: string[]) =
    String.Join(
        ",",
        [
            "epoch"
            "steps"
            "train_loss"
            "train_accuracy"
            "validation_loss"
            "validation_accuracy"
            "test_loss"
            "test_accuracy"
            "wall_seconds"
            "mean_step_seconds"
        ]
        @ [ for g in groups -> field ("lr:" + g) ]
    )

/// One row: the epoch's metrics and the mean time of its steps.
let row (m: EpochMetrics) (meanStepSeconds: float) =
    String.Join(
        ",",
        [ string m.Epoch; string m.Steps; num m.Train.Loss; num m.Train.Accuracy ]
        @ evalCols m.Validation
        @ evalCols m.Test
        @ [ num m.WallSeconds; num meanStepSeconds ]
        @ [ for _, lr in m.LearningRates -> num lr ]
    )

/// Appends a row, writing the header first when the file is new.
let append (path: string) (m: EpochMetrics) (meanStepSeconds: float) =
    let text =
        (if File.Exists path then "" else header (m.LearningRates |> Array.map fst) + "\n")
        + row m meanStepSeconds
        + "\n"

    File.AppendAllText(path, text)
