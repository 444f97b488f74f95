namespace GroupedNewton

open System
open System.IO
open System.Text.Json

/// Loss and accuracy of a model on one data set.
type Evaluation = {
    Loss: float
    /// NaN when the objective has no accuracy.
    Accuracy: float
}

/// What one epoch produced.
type EpochMetrics = {
    Epoch: int
    Steps: int
    Train: Evaluation
    Validation: Evaluation option
    Test: Evaluation option
    /// Seconds since the run (or the resumed run) started.
    WallSeconds: float
    /// Learning rate of each optimizer group at the end of the epoch.
    LearningRates: (string * float)[]
}

/// Appends metrics as JSON lines (one object per epoch). JSON has no number for NaN or
/// infinity: such a value is written as the string "NaN", "Infinity" or "-Infinity" (a
/// diverged run's losses, for example); every finite value is a JSON number.
module Metrics =
    /// Writes a number, or the string "NaN", "Infinity" or "-Infinity" for a non-finite one.
    let writeFloat (w: Utf8JsonWriter) (name: string) (v: float) =
        if Double.IsFinite v then w.WriteNumber(name, v)
        elif Double.IsNaN v then w.WriteString(name, "NaN")
        elif v > 0.0 then w.WriteString(name, "Infinity")
        else w.WriteString(name, "-Infinity")

    /// Reads a value written by `writeFloat`.
    let readFloat (e: JsonElement) : float =
        match e.ValueKind with
        | JsonValueKind.Number -> e.GetDouble()
        | JsonValueKind.String ->
            match e.GetString() with
            | "NaN" -> nan
            | "Infinity" -> infinity
            | "-Infinity" -> -infinity
            | s -> raise (FormatException(sprintf "'%s' is not a number" s))
        | k -> raise (FormatException(sprintf "a %O is not a number" k))

    let private evalJson (w: Utf8JsonWriter) (prefix: string) (e: Evaluation option) =
        match e with
        | Some e ->
            writeFloat w (prefix + "_loss") e.Loss

            if not (Double.IsNaN e.Accuracy) then
                writeFloat w (prefix + "_accuracy") e.Accuracy
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
         writeFloat w "wall_seconds" m.WallSeconds
         w.WriteStartObject("learning_rates")

         for name, lr in m.LearningRates do
             writeFloat w name lr

         w.WriteEndObject()
         w.WriteEndObject())

        Text.Encoding.UTF8.GetString(ms.ToArray())

    /// Appends one line to a JSON-lines file (creating its folder).
    let append (path: string) (m: EpochMetrics) =
        match Path.GetDirectoryName(Path.GetFullPath path) with
        | null
        | "" -> ()
        | dir -> Directory.CreateDirectory dir |> ignore

        File.AppendAllText(path, toJson m + "\n")

    /// Keeps the lines of a JSON-lines metrics file whose "epoch" is at most `epoch` (and
    /// drops a torn last line), so that a resumed run holds each completed epoch once.
    /// Returns the number of lines removed.
    let truncateTo (path: string) (epoch: int) : int =
        if not (File.Exists path) then
            0
        else
            let lines = File.ReadAllLines path

            let keep =
                lines
                |> Array.filter (fun l ->
                    try
                        use d = JsonDocument.Parse l
                        d.RootElement.GetProperty("epoch").GetInt32() <= epoch
                    with _ ->
                        false)

            if keep.Length <> lines.Length then
                let tmp = path + ".truncate.tmp"
                File.WriteAllLines(tmp, keep)
                File.Move(tmp, path, true)

            lines.Length - keep.Length
