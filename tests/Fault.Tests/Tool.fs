/// The fault tests' side of running the real `groupednewton` tool in a child process (the
/// process itself is TestSupport.ChildProcess): its output, exit code and whether it finished
/// in time; killing it (SIGKILL) or signalling it (SIGINT, SIGTERM) at a chosen point of its
/// output; reading the run folder it wrote.
module GroupedNewton.Fault.Tests.Tool

open System.IO
open System.Text
open GroupedNewton.TestSupport

/// The tiny task the tool trains (TestSupport.TinyTask).
let tinyTask = TinyTask.args

/// A fresh temporary folder (removed when the test run ends).
let tempFolder () = TempFolders.create "gn-fault-tests"

/// The tool in a child process, with its output collected as it comes.
type Child(args: string list, env: (string * string) list) =
    // `env --default-signal` undoes an inherited "ignore SIGINT" (a test run started in the
    // background of a non-interactive shell), which .NET would otherwise keep, so that the
    // signal tests see the tool's own handling
    inherit
        ChildProcess.Child(
            {
                ChildProcess.command "env" ([ "--default-signal=INT,TERM"; ChildProcess.dotnet; ChildProcess.toolDll ] @ args) with
                    // the child sees only the settings the test gives it
                    Unset = [ "GROUPEDNEWTON_DATA"; "GROUPEDNEWTON_THREADS"; "GROUPEDNEWTON_BLAS"; "GROUPEDNEWTON_TEST_HOOK" ]
                    Env = env
            }
        )

    /// SIGKILL: the process ends at once, without running any of its code.
    member c.KillHard() = c.Kill()

/// Sends a POSIX signal (2 = SIGINT, 15 = SIGTERM) to a child.
let signal (c: Child) (signalNumber: int) = c.Signal signalNumber

/// Makes a FIFO at `path` with mkfifo; its exit code (0: made).
let mkfifo (path: string) =
    use c = new ChildProcess.Child(ChildProcess.command "mkfifo" [ path ])

    match c.Wait 30000 with
    | Some code -> code
    | None -> failwith (c.TimeoutReport 30000)

/// What a finished run gave.
type Outcome = {
    Code: int option
    Out: string
    Err: string
} with

    /// Exited within the time limit.
    member o.Finished = o.Code.IsSome
    member o.Text = o.Out + "\n" + o.Err

/// Seconds a child may take before the run counts as a hang.
let HangSeconds = 60

/// Runs the tool to its end (or to the hang limit).
let runWith (env: (string * string) list) (args: string list) : Outcome =
    use c = new Child(args, env)
    let code = c.Wait(HangSeconds * 1000)
    { Code = code; Out = c.Out; Err = c.Err }

let run (args: string list) = runWith [] args

/// The files of a folder with their contents, to check that nothing changed.
let snapshot (folder: string) : Map<string, byte[]> =
    // the lock file is the run's own bookkeeping, not a result
    Directory.GetFiles folder
    |> Array.filter (fun f -> Path.GetFileName f <> ".lock")
    |> Array.map (fun f -> Path.GetFileName f, File.ReadAllBytes f)
    |> Map.ofArray

/// Whether two snapshots hold the same files with the same bytes.
let sameFiles (a: Map<string, byte[]>) (b: Map<string, byte[]>) =
    a.Count = b.Count
    && a
       |> Map.forall (fun k v ->
           match b.TryFind k with
           | Some w -> v = w
           | None -> false)

/// The epochs recorded in a JSON-lines metrics file, in order.
let metricEpochs (folder: string) =
    let p = Path.Combine(folder, "metrics.jsonl")

    if not (File.Exists p) then
        [||]
    else
        File.ReadAllLines p
        |> Array.map (fun l -> Json.JsonDocument.Parse(l).RootElement.GetProperty("epoch").GetInt32())

/// The epochs of the CSV rows (after the header).
let csvEpochs (folder: string) =
    let p = Path.Combine(folder, "metrics.csv")

    if not (File.Exists p) then
        [||]
    else
        File.ReadAllLines p |> Array.skip 1 |> Array.map (fun l -> int (l.Split(',').[0]))

/// A metrics line without its wall-clock fields (which differ between runs).
let private withoutTimes (line: string) =
    let d = Json.JsonDocument.Parse line

    [
        for p in d.RootElement.EnumerateObject() do
            if p.Name <> "wall_seconds" then
                yield p.Name, p.Value.GetRawText()
    ]

/// The metrics of two run folders agree line for line (bit-identical values), times aside.
let sameMetrics (a: string) (b: string) =
    let lines f = File.ReadAllLines(Path.Combine(f, "metrics.jsonl")) |> Array.map withoutTimes
    lines a = lines b

/// The checkpoint of an epoch, as bytes.
let checkpointBytes (folder: string) (epoch: int) = File.ReadAllBytes(Path.Combine(folder, sprintf "epoch-%04d.ckpt" epoch))

/// NUnit's equality constraint on a boxed value (arrays and lists compare element-wise).
let equalTo (expected: obj) = NUnit.Framework.Is.EqualTo expected
