/// Faults around the run folder and the run's results: reusing a folder, two runs in one
/// folder, stale locks, divergence (the run ends as diverged, its metrics stay readable and
/// the last good checkpoint stays), parameters that never move.
module GroupedNewton.Fault.Tests.RunFolderFaults

open System.IO
open System.Text.Json
open NUnit.Framework
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

let private train (dir: string) (extra: string list) = [ "train"; "--optimizer"; "sgd"; "--out"; dir ] @ extra @ tinyTask

[<Test>]
let ``a fresh run into a folder holding a finished run is refused and the earlier run stays untouched`` () =
    let dir = tempFolder ()
    let first = run (train dir [ "--epochs"; "2" ])
    Assert.That(first.Code, Is.EqualTo(Some 0), first.Err)
    let before = snapshot dir
    let again = run (train dir [ "--epochs"; "1"; "--lr"; "0.2" ])

    expect
        "fresh run into a folder holding a finished run"
        again
        2
        [ "already holds a run"; "--resume"; "--overwrite" ]
        (sameFiles before (snapshot dir))
    // told to, it replaces the run
    let replaced = run (train dir [ "--epochs"; "1"; "--overwrite" ])
    expect "fresh run with --overwrite" replaced 0 [ "--overwrite: removing the earlier run" ] (metricEpochs dir = [| 1 |])
    Assert.That(File.Exists(Path.Combine(dir, "epoch-0002.ckpt")), Is.False)

[<Test>]
let ``a second run into a folder in use is refused naming the other process, and the first run's files stay whole`` () =
    let dir = tempFolder ()
    // the first run stops inside its first checkpoint write, holding the folder's lock
    use first =
        new Child(train dir [ "--epochs"; "2" ], [ "GROUPEDNEWTON_TEST_HOOK", "pause-before-rename:epoch-0001" ])

    Assert.That(first.WaitFor("test hook: paused", 30000), Is.True, first.Err)
    let before = snapshot dir
    let second = run (train dir [ "--epochs"; "2"; "--resume" ])

    expect
        "second run into a folder in use (resume)"
        second
        1
        [ "in use by another run"; sprintf "process %d" first.Id ]
        (sameFiles before (snapshot dir))

    let third = run (train dir [ "--epochs"; "2"; "--overwrite" ])

    expect
        "second run into a folder in use (overwrite)"
        third
        1
        [ "in use by another run"; sprintf "process %d" first.Id ]
        (sameFiles before (snapshot dir))

    first.KillHard()

[<Test>]
let ``a lock left by a process that no longer runs is replaced with a message`` () =
    let dir = tempFolder ()
    // a process id above the kernel's maximum (4194304) never runs
    File.WriteAllText(Path.Combine(dir, ".lock"), "4194399 somewhere")
    let r = run (train dir [ "--epochs"; "1" ])
    expect "stale lock of a dead process" r 0 [ "removing the stale lock"; "4194399" ] (metricEpochs dir = [| 1 |])
    Assert.That(File.Exists(Path.Combine(dir, ".lock")), Is.False, "the lock is released on exit")

[<Test>]
let ``a non-finite loss ends the run as diverged with readable metrics and no checkpoint of the bad epoch`` () =
    let dir = tempFolder ()
    let r = run (train dir [ "--epochs"; "2"; "--lr"; "1e300"; "--max-steps"; "1" ])
    let lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
    // the epoch's metrics are written, non-finite values as strings
    let parsed = lines |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
    let nonFinite = parsed.[0].GetProperty("test_loss")

    let readable =
        lines.Length = 1
        && nonFinite.ValueKind = JsonValueKind.String
        && List.contains (nonFinite.GetString()) [ "NaN"; "Infinity" ]

    expect
        "sgd --lr 1e300 --max-steps 1 (non-finite metrics)"
        r
        1
        [ "diverged:"; "epoch 1" ]
        (readable && not (File.Exists(Path.Combine(dir, "epoch-0001.ckpt"))))

[<TestCase("sgd")>]
[<TestCase("adam")>]
[<TestCase("sofim")>]
[<TestCase("kfac")>]
[<TestCase("kbfgs")>]
let ``a learning rate of 1e30 is stopped by the divergence guard`` (optimizer: string) =
    let dir = tempFolder ()

    let r =
        run ([ "train"; "--optimizer"; optimizer; "--lr"; "1e30"; "--epochs"; "2"; "--out"; dir ] @ tinyTask)

    expect (sprintf "%s --lr 1e30 (divergence)" optimizer) r 1 [ "diverged:" ] (not (File.Exists(Path.Combine(dir, "epoch-0002.ckpt"))))

[<Test>]
let ``without the guard a diverging run is not stopped by it`` () =
    let dir = tempFolder ()
    let r = run (train dir [ "--epochs"; "1"; "--lr"; "1e30"; "--divergence-factor"; "0" ])
    // the guard is off: no "diverged"; SGD itself refuses a non-finite loss, or the run ends
    Assert.That(r.Code.IsSome && r.Code <> Some 134, r.Text)
    Assert.That(r.Text, Does.Not.Contain "diverged:")
    Assert.That(r.Text, Does.Not.Contain "Unhandled exception")

[<Test>]
let ``GroupedNewton with damping 0 warns that the parameters never moved`` () =
    let dir = tempFolder ()

    let r =
        run (
            [
                "train"
                "--optimizer"
                "grouped-newton"
                "--damping"
                "0"
                "--period"
                "3"
                "--epochs"
                "1"
                "--out"
                dir
            ]
            @ tinyTask
        )

    expect
        "grouped-newton --damping 0 (parameters never move)"
        r
        0
        [ "warning: epoch 1: the parameters did not move"; "damping" ]
        (metricEpochs dir = [| 1 |])

[<Test>]
let ``compare lists a diverged run and still writes its report`` () =
    let dir = tempFolder ()

    let r =
        run (
            [
                "compare"
                "--optimizers"
                "sgd@1e300,sgd@0.05"
                "--seeds"
                "0"
                "--epochs"
                "1"
                "--max-steps"
                "2"
                "--out"
                dir
            ]
            @ tinyTask
        )

    let report = Path.Combine(dir, "report.html")
    let summary = Path.Combine(dir, "summary.md")

    let ok =
        File.Exists report
        && File.Exists summary
        && (File.ReadAllText summary).Contains "diverged"
        && (File.ReadAllText report).Contains "diverged:"

    expect "compare with one diverging run" r 0 [ "diverged:"; "report:" ] ok
