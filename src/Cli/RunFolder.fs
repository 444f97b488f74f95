/// The output folder of a run: its lock (one run per folder), what an earlier run left in it,
/// and the repairs a resumed run makes (metrics cut back to the checkpoint, stray
/// temporaries removed). The checkpoint format itself is the core's (Checkpoint).
module GroupedNewton.Cli.RunFolder

open System
open System.Diagnostics
open System.IO
open GroupedNewton

let metricsJsonName = "metrics.jsonl"
let metricsCsvName = "metrics.csv"
let lockName = ".lock"

/// Creates the folder, or raises UsageException saying what is wrong with --out.
let create (folder: string) =
    try
        Directory.CreateDirectory folder |> ignore
    with
    | :? UnauthorizedAccessException -> Fail.usage "--out: cannot create or write the folder '%s' (permission denied)" folder
    | :? IOException as e -> Fail.usage "--out: cannot create the folder '%s': %s" folder e.Message

/// The files of an earlier run in the folder (metrics and checkpoints).
let runFiles (folder: string) : string list =
    if not (Directory.Exists folder) then
        []
    else
        [
            for f in [ metricsJsonName; metricsCsvName ] do
                let p = Path.Combine(folder, f)

                if File.Exists p then
                    yield p
            yield! Checkpoint.all folder |> List.rev
        ]

/// Removes the files of an earlier run.
let clear (folder: string) =
    for f in runFiles folder do
        File.Delete f

let private alive (pid: int) =
    try
        use p = Process.GetProcessById pid
        not p.HasExited
    with _ ->
        false

/// A held lock on a run folder; Dispose releases it.
type Lock(path: string) =
    member _.Path = path

    interface IDisposable with
        member _.Dispose() =
            try
                File.Delete path
            with _ ->
                ()

/// Takes the folder's lock: a file holding this process's id, created atomically. A lock
/// held by a running process refuses the run (naming that process); a lock left by a
/// process that no longer runs is replaced, with a message.
let acquire (folder: string) (message: string -> unit) : Lock =
    let path = Path.Combine(folder, lockName)
    let me = Environment.ProcessId

    let rec attempt (tries: int) =
        try
            use f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None)
            use w = new StreamWriter(f)
            w.Write(sprintf "%d %s" me Environment.MachineName)
            new Lock(path)
        with :? IOException when File.Exists path && tries > 0 ->
            let text =
                try
                    File.ReadAllText path
                with _ ->
                    ""

            let pid =
                match text.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> Array.tryHead |> Option.map Int32.TryParse with
                | Some(true, p) -> Some p
                | _ -> None

            match pid with
            | Some p when p <> me && alive p ->
                raise (
                    IOException(
                        sprintf
                            "%s is in use by another run (process %d, lock file %s); wait for it to finish or choose another --out"
                            folder
                            p
                            path
                    )
                )
            | _ ->
                message (
                    sprintf
                        "removing the stale lock %s (%s)"
                        path
                        (match pid with
                         | Some p -> sprintf "process %d no longer runs" p
                         | None -> "unreadable")
                )

                (try
                    File.Delete path
                 with _ ->
                     ())

                attempt (tries - 1)

    attempt 2

/// Keeps the CSV rows of epochs at most `epoch` (the header stays; a torn row goes).
let truncateCsv (path: string) (epoch: int) : int =
    if not (File.Exists path) then
        0
    else
        let lines = File.ReadAllLines path

        if lines.Length = 0 then
            0
        else
            let width = lines.[0].Split(',').Length

            let keep =
                Array.append
                    [| lines.[0] |]
                    (lines.[1..]
                     |> Array.filter (fun l ->
                         match Int32.TryParse(l.Split(',').[0]) with
                         | true, e -> e <= epoch && l.Split(',').Length >= width
                         | _ -> false))

            if keep.Length <> lines.Length then
                let tmp = path + ".truncate.tmp"
                File.WriteAllLines(tmp, keep)
                File.Move(tmp, path, true)

            lines.Length - keep.Length

/// Removes what an interrupted run left behind (atomic-write temporaries); returns the names.
let removeTemporaries (folder: string) : string list =
    let truncations =
        Directory.GetFiles(folder, "*.truncate.tmp")
        |> Array.map (fun f ->
            File.Delete f
            Path.GetFileName f)

    Checkpoint.removeTemporaries folder
    @ [
        for t in truncations ->
            match t with
            | null -> ""
            | n -> n
    ]
