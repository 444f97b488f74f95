/// grouped-newton-auto (the Adaptive variant): its rates against closed forms, the confirmation
/// on the curvature batch, the restore after a loss jump, a resumed run, and training without
/// divergence on small versions of the models where the paper's settings diverge or stall.
module GroupedNewton.Tests.GroupedNewtonAutoTests

open System
open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Tests.TestUtil

let private summary (g: float[]) (h: float[,]) (d3: float[]) = {
    Gradient = g
    Hessian = h
    ThirdDiagonal = d3
    Loss = 2.0
    ReversePasses = 1
}

/// The minimiser over η ≥ 0 of −gη + ½hη² + (λ/6)d³η³ (d > 0), in closed form.
let private oneDimensional (lambda: float) (g: float) (h: float) (d3: float) =
    if g <= 0.0 then 0.0 else (-h + sqrt (h * h + 2.0 * lambda * d3 * g)) / (lambda * d3)

[<Test>]
let ``each subset's rate minimises its own cubic model and one length scales them all`` () =
    let h = array2D [ [ 2.0; 0.5 ]; [ 0.5; 3.0 ] ]
    let s = summary [| 1.0; 2.0 |] h [| 8.0; 27.0 |]
    let own = [| oneDimensional 1.0 1.0 2.0 8.0; oneDimensional 1.0 2.0 3.0 27.0 |]
    // the length α along `own`: g1 = ḡ·own, h1 = ownᵀH̄own, d1³ = ‖D own‖³ with d = (2, 3)
    let g1 = 1.0 * own.[0] + 2.0 * own.[1]
    let h1 = 2.0 * own.[0] * own.[0] + 2.0 * 0.5 * own.[0] * own.[1] + 3.0 * own.[1] * own.[1]
    let d1 = sqrt ((2.0 * own.[0]) ** 2.0 + (3.0 * own.[1]) ** 2.0)
    let alpha = oneDimensional 1.0 g1 h1 (d1 ** 3.0)
    Assert.That(alpha, Is.LessThan 1.0)
    let eta = GroupedNewtonAdaptive.rates 1.0 s
    assertAllClose 1e-12 "η" (own |> Array.map (fun e -> alpha * e)) eta

[<Test>]
let ``a subset whose gradient points uphill gets rate 0 and the joint length never exceeds 1`` () =
    // strongly negative coupling: along `own` the joint model is flatter than either subset's
    let h = array2D [ [ 2.0; -1.9 ]; [ -1.9; 2.0 ] ]
    let eta = GroupedNewtonAdaptive.rates 1.0 (summary [| 1.0; 1.0 |] h [| 1.0; 1.0 |])
    assertAllClose 1e-12 "η" [| oneDimensional 1.0 1.0 2.0 1.0; oneDimensional 1.0 1.0 2.0 1.0 |] eta

    let uphill =
        GroupedNewtonAdaptive.rates 1.0 (summary [| -1.0; 1.0 |] (array2D [ [ 2.0; 0.0 ]; [ 0.0; 2.0 ] ]) [| 1.0; 1.0 |])

    Assert.That(uphill.[0], equalTo 0.0)
    Assert.That(uphill.[1], Is.GreaterThan 0.0)

[<Test>]
let ``the curvature batch must confirm the rates: each refusal halves every scale`` () =
    let s = summary [| 1.0; 1.0 |] (array2D [ [ 1.0; 0.0 ]; [ 0.0; 1.0 ] ]) [| 1e-6; 1e-6 |]
    let eta = [| 1.0; 1.0 |]
    let o = AdaptiveRateOptions.Defaults
    // the model is exact for rates up to 0.1; beyond, the loss rises
    let mutable calls = 0

    let lossAt (rates: float[]) =
        calls <- calls + 1

        if rates |> Array.forall (fun r -> r <= 0.1) then
            s.Loss - GroupedNewtonAdaptive.predictedDecrease 1.0 s rates
        else
            s.Loss + 1.0

    let scales, halvings, confirmed =
        GroupedNewtonAdaptive.confirm o 1.0 [| 1.0; 1.0 |] s lossAt eta [| 1.0; 0.8 |]
    // 1 → 0.5 → … → 0.0625 ≤ 0.1: four halvings, five evaluations
    Assert.That((halvings, calls, confirmed), equalTo (4, 5, true))
    assertAllClose 0.0 "scales" [| 0.0625; 0.05 |] scales
    // a batch that never confirms stops after MaxBacktracks halvings
    let _, k, ok =
        GroupedNewtonAdaptive.confirm { o with MaxBacktracks = 3 } 1.0 [| 1.0; 1.0 |] s (fun _ -> s.Loss + 1.0) eta [| 1.0; 1.0 |]

    Assert.That((k, ok), equalTo (3, false))

