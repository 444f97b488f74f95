/// Starting the command-line tool as separate processes (TestSupport.ChildProcess), alone or
/// under mpiexec.mpich, on a small synthetic task, and reading what the runs wrote.
module GroupedNewton.Distributed.Tests.MpiRunner

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open NUnit.Framework
open GroupedNewton.TestSupport

/// The `dotnet` executable the test host runs under, and the tool's assembly (copied next to
/// the tests by the project reference).
let dotnet = ChildProcess.dotnet

let toolDll = ChildProcess.toolDll

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

let tempFolder () = TempFolders.create "gn-mpi-tests"

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

/// Starts a process (output collected as it comes).
let start (file: string) (args: string list) (env: (string * string) list) =
    new ChildProcess.Child({ ChildProcess.command file args with Env = ("DOTNET_CLI_TELEMETRY_OPTOUT", "1") :: env })

/// Waits for a started process (killing it and its descendants, and failing the test, after
/// `timeoutSeconds`); `clock` times the run.
let finish (c: ChildProcess.Child) (clock: Stopwatch) (timeoutSeconds: float) =
    let limitMs = int (timeoutSeconds * 1000.0)

    match c.Wait limitMs with
    | Some code -> { Code = code; Out = c.Out; Err = c.Err; Seconds = clock.Elapsed.TotalSeconds }
    | None ->
        Assert.Fail(c.TimeoutReport limitMs)
        failwith "unreachable: Assert.Fail throws"

let run (file: string) (args: string list) (env: (string * string) list) (timeoutSeconds: float) =
    let clock = Stopwatch.StartNew()
    use c = start file args env
    finish c clock timeoutSeconds

/// The tool alone (one process, no launcher).
let single (args: string list) = run dotnet (toolDll :: args) [] 120.0

/// The tool on `ranks` ranks; every step checks that the parameters are bit-identical on
/// all ranks (GROUPEDNEWTON_MPI_VERIFY=1).
let onRanks (ranks: int) (env: (string * string) list) (args: string list) =
    run (mpiexec ()) ([ "-n"; string ranks; dotnet; toolDll ] @ args) (("GROUPEDNEWTON_MPI_VERIFY", "1") :: env) 120.0

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
