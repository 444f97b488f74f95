/// Running the real `groupednewton` tool in a child process: its output, exit code and
/// whether it finished in time; killing it (SIGKILL) or signalling it (SIGINT, SIGTERM) at a
/// chosen point of its output.
module GroupedNewton.Fault.Tests.Tool

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text
open System.Threading

/// The tiny task: an MLP 784-8-10 on 270 synthetic training samples, batch 50 (6 steps per
/// epoch), one thread (bit-identical reruns).
let tinyTask = [
    "--dataset"
    "synthetic"
    "--hidden"
    "8"
    "--samples"
    "300"
    "--batch-size"
    "50"
    "--threads"
    "1"
]

/// The tool's assembly, copied next to this test assembly by the project reference.
let toolPath = Path.Combine(AppContext.BaseDirectory, "groupednewton.dll")

let private dotnet =
    match Environment.GetEnvironmentVariable "DOTNET_HOST_PATH" with
    | null
    | "" -> "dotnet"
    | p -> p

let private created = System.Collections.Concurrent.ConcurrentBag<string>()

/// A fresh temporary folder (removed when the test run ends).
let tempFolder () =
    let d = Path.Combine(Path.GetTempPath(), "gn-fault-tests-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    created.Add d
    d

/// Removes the folders made by tempFolder.
let removeTempFolders () =
    for d in created do
        try
            Directory.Delete(d, true)
        with _ ->
            ()

/// A child process running the tool, with its output collected as it comes.
type Child(args: string list, env: (string * string) list) =
    let out = StringBuilder()
    let err = StringBuilder()
    let gate = obj ()
    // `env --default-signal` undoes an inherited "ignore SIGINT" (a test run started in the
    // background of a non-interactive shell), which .NET would otherwise keep, so that the
    // signal tests see the tool's own handling
    let psi = ProcessStartInfo("env")

    do
        psi.ArgumentList.Add "--default-signal=INT,TERM"
        psi.ArgumentList.Add dotnet
        psi.ArgumentList.Add toolPath

        for a in args do
            psi.ArgumentList.Add a

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.UseShellExecute <- false
        // the child sees only the settings the test gives it
        for v in [ "GROUPEDNEWTON_DATA"; "GROUPEDNEWTON_THREADS"; "GROUPEDNEWTON_BLAS"; "GROUPEDNEWTON_TEST_HOOK" ] do
            psi.Environment.Remove v |> ignore

        for k, v in env do
            psi.Environment.[k] <- v

    let p = new Process(StartInfo = psi)

    do
        p.OutputDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock gate (fun () -> out.AppendLine e.Data |> ignore))

        p.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock gate (fun () -> err.AppendLine e.Data |> ignore))

        p.Start() |> ignore
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()

    member _.Id = p.Id
    member _.Out = lock gate (fun () -> out.ToString())
    member _.Err = lock gate (fun () -> err.ToString())

    /// Waits until stdout or stderr contains `text`; false after `timeoutMs` or when the
    /// process ended without it.
    member c.WaitFor(text: string, timeoutMs: int) =
        let clock = Stopwatch.StartNew()
        let mutable found = false

        while not found
              && clock.ElapsedMilliseconds < int64 timeoutMs
              && not (p.HasExited && not ((c.Out + c.Err).Contains text)) do
            if (c.Out + c.Err).Contains text then found <- true else Thread.Sleep 5

        found || (c.Out + c.Err).Contains text

    /// Waits for the process to end; None when it did not within `timeoutMs` (it is then killed).
    member _.Wait(timeoutMs: int) : int option =
        if p.WaitForExit timeoutMs then
            p.WaitForExit()
            Some p.ExitCode
        else
            (try
                p.Kill true
             with _ ->
                 ())

            p.WaitForExit()
            None

    /// SIGKILL: the process ends at once, without running any of its code.
    member _.KillHard() =
        p.Kill true
        p.WaitForExit()

    interface IDisposable with
        member _.Dispose() =
            (try
                if not p.HasExited then
                    p.Kill true
             with _ ->
                 ())

            p.Dispose()

[<DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

/// Sends a POSIX signal (2 = SIGINT, 15 = SIGTERM) to a child.
let signal (c: Child) (signalNumber: int) =
    if kill (c.Id, signalNumber) <> 0 then
        failwithf "kill(%d, %d) failed" c.Id signalNumber

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

/// Cleans up after all tests of the assembly.
[<NUnit.Framework.SetUpFixture>]
type Cleanup() =
    [<NUnit.Framework.OneTimeTearDown>]
    member _.RemoveFolders() = removeTempFolders ()