[<Test>]
let ``the scales follow the cosine between each gradient and the direction before`` () =
    let ps = Parameters.ofSeq [ "a", vec [| 1.0; 0.0 |]; "b", vec [| 0.0; 1.0 |] ]
    let partition = Partition.canonical ps
    let o = AdaptiveRateOptions.Defaults
    let a = { AdaptiveState.Initial 2 o with Previous = [| vec [| 1.0; 0.0 |]; vec [| 0.0; 2.0 |] |] }
    // a keeps pointing the same way (cos 1); b reverses (cos −1)
    let g = ps.WithValues [| vec [| 3.0; 0.0 |]; vec [| 0.0; -1.0 |] |]
    let a = GroupedNewtonAdaptive.observe partition g a
    let a = GroupedNewtonAdaptive.observe partition g a
    Assert.That(a.CosineCount, equalTo 2)
    let r = GroupedNewtonAdaptive.rescale o a
    assertAllClose 1e-12 "scales" [| 0.3 * exp 1.0; 0.3 * exp -1.0 |] r.Scales
    Assert.That((r.CosineCount, r.CosineSum), equalTo (0, [| 0.0; 0.0 |]))

// ---------------------------------------------------------------------------------------------
// the step on a quadratic: a jump restores, a resumed run follows the uninterrupted one
// ---------------------------------------------------------------------------------------------

let private target = vec [| 1.0; -2.0; 0.5 |]
let private quadratic (ps: Parameters) = Tensor.sum ((ps.["w"] - target) * (ps.["w"] - target)) + 0.5 * Tensor.sum (ps.["b"] * ps.["b"])

let private start () = Parameters.ofSeq [ "w", vec [| 0.0; 0.0; 0.0 |]; "b", vec [| 3.0 |] ]

let private auto (ps: Parameters) =
    GroupedNewtonOptimizer.create GroupedNewtonOptions.Auto 0.9 (Partition.canonical ps) (fun () -> quadratic) ps

[<Test>]
let ``on a quadratic the adaptive variant converges with nothing tuned`` () =
    let o = auto (start ())
    let first = o.Step quadratic

    for _ in 1..200 do
        o.Step quadratic |> ignore

    let last = Tensor.toScalar (quadratic o.Parameters)
    Assert.That(last, Is.LessThan(1e-6 * first))

[<Test>]
let ``a training loss far above its running average restores the last curvature update's parameters`` () =
    let o = auto (start ())

    for _ in 1..12 do
        o.Step quadratic |> ignore

    let snapshot = o.State.Adaptive.Snapshot |> Array.map Tensor.toArray
    let scales = o.State.Adaptive.Scales
    let warnings = ResizeArray<string>()
    o.Warning.Add(fun w -> warnings.Add w)
    // a fault: this step's batch gives a loss a thousand times the usual one
    let jump = o.Step(fun ps -> 1000.0 * quadratic ps + 1000.0)
    Assert.That(jump, Is.GreaterThan(1000.0))
    Assert.That(o.Parameters.Values |> Array.map Tensor.toArray, equalTo snapshot)
    assertAllClose 1e-15 "scales" (scales |> Array.map (fun c -> 0.25 * c)) o.State.Adaptive.Scales
    Assert.That(o.State.Adaptive.Restores, equalTo 1)
    Assert.That(warnings.Count, equalTo 1)
    Assert.That(warnings.[0], Does.Contain "restored")
    // the next step makes a curvature update at once and training goes on
    let updates = o.History.Length
    o.Step quadratic |> ignore
    Assert.That(o.History.Length, equalTo (updates + 1))

