namespace GroupedNewton

open System
open System.IO
open System.Text.Json

/// Loss and accuracy of a model on one data set.
type Evaluation =
    { Loss: float
      /// NaN when the objective has no accuracy.
      Accuracy: float }

/// What one epoch produced.
type EpochMetrics =
    { Epoch: int
      Steps: int
      Train: Evaluation
      Validation: Evaluation option
      Test: Evaluation option
      /// Seconds since the run (or the resumed run) started.
      WallSeconds: float
      /// Learning rate of each optimizer group at the end of the epoch.
      LearningRates: (string * float)[] }

/// Appends metrics as JSON lines (one object per epoch).
module Metrics =
    let private evalJson (w: Utf8JsonWriter) (prefix: string) (e: Evaluation option) =
        match e with
        | Some e ->
            w.WriteNumber(prefix + "_loss", e.Loss)
            if not (Double.IsNaN e.Accuracy) then w.WriteNumber(prefix + "_accuracy", e.Accuracy)
        | None -> ()

    /// One JSON object for an epoch.
    let toJson (m: EpochMetrics) =
        use ms = new MemoryStream()
        (use w = new Utf8JsonWriter(ms)
         w.WriteStartObject()
         w.WriteNumber("epoch", m.Epoch)
         w.WriteNumber("steps", m.Steps)
         evalJson w "train" (Some m.Train)
         evalJson w "validation" m.Validation
         evalJson w "test" m.Test
         w.WriteNumber("wall_seconds", m.WallSeconds)
         w.WriteStartObject("learning_rates")
         for name, lr in m.LearningRates do w.WriteNumber(name, lr)
         w.WriteEndObject()
         w.WriteEndObject())
        Text.Encoding.UTF8.GetString(ms.ToArray())

    /// Appends one line to a JSON-lines file (creating its folder).
    let append (path: string) (m: EpochMetrics) =
        match Path.GetDirectoryName(Path.GetFullPath path) with
        | null | "" -> ()
        | dir -> Directory.CreateDirectory dir |> ignore
        File.AppendAllText(path, toJson m + "\n")
