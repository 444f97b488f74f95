/// Faults under mpiexec: a rank that dies or hangs, ranks started differently, a missing MPI
/// library, a batch that cannot be split.
module GroupedNewton.Distributed.Tests.FaultTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open NUnit.Framework
open GroupedNewton.TestSupport
open GroupedNewton.Distributed.Tests.MpiRunner

/// A run long enough to be interrupted: 40 epochs of the task.
let private longRun (out: string) = [ "train"; "--optimizer"; "sgd"; "--epochs"; "40"; "--out"; out ] @ task

/// The process ids of the ranks of rank `rank` started with marker `marker` in their
/// environment.
let private ranksWith (marker: string) (rank: int) = [
    for d in Directory.GetDirectories "/proc" do
        match Int32.TryParse(Path.GetFileName d) with
        | true, pid ->
            let env =
                try
                    File.ReadAllText(Path.Combine(d, "environ"))
                with _ ->
                    ""

            let vars = env.Split('\000')

            if Array.contains ("GN_TEST_MARKER=" + marker) vars && Array.contains (sprintf "PMI_RANK=%d" rank) vars then
                let cmd =
                    try
                        File.ReadAllText(Path.Combine(d, "cmdline"))
                    with _ ->
                        ""

                if cmd.Contains "groupednewton.dll" then
                    yield pid
        | _ -> ()
]

/// Starts the long run on two ranks and waits for its first metrics line (the ranks are in
/// the training loop); returns the run and the pid of rank 1.
let private startLong (env: (string * string) list) =
    let out = tempFolder ()
    let marker = Guid.NewGuid().ToString("N")
    let clock = Stopwatch.StartNew()

    let run =
        start (mpiexec ()) ([ "-n"; "2"; dotnet; toolDll ] @ longRun out) (("GN_TEST_MARKER", marker) :: env)

    let metrics = Path.Combine(out, "metrics.jsonl")

    while not (File.Exists metrics) && clock.Elapsed.TotalSeconds < 60.0 do
        Thread.Sleep 100

    Assert.That(File.Exists metrics, Is.True, "the run did not complete an epoch within 60 s")
    let victim = ranksWith marker 1
    Assert.That(victim, Has.Length.EqualTo 1, "rank 1's process")
    run, victim.Head

[<Test>]
let ``a killed rank ends the run with an error within 60 s`` () =
    let run, pid = startLong []
    let clock = Stopwatch.StartNew()
    Process.GetProcessById(pid).Kill()
    let o = finish run clock 90.0
    Assert.That(o.Code, Is.Not.EqualTo 0)
    Assert.That(o.Seconds, Is.LessThan 60.0)
    // MPICH's launcher ends the job and names the lost rank
    Assert.That(o.Text, Does.Contain("BAD TERMINATION").Or.Contain("killed").IgnoreCase, o.Text)

[<Test>]
let ``a hung rank ends the run with an error after the collective timeout`` () =
    let run, pid = startLong [ "GROUPEDNEWTON_MPI_TIMEOUT", "5" ]
    let clock = Stopwatch.StartNew()
    ChildProcess.sendSignal pid ChildProcess.Signal.Stop

    try
        let o = finish run clock 90.0
        Assert.That(o.Code, Is.Not.EqualTo 0)
        Assert.That(o.Seconds, Is.LessThan 60.0)
        Assert.That(o.Err, Does.Contain("rank 0 waited").And.Contain("a rank has hung or died"))
    finally
        try
            Process.GetProcessById(pid).Kill()
        with _ ->
            ()

[<Test>]
let ``ranks started with different options are refused at start-up`` () =
    let out = tempFolder ()

    let args (lr: string) =
        [ dotnet; toolDll; "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--lr"; lr; "--out"; out ] @ task

    let o = run (mpiexec ()) ([ "-n"; "1" ] @ args "0.01" @ [ ":"; "-n"; "1" ] @ args "0.02") [] 120.0
    Assert.That(o.Code, Is.Not.EqualTo 0)
    Assert.That(o.Err, Does.Contain "the ranks disagree on the command line: rank 1 differs from rank 0")
    Assert.That(File.Exists(Path.Combine(out, "metrics.jsonl")), Is.False, "nothing was trained")

[<Test>]
let ``a batch size not divisible by the ranks is refused`` () =
    let out = tempFolder ()

    let args =
        [ "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--out"; out ] @ task @ [ "--batch-size"; "45" ]

    let o = onRanks 2 [] args
    Assert.That(o.Code, Is.Not.EqualTo 0)
    Assert.That(o.Err, Does.Contain "the batch size 45 is not divisible by the 2 ranks")

[<Test>]
let ``no MPI library under mpiexec is an error naming the package`` () =
    let out = tempFolder ()

    let o =
        onRanks 2 [ "GROUPEDNEWTON_MPI_LIBRARY", "/nonexistent/libmpi.so" ] ([ "train"; "--epochs"; "1"; "--out"; out ] @ task)

    Assert.That(o.Code, Is.Not.EqualTo 0)
    Assert.That(o.Err, Does.Contain("no MPI library could be loaded").And.Contain("apt-get install mpich libmpich-dev"))