[<Test>]
let ``a resumed adaptive run follows the uninterrupted one bit for bit`` () =
    let straight = auto (start ())

    for _ in 1..37 do
        straight.Step quadratic |> ignore

    let first = auto (start ())

    for _ in 1..23 do
        first.Step quadratic |> ignore

    let path = Path.Combine(Path.GetTempPath(), sprintf "gn-auto-%s.gnstate" (Guid.NewGuid().ToString "N"))

    try
        first.SaveState path
        let resumed = auto (first.Parameters)
        resumed.LoadState path

        for _ in 1..14 do
            resumed.Step quadratic |> ignore

        Assert.That(resumed.Parameters.Values |> Array.map Tensor.toArray, equalTo (straight.Parameters.Values |> Array.map Tensor.toArray))
        Assert.That(resumed.State.Adaptive.Scales, equalTo straight.State.Adaptive.Scales)
    finally
        File.Delete path

// ---------------------------------------------------------------------------------------------
// small versions of the models: no divergence, with one set of defaults
// ---------------------------------------------------------------------------------------------

let private mini = lazy (fst (Datasets.loadFrom "fashion-mnist-mini" (dataFolder ())))

/// Trains `steps` steps at batch 50 and returns every step's loss.
let private train (model: Model) (partition: Partition) (options: GroupedNewtonOptions) (steps: int) =
    let data = mini.Value
    let loader = Loader.defaults 50
    let batches = Loader.infinite loader data |> Seq.take steps |> Array.ofSeq
    let mutable k = 0

    let curvature () =
        let b =
            Loader.batch { loader with Shuffle = false } data (Array.init 50 (fun i -> (k * 50 + i) % data.Count))

        k <- k + 1
        fun (ps: Parameters) -> Losses.crossEntropy (model.Forward(ps, b.Inputs)) b.Labels.Value

    let o = GroupedNewtonOptimizer.create options 0.9 partition curvature model.Parameters

    batches
    |> Array.map (fun b -> o.Step(fun ps -> Losses.crossEntropy (model.Forward(ps, b.Inputs)) b.Labels.Value))

let private cases: obj[] list = [
    [| "lenet5 relu pytorch per-layer"; box "lenet"; box Activation.Relu; box true; box true |]
    [| "lenet5 tanh reference"; box "lenet"; box Activation.Tanh; box false; box false |]
    [| "mlp relu pytorch"; box "mlp"; box Activation.Relu; box true; box false |]
    [| "mlp tanh reference"; box "mlp"; box Activation.Tanh; box false; box false |]
    [| "mlp relu reference"; box "mlp"; box Activation.Relu; box false; box false |]
]

[<TestCaseSource(nameof cases)>]
let ``grouped-newton-auto trains small models without diverging``
    (name: string, kind: string, act: Activation, pytorch: bool, perLayer: bool)
    =
    let init = if pytorch then Init.pytorch 3 else Init.reference 3

    let model =
        if kind = "lenet" then
            Models.lenet5With act 1 28 init
        else
            Models.mlpOn [| 1; 28; 28 |] [ 784; 64; 32; 10 ] act init

    let ps = model.Parameters
    let partition = if perLayer then Partition.perLayer ps else Partition.canonical ps
    let losses = train model partition GroupedNewtonOptions.Auto 120
    Assert.That(losses |> Array.forall Double.IsFinite, Is.True, name)
    let first = losses.[0]
    let late = losses.[losses.Length - 20 ..] |> Array.average
    Assert.That(late, Is.LessThan(0.75 * first), sprintf "%s: first loss %g, mean of the last 20 %g" name first late)
    Assert.That(Array.max losses, Is.LessThan(3.0 * first), name)

[<Test>]
let ``the control: grouped-newton at damping 0.3 does not train the ReLU LeNet-5 case`` () =
    let model = Models.lenet5With Activation.Relu 1 28 (Init.pytorch 3)

    let options = {
        GroupedNewtonOptions.Defaults with
            Cubic = true
            CurvaturePeriod = 10
            ClipNegativeRates = true
            Damping = 0.3
    }

    let losses =
        try
            train model (Partition.perLayer model.Parameters) options 120
        with :? OptimizationException -> [| infinity |]

    let late = losses.[max 0 (losses.Length - 20) ..] |> Array.average
    printfn "control: first %g, last-20 mean %g, max %g" losses.[0] late (Array.max losses)
    Assert.That(not (late < 0.75 * losses.[0]) || Array.max losses >= 3.0 * losses.[0], Is.True)
