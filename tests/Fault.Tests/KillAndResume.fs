/// kill -9 at several points of a run (inside an epoch, inside the checkpoint write, before
/// the first checkpoint), SIGTERM and SIGINT, a hand-deleted or corrupt latest checkpoint:
/// each time the resumed run must hold every completed epoch exactly once in its metrics,
/// leave no temporary file, and end bit for bit where an uninterrupted run ends.
module GroupedNewton.Fault.Tests.KillAndResume

open System
open System.IO
open NUnit.Framework
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

/// GroupedNewton with a curvature period that straddles epochs: the resumed run must continue
/// the curvature stream and the optimizer's state exactly.
let private common = [ "--optimizer"; "grouped-newton"; "--period"; "4" ] @ tinyTask
let private args (dir: string) (epochs: int) (extra: string list) = [ "train"; "--epochs"; string epochs; "--out"; dir ] @ extra @ common

/// Slows each step down so that a signal or a kill lands at a chosen step.
let private slow = [ "GROUPEDNEWTON_TEST_HOOK", "step-delay:100" ]

let private reference =
    lazy
        (let dir = tempFolder ()
         let r = run (args dir 3 [])
         Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)
         dir)

/// The resumed folder agrees with the uninterrupted run: epochs 1..3 once each in both
/// metrics files, the same metrics values, the same final checkpoint bytes, no temporaries.
let private agrees (dir: string) =
    let whole = reference.Force()
    let temporaries = Directory.GetFiles(dir, "*.tmp")

    metricEpochs dir = [| 1; 2; 3 |]
    && csvEpochs dir = [| 1; 2; 3 |]
    && temporaries.Length = 0
    && sameMetrics dir whole
    && checkpointBytes dir 3 = checkpointBytes whole 3

let private resumeAndJudge (name: string) (dir: string) =
    let r = run (args dir 3 [ "--resume" ])
    expect name r 0 [ "resuming from" ] (agrees dir)

[<Test>]
let ``kill -9 inside the epoch-2 checkpoint write, then resume, gives the uninterrupted run bit for bit`` () =
    let dir = tempFolder ()

    do
        use c = new Child(args dir 3 [], [ "GROUPEDNEWTON_TEST_HOOK", "pause-before-rename:epoch-0002" ])
        Assert.That(c.WaitFor("test hook: paused", 30000), Is.True, c.Err)
        c.KillHard()
    // the metrics line of epoch 2 is in place, its checkpoint is not: the resume must drop it
    Assert.That(metricEpochs dir, equalTo [| 1; 2 |])
    Assert.That(Directory.GetFiles(dir, "*.tmp").Length, Is.EqualTo 1, "the full-size temporary is left by the kill")
    Assert.That(File.Exists(Path.Combine(dir, "epoch-0002.ckpt")), Is.False)
    resumeAndJudge "kill -9 during the checkpoint write" dir

[<Test>]
let ``kill -9 inside epoch 2, then resume, gives the uninterrupted run bit for bit`` () =
    let dir = tempFolder ()

    do
        use c = new Child(args dir 3 [], slow)
        Assert.That(c.WaitFor("epoch 2/3 step 3/6", 30000), Is.True, c.Out)
        c.KillHard()

    resumeAndJudge "kill -9 inside an epoch" dir

[<Test>]
let ``kill -9 before the first checkpoint leaves a stale lock that a new run replaces`` () =
    let dir = tempFolder ()

    do
        use c = new Child(args dir 3 [], slow)
        Assert.That(c.WaitFor("epoch 1/3 step 2/6", 30000), Is.True, c.Out)
        c.KillHard()

    Assert.That(File.Exists(Path.Combine(dir, ".lock")), Is.True)
    // nothing to resume: said so, and the folder is unchanged
    let before = snapshot dir
    let resumed = run (args dir 3 [ "--resume" ])

    expect
        "resume with no checkpoint (stale lock of the killed run)"
        resumed
        2
        [ "removing the stale lock"; "--resume: there is no checkpoint" ]
        (sameFiles before (snapshot dir))

    let fresh = run (args dir 3 [])

    expect
        "kill -9 before the first checkpoint, then a new run"
        fresh
        0
        [ "epochs 1..3" ]
        (agrees dir && not (File.Exists(Path.Combine(dir, ".lock"))))

/// A slowed run signalled when its output shows `line`, to its end.
let private signalledAt (dir: string) (line: string) (signalNumber: int) : Outcome =
    use c = new Child(args dir 3 [], slow)
    Assert.That(c.WaitFor(line, 30000), Is.True, c.Out)
    signal c signalNumber
    let code = c.Wait(HangSeconds * 1000)
    { Code = code; Out = c.Out; Err = c.Err }

