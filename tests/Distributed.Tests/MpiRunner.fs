/// Starting the command-line tool as separate processes, alone or under mpiexec.mpich, on a
/// small synthetic task, and reading what the runs wrote.
module GroupedNewton.Distributed.Tests.MpiRunner

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open NUnit.Framework

/// The tool's assembly, copied next to the tests by the project reference.
let toolDll = Path.Combine(AppContext.BaseDirectory, "groupednewton.dll")

let private onPath (name: string) =
    (Environment.GetEnvironmentVariable "PATH").Split(Path.PathSeparator)
    |> Array.map (fun d -> Path.Combine(d, name))
    |> Array.tryFind File.Exists

/// mpiexec.mpich, or a failure (under .ci/run, which sets GROUPEDNEWTON_REQUIRE_MPI=1) or an
/// inconclusive result (elsewhere) saying how to install it.
let mpiexec () =
    match onPath "mpiexec.mpich" with
    | Some p -> p
    | None ->
        let msg =
            "mpiexec.mpich is not installed: the data-parallel tests need MPICH (apt-get install mpich libmpich-dev)"

        if Environment.GetEnvironmentVariable "GROUPEDNEWTON_REQUIRE_MPI" = "1" then
            Assert.Fail msg

        Assert.Inconclusive msg
        failwith msg

let private created = Collections.Concurrent.ConcurrentBag<string>()

let tempFolder () =
    let d = Path.Combine(Path.GetTempPath(), "gn-mpi-tests-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    created.Add d
    d

let removeTempFolders () =
    for d in created do
        try
            Directory.Delete(d, true)
        with _ ->
            ()

/// The task: an MLP 784-16-8-10 on 600 synthetic samples, batch 60 (9 training steps per
/// epoch and a smaller last batch), one thread per rank.
let task = [
    "--dataset"
    "synthetic"
    "--hidden"
    "16,8"
    "--samples"
    "600"
    "--batch-size"
    "60"
    "--threads"
    "1"
]

type Outcome = {
    Code: int
    Out: string
    Err: string
    Seconds: float
} with

    member o.Text = o.Out + "\n" + o.Err

/// Starts a process; returns it with its output collectors.
let start (file: string) (args: string list) (env: (string * string) list) =
    let psi =
        ProcessStartInfo(file, args, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)

    psi.Environment.["DOTNET_CLI_TELEMETRY_OPTOUT"] <- "1"

    for k, v in env do
        psi.Environment.[k] <- v

    let p = new Process(StartInfo = psi)
    let out = Text.StringBuilder()
    let err = Text.StringBuilder()

    p.OutputDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock out (fun () -> out.AppendLine e.Data |> ignore))

    p.ErrorDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock err (fun () -> err.AppendLine e.Data |> ignore))

    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p, out, err

/// Waits for a started process (killing it after `timeoutSeconds`).
let finish (p: Process, out: Text.StringBuilder, err: Text.StringBuilder) (clock: Stopwatch) (timeoutSeconds: float) =
    if not (p.WaitForExit(int (timeoutSeconds * 1000.0))) then
        p.Kill true
        p.WaitForExit()
        Assert.Fail(sprintf "the run did not end within %g s:\n%O\n%O" timeoutSeconds out err)

    p.WaitForExit()

    {
        Code = p.ExitCode
        Out = lock out (fun () -> out.ToString())
        Err = lock err (fun () -> err.ToString())
        Seconds = clock.Elapsed.TotalSeconds
    }

let run (file: string) (args: string list) (env: (string * string) list) (timeoutSeconds: float) =
    let clock = Stopwatch.StartNew()
    finish (start file args env) clock timeoutSeconds

/// The tool alone (one process, no launcher).
let single (args: string list) = run "dotnet" (toolDll :: args) [] 120.0

/// The tool on `ranks` ranks; every step checks that the parameters are bit-identical on
/// all ranks (GROUPEDNEWTON_MPI_VERIFY=1).
let onRanks (ranks: int) (env: (string * string) list) (args: string list) =
    run (mpiexec ()) ([ "-n"; string ranks; "dotnet"; toolDll ] @ args) (("GROUPEDNEWTON_MPI_VERIFY", "1") :: env) 120.0

/// The training loss of every epoch in a run's metrics.jsonl.
let trainLosses (folder: string) =
    File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"))
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.GetProperty("train_loss").GetDouble())

/// The parameters stored in a checkpoint file, by name.
let checkpointParameters (path: string) =
    let d = GroupedNewton.TensorStore.load path

    [
        for kv in d do
            if kv.Key.StartsWith "param." then
                match kv.Value with
                | GroupedNewton.StoreValue.Tensor t -> yield kv.Key, GroupedNewton.Tensor.toArray t
                | _ -> ()
    ]
    |> Map.ofList

let expectSuccess (what: string) (o: Outcome) =
    if o.Code <> 0 then
        Assert.Fail(sprintf "%s exited with %d:\n%s" what o.Code o.Text)

[<SetUpFixture>]
type Cleanup() =
    [<OneTimeTearDown>]
    member _.Remove() = removeTempFolders ()
