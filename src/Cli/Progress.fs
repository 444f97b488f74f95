/// Live progress of training: a Spectre.Console progress display when the output is a
/// terminal, plain lines otherwise (logs, pipes, tests).
module GroupedNewton.Cli.Progress

open System
open System.IO
open GroupedNewton
open Spectre.Console

/// What a run reports while it trains.
type IRunProgress =
    /// A run starts: its label, the epochs it will run and the steps in one epoch.
    abstract Start: label: string * firstEpoch: int * epochs: int * stepsPerEpoch: int -> unit
    /// A step finished: the epoch, the step within it, its loss, the throughput
    /// (samples per second) and GroupedNewton's per-subset learning rates (else empty).
    abstract Step: epoch: int * step: int * loss: float * samplesPerSecond: float * rates: (string * float)[] -> unit
    /// An epoch finished.
    abstract Epoch: metrics: EpochMetrics * rates: (string * float)[] -> unit
    /// A free-form line.
    abstract Message: text: string -> unit

let private rateText (maxShown: int) (rates: (string * float)[]) =
    if rates.Length = 0 then
        ""
    else
        let shown = rates |> Array.truncate maxShown |> Array.map (fun (n, r) -> sprintf "%s=%.3g" n r)
        let more = if rates.Length > maxShown then sprintf " (+%d)" (rates.Length - maxShown) else ""
        " lr[" + String.Join(" ", shown) + more + "]"

/// One line for a finished epoch.
let epochLine (label: string) (epochs: int) (m: EpochMetrics) (rates: (string * float)[]) =
    let ev (name: string) (e: Evaluation option) =
        match e with
        | Some e when Double.IsNaN e.Accuracy -> sprintf "  %s loss %.4f" name e.Loss
        | Some e -> sprintf "  %s loss %.4f acc %.4f" name e.Loss e.Accuracy
        | None -> ""

    sprintf
        "%sepoch %d/%d done: %d steps  train loss %.4f%s%s%s  %.1f s%s"
        (if label = "" then "" else label + ": ")
        m.Epoch
        epochs
        m.Steps
        m.Train.Loss
        (if Double.IsNaN m.Train.Accuracy then "" else sprintf " acc %.4f" m.Train.Accuracy)
        (ev "validation" m.Validation)
        (ev "test" m.Test)
        m.WallSeconds
        (rateText 8 rates)

/// The run being shown, as `Start` announced it: its label, epochs and steps per epoch.
type private RunShape() =
    member val Label = "" with get, set
    member val Epochs = 0 with get, set
    member val Steps = 0 with get, set

    member r.Set(label, epochs, steps) =
        r.Label <- label
        r.Epochs <- epochs
        r.Steps <- steps

/// Plain lines: one at each quarter of an epoch and one per finished epoch.
type PlainProgress(out: TextWriter) =
    let run = RunShape()

    interface IRunProgress with
        member _.Start(l, first, e, s) =
            run.Set(l, e, s)
            out.WriteLine(sprintf "%s: epochs %d..%d, %d steps per epoch" l (first + 1) e s)

        member _.Step(epoch, step, loss, sps, rates) =
            let every = max 1 (run.Steps / 4)

            if step % every = 0 && step < run.Steps then
                out.WriteLine(
                    sprintf
                        "%s: epoch %d/%d step %d/%d  loss %.4f  %.0f samples/s%s"
                        run.Label
                        epoch
                        run.Epochs
                        step
                        run.Steps
                        loss
                        sps
                        (rateText 8 rates)
                )

        member _.Epoch(m, rates) = out.WriteLine(epochLine run.Label run.Epochs m rates)
        member _.Message(text) = out.WriteLine text

/// A Spectre.Console progress display; `Run` drives the training inside it.
type private LiveProgress(ctx: ProgressContext) =
    let mutable task: ProgressTask | null = null
    let run = RunShape()

    interface IRunProgress with
        member _.Start(l, first, e, s) =
            run.Set(l, e, s)
            AnsiConsole.MarkupLine(sprintf "[bold]%s[/]: epochs %d..%d, %d steps per epoch" (Markup.Escape l) (first + 1) e s)

        member _.Step(epoch, step, loss, sps, rates) =
            let t =
                match task with
                | null ->
                    let t = ctx.AddTask(Markup.Escape run.Label, true, float run.Steps)
                    task <- t
                    t
                | t -> t

            if step = 1 then
                t.Value <- 0.0

            t.Value <- float step
            // the description shares the line with the bar, percentage and time columns
            let room = max 30 (AnsiConsole.Profile.Width - 40)
            let text = sprintf "%s %d/%d loss %.4f %.0f/s%s" run.Label epoch run.Epochs loss sps (rateText 4 rates)
            t.Description <- Markup.Escape(if text.Length > room then text.Substring(0, room - 1) + "…" else text)

        member _.Epoch(m, rates) = AnsiConsole.MarkupLine(Markup.Escape(epochLine run.Label run.Epochs m rates))
        member _.Message(text) = AnsiConsole.MarkupLine(Markup.Escape text)

/// Runs `f` with a progress reporter: live when `interactive`, else plain lines on `out`.
let run (interactive: bool) (out: TextWriter) (f: IRunProgress -> 'T) : 'T =
    if interactive then
        let mutable result = Unchecked.defaultof<'T>

        AnsiConsole
            .Progress()
            .AutoClear(false)
            .Columns(
                [|
                    TaskDescriptionColumn() :> ProgressColumn
                    ProgressBarColumn()
                    PercentageColumn()
                    ElapsedTimeColumn()
                |]
            )
            .Start(fun ctx -> result <- f (LiveProgress ctx))

        result
    else
        f (PlainProgress out)
