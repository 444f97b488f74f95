/// Two ranks against one process: the same training, step for step.
module GroupedNewton.Distributed.Tests.AgreementTests

open System.IO
open NUnit.Framework
open GroupedNewton.Distributed.Tests.MpiRunner

let private trainArgs (optimizer: string) (epochs: int) (out: string) =
    [ "train"; "--optimizer"; optimizer; "--epochs"; string epochs; "--period"; "3"; "--out"; out ]
    @ task

let private relative (a: float) (b: float) = abs (a - b) / max 1e-12 (abs a)

[<TestCase("sgd")>]
[<TestCase("adam")>]
[<TestCase("sofim")>]
[<TestCase("kfac")>]
[<TestCase("kbfgs")>]
[<TestCase("grouped-newton")>]
[<TestCase("grouped-newton-avg")>]
[<TestCase("grouped-newton-auto")>]
let ``two ranks train as one process: per-epoch loss, one metrics file, identical parameters`` (optimizer: string) =
    let alone = tempFolder ()
    let two = tempFolder ()
    expectSuccess "the single-process run" (single (trainArgs optimizer 2 alone))
    // every step compares the ranks' parameter hashes (GROUPEDNEWTON_MPI_VERIFY=1): a
    // difference ends the run with an error
    let o = onRanks 2 [] (trainArgs optimizer 2 two)
    expectSuccess "the two-rank run" o
    let a = trainLosses alone
    let b = trainLosses two
    Assert.That(b.Length, Is.EqualTo 2, "one metrics line per epoch, written by rank 0 only")

    for e in 0..1 do
        Assert.That(
            relative a.[e] b.[e],
            Is.LessThan 1e-5,
            sprintf "%s epoch %d: one process %.9g, two ranks %.9g" optimizer (e + 1) a.[e] b.[e]
        )

    Assert.That(File.ReadAllLines(Path.Combine(two, "metrics.csv")).Length, Is.EqualTo 3, "metrics.csv: a header and one line per epoch")
    // the parameters at the end agree with the single process's
    let pa = checkpointParameters (Path.Combine(alone, "epoch-0002.ckpt"))
    let pb = checkpointParameters (Path.Combine(two, "epoch-0002.ckpt"))
    Assert.That(pb.Count, Is.EqualTo pa.Count)

    for kv in pa do
        let x = kv.Value
        let y = pb.[kv.Key]
        let scale = x |> Array.map abs |> Array.max
        let diff = Array.map2 (fun (u: float) v -> abs (u - v)) x y |> Array.max
        Assert.That(diff, Is.LessThanOrEqualTo(1e-4 * max scale 1.0), sprintf "%s: parameter %s differs by %g" optimizer kv.Key diff)

    Assert.That(o.Out, Does.Contain "epoch 2/2 done", "rank 0 prints the progress")

[<Test>]
let ``only rank 0 prints: progress lines appear once`` () =
    let two = tempFolder ()
    let o = onRanks 2 [] (trainArgs "sgd" 1 two)
    expectSuccess "the two-rank run" o
    let lines = o.Out.Split('\n') |> Array.filter (fun l -> l.Contains "epoch 1/1 done")
    Assert.That(lines.Length, Is.EqualTo 1, o.Out)

[<Test>]
let ``resume on the same number of ranks continues the run; another number is refused`` () =
    let whole = tempFolder ()
    let parts = tempFolder ()
    expectSuccess "the uninterrupted run" (onRanks 2 [] (trainArgs "grouped-newton" 2 whole))
    expectSuccess "the first epoch" (onRanks 2 [] (trainArgs "grouped-newton" 1 parts))
    expectSuccess "the resumed run" (onRanks 2 [] (trainArgs "grouped-newton" 2 parts @ [ "--resume" ]))
    let a = trainLosses whole
    let b = trainLosses parts
    Assert.That(b.Length, Is.EqualTo 2)

    for e in 0..1 do
        Assert.That(relative a.[e] b.[e], Is.LessThan 1e-9, sprintf "epoch %d: uninterrupted %.12g, resumed %.12g" (e + 1) a.[e] b.[e])
    // the checkpoint records two ranks: one process may not continue it
    let o = single (trainArgs "grouped-newton" 3 parts @ [ "--resume" ])
    Assert.That(o.Code, Is.Not.EqualTo 0)
    Assert.That(o.Err, Does.Contain "was written by a run on 2 ranks; this run has 1")
    Assert.That(trainLosses parts, Has.Length.EqualTo 2, "the refused resume wrote nothing")