[<Test>]
let ``SIGTERM stops after the current step with exit 143, keeps the last checkpoint, and the run resumes bit for bit`` () =
    let dir = tempFolder ()
    let o = signalledAt dir "epoch 2/3 step 2/6" 15

    expect
        "SIGTERM during a run"
        o
        143
        [ "SIGTERM"; "interrupted: the last complete checkpoint is"; "epoch-0001.ckpt" ]
        (metricEpochs dir = [| 1 |] && Directory.GetFiles(dir, "*.tmp").Length = 0)

    resumeAndJudge "resume after SIGTERM" dir

[<Test>]
let ``SIGINT before the first checkpoint says there is nothing to resume`` () =
    let dir = tempFolder ()
    let o = signalledAt dir "epoch 1/3 step 1/6" 2
    let v, d = judge o 130 [ "interrupted before the first checkpoint" ] (metricEpochs dir = [||])
    record "SIGINT before the first checkpoint" (if o.Text.Contains "continue with --resume" then Silent else v) d

[<Test>]
let ``deleting the latest checkpoint by hand and resuming keeps each epoch once`` () =
    let dir = tempFolder ()
    let r = run (args dir 3 [])
    Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)
    File.Delete(Path.Combine(dir, "epoch-0003.ckpt"))
    resumeAndJudge "latest checkpoint deleted by hand" dir

[<Test>]
let ``a corrupt latest checkpoint falls back to the previous one with a message`` () =
    let dir = tempFolder ()
    let r = run (args dir 3 [])
    Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)
    let path = Path.Combine(dir, "epoch-0003.ckpt")
    let bytes = File.ReadAllBytes path
    bytes.[bytes.Length / 2] <- bytes.[bytes.Length / 2] ^^^ 0x40uy
    File.WriteAllBytes(path, bytes)
    let resumed = run (args dir 3 [ "--resume" ])

    expect
        "corrupt latest checkpoint (fallback)"
        resumed
        0
        [ "epoch-0003.ckpt cannot be used"; "corrupt"; "resuming from"; "epoch-0002.ckpt" ]
        (agrees dir)

[<Test>]
let ``when no checkpoint can be read, resume refuses and changes nothing`` () =
    let dir = tempFolder ()
    let r = run (args dir 2 [])
    Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)

    for f in Directory.GetFiles(dir, "epoch-*.ckpt") do
        File.WriteAllBytes(f, Array.sub (File.ReadAllBytes f) 0 40)

    let before = snapshot dir
    let resumed = run (args dir 3 [ "--resume" ])
    expect "every checkpoint corrupt" resumed 1 [ "no checkpoint in"; "can be read"; "truncated" ] (sameFiles before (snapshot dir))

[<Test>]
let ``resume refuses every option change that alters the trajectory, naming the option and both values`` () =
    let dir = tempFolder ()
    let r = run (args dir 1 [])
    Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)
    let before = snapshot dir

    let changed (label: string) (extra: string list) (mention: string) =
        // later options win: the change is appended after the common ones
        let a = [ "train"; "--epochs"; "2"; "--out"; dir; "--resume" ] @ common @ extra
        let o = run a

        expect
            (sprintf "resume with a changed %s" label)
            o
            2
            [ mention; "only --epochs and --threads may change" ]
            (sameFiles before (snapshot dir))

    changed "batch size" [ "--batch-size"; "25" ] "--batch-size 50, not 25"
    changed "learning-rate period" [ "--period"; "5" ] "--period 4, not 5"
    changed "damping" [ "--damping"; "0.1" ] "--damping 0.03, not 0.1"
    changed "momentum" [ "--momentum"; "0.5" ] "--momentum 0.9, not 0.5"
    changed "partition" [ "--partition"; "per-layer" ] "--partition canonical, not per-layer"
    changed "max-steps" [ "--max-steps"; "3" ] "--max-steps none, not 3"
    changed "samples" [ "--samples"; "200" ] "--samples 300, not 200"
    changed "seed" [ "--seed"; "5" ] "--seed 0, not 5"
    changed "optimizer" [ "--optimizer"; "grouped-newton-avg" ] "--optimizer grouped-newton, not grouped-newton-avg"
    // more epochs and another thread count are allowed
    let more = run ([ "train"; "--epochs"; "2"; "--out"; dir; "--resume" ] @ common @ [ "--threads"; "2" ])
    expect "resume with more epochs and another --threads" more 0 [ "resuming from" ] (metricEpochs dir = [| 1; 2 |])
