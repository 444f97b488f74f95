/// SGD and Adam against hand-computed trajectories, state save/load, failure safety and
/// the schedulers. The test loss is L(θ) = θ²/2, whose gradient is θ.
module GroupedNewton.Tests.OptimTests

open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private quadratic (ps: Parameters) = let x = ps.["x"] in Tensor.sum (x * x) * 0.5

let private trajectory (opt: Optimizer) (steps: int) = [
    for _ in 1..steps do
        opt.Step quadratic |> ignore
        yield Tensor.toScalar opt.Parameters.["x"]
]

let private start () = Parameters.ofSeq [ "x", Tensor.scalar 1.0 ]

let sgdCases = [|
    TestCaseData({ SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 }, [| 0.9; 0.72; 0.486 |]).SetName("momentum")
    TestCaseData({ SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9; Nesterov = true }, [| 0.81; 0.5751; 0.327321 |])
        .SetName("nesterov")
    TestCaseData({ SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9; Dampening = 0.5 }, [| 0.9; 0.765; 0.60525 |])
        .SetName("dampening")
    TestCaseData({ SgdOptions.Defaults with LearningRate = 0.1; WeightDecay = 0.1 }, [| 0.89; 0.7921; 0.704969 |]).SetName("weight decay")
    TestCaseData({ SgdOptions.Defaults with LearningRate = 0.1 }, [| 0.9; 0.81; 0.729 |]).SetName("plain")
|]

[<TestCaseSource(nameof sgdCases)>]
let ``SGD reproduces hand-computed trajectories`` (options: SgdOptions, expected: float[]) =
    assertAllClose 1e-14 "θ" expected (trajectory (Sgd.create options (start ())) 3 |> Array.ofList)

let adamCases = [|
    TestCaseData({ AdamOptions.Defaults with LearningRate = 0.1 }, [| 0.900000001; 0.8004122297123382; 0.701586274504415 |]).SetName("adam")
    TestCaseData(
        { AdamOptions.KbfgsAuthors with LearningRate = 0.1 },
        [| 0.0009990009990007431; -0.4980736764719201; -0.6463387236458634 |]
    )
        .SetName("adam, second moment of the momentum")
    TestCaseData(
        { AdamOptions.Defaults with LearningRate = 0.1; WeightDecay = 0.5 },
        [| 0.9000000006666666; 0.8004122290319746; 0.7015862734654918 |]
    )
        .SetName("adam, weight decay")
|]

[<TestCaseSource(nameof adamCases)>]
let ``Adam reproduces hand-computed trajectories`` (options: AdamOptions, expected: float[]) =
    assertAllClose 1e-12 "θ" expected (trajectory (Adam.create options (start ())) 3 |> Array.ofList)

[<Test>]
let ``per-group learning rates apply to their own parameters`` () =
    let ps = Parameters.ofSeq [ "x", Tensor.scalar 1.0; "y", Tensor.scalar 1.0 ]
    let groups = [| ParamGroup("first", [| ps.Key "x" |], 0.1); ParamGroup("second", [| ps.Key "y" |], 0.5) |]
    let opt = Sgd.createWithGroups SgdOptions.Defaults ps groups
    opt.Step(fun p -> (p.["x"] * p.["x"] + p.["y"] * p.["y"]) * 0.5) |> ignore
    assertClose 1e-15 "x" 0.9 (Tensor.toScalar opt.Parameters.["x"])
    assertClose 1e-15 "y" 0.5 (Tensor.toScalar opt.Parameters.["y"])
    Assert.That(opt.LearningRates, equalTo [| 0.1; 0.5 |])

    Assert.Throws<System.ArgumentException>(fun () -> Sgd.createWithGroups SgdOptions.Defaults ps [| groups.[0] |] |> ignore)
    |> ignore

[<Test>]
let ``the direction at learning rate 1 is exposed without applying it`` () =
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 } (start ())
    opt.Step quadratic |> ignore // buffer = 1, θ = 0.9
    let g = opt.Parameters.WithValues [| Tensor.scalar 0.9 |]
    let d = opt.Direction g
    assertClose 1e-15 "direction" 1.8 (Tensor.toScalar d.["x"])
    assertClose 0.0 "θ unchanged" 0.9 (Tensor.toScalar opt.Parameters.["x"])
    Assert.That(opt.StepCount, equalTo 1)

    assertClose
        1e-15
        "the next step is unaffected"
        0.72
        (opt.Step quadratic |> ignore
         Tensor.toScalar opt.Parameters.["x"])

[<Test>]
let ``a NaN loss stops the step and leaves parameters and state unchanged`` () =
    let opt = Adam.create AdamOptions.Defaults (start ())
    opt.Step quadratic |> ignore
    let before = Tensor.toScalar opt.Parameters.["x"]
    let stateBefore = opt.State
    let e = Assert.Throws<OptimizationException>(fun () -> opt.Step(fun p -> quadratic p * nan) |> ignore)
    Assert.That(e.Message, Does.Contain "NaN")
    Assert.That(Tensor.toScalar opt.Parameters.["x"], equalTo before)
    Assert.That(obj.ReferenceEquals(opt.State, stateBefore), Is.True)
    Assert.That(opt.StepCount, equalTo 1)

    let e2 =
        Assert.Throws<OptimizationException>(fun () -> opt.Step(fun p -> Tensor.sqrt (p.["x"] - 5.0)) |> ignore)

    Assert.That(e2.Message, Does.Contain "NaN")

[<Test>]
let ``saved state resumes to the same trajectory`` () =
    let options = { SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 }
    let reference = Adam.create { AdamOptions.Defaults with LearningRate = 0.05 } (start ())
    let path = Path.Combine(Path.GetTempPath(), sprintf "gn-state-%d.bin" (System.Random().Next()))

    try
        for make in
            [
                (fun ps -> Adam.create { AdamOptions.Defaults with LearningRate = 0.05 } ps :> Optimizer)
                (fun ps -> Sgd.create options ps :> Optimizer)
            ] do
            let a = make (start ())
            a.Step quadratic |> ignore
            a.Step quadratic |> ignore
            a.SaveState path
            let b = make (start ())
            b.SetParameters a.Parameters
            b.LoadState path
            Assert.That(b.StepCount, equalTo 2)

            for _ in 1..3 do
                a.Step quadratic |> ignore
                b.Step quadratic |> ignore

            Assert.That(Tensor.toScalar b.Parameters.["x"], equalTo (Tensor.toScalar a.Parameters.["x"]))

        ignore reference
    finally
        if File.Exists path then
            File.Delete path

[<Test>]
let ``a corrupt, truncated or foreign state file is rejected by name and changes nothing`` () =
    let dir = Path.Combine(Path.GetTempPath(), sprintf "gn-state-%d" (System.Random().Next()))
    Directory.CreateDirectory dir |> ignore

    try
        let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 } (start ())
        opt.Step quadratic |> ignore
        let good = Path.Combine(dir, "good.bin")
        opt.SaveState good
        let bytes = File.ReadAllBytes good
        let truncated = Path.Combine(dir, "truncated.bin")
        File.WriteAllBytes(truncated, bytes.[.. bytes.Length - 5])
        let corrupt = Path.Combine(dir, "corrupt.bin")
        let flipped = Array.copy bytes
        flipped.[20] <- flipped.[20] ^^^ 0xFFuy
        File.WriteAllBytes(corrupt, flipped)
        let foreign = Path.Combine(dir, "foreign.bin")
        File.WriteAllText(foreign, "hello, this is not a state file")
        let adamFile = Path.Combine(dir, "adam.bin")
        (Adam.create AdamOptions.Defaults (start ())).SaveState adamFile

        for path, word in
            [
                truncated, "truncated"
                corrupt, "corrupt"
                foreign, "not a GroupedNewton state file"
                adamFile, "adam"
            ] do
            let fresh = Sgd.create { SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 } (start ())
            let e = Assert.Throws<StateFormatException>(fun () -> fresh.LoadState path)
            Assert.That(e.Message, Does.Contain(Path.GetFileName path))
            Assert.That(e.Message, Does.Contain word)
            Assert.That(fresh.StepCount, equalTo 0)

        Assert.Throws<FileNotFoundException>(fun () -> opt.LoadState(Path.Combine(dir, "missing.bin")))
        |> ignore
    finally
        Directory.Delete(dir, true)

[<Test>]
let ``option validation names the bad value`` () =
    let e =
        Assert.Throws<System.ArgumentException>(fun () -> Sgd.create { SgdOptions.Defaults with LearningRate = -1.0 } (start ()) |> ignore)

    Assert.That(e.Message, Does.Contain "LearningRate")

    let e2 =
        Assert.Throws<System.ArgumentException>(fun () -> Sgd.create { SgdOptions.Defaults with Nesterov = true } (start ()) |> ignore)

    Assert.That(e2.Message, Does.Contain "Nesterov")

    let e3 =
        Assert.Throws<System.ArgumentException>(fun () -> Adam.create { AdamOptions.Defaults with Beta2 = 1.0 } (start ()) |> ignore)

    Assert.That(e3.Message, Does.Contain "Beta2")

[<Test>]
let ``StepLR and ReduceLROnPlateau schedules`` () =
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 1.0 } (start ())
    let s = StepLR(opt, 2, 0.5)

    let lrs = [
        for _ in 1..5 do
            s.Step()
            yield opt.Groups.[0].LearningRate
    ]

    Assert.That(lrs, equalTo [ 1.0; 0.5; 0.5; 0.25; 0.25 ])
    let opt2 = Sgd.create { SgdOptions.Defaults with LearningRate = 1.0 } (start ())
    let p = ReduceLROnPlateau(opt2, 0.1, 1, 0.0, 1, 0.001)

    let seen = [
        for m in [ 5.0; 4.0; 4.0; 4.0; 3.0; 3.0; 3.0; 3.0; 3.0 ] do
            p.Step m
            yield opt2.Groups.[0].LearningRate
    ]

    assertAllClose 1e-15 "plateau" [| 1.0; 1.0; 1.0; 0.1; 0.1; 0.1; 0.01; 0.01; 0.01 |] (Array.ofList seen)
