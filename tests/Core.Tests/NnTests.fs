/// Layers and models: derivatives to order 3 with respect to parameters and inputs,
/// shapes of the papers' models, and shape errors that name both shapes.
module GroupedNewton.Tests.NnTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private init = { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 3 }

/// A one-layer model (plus a tanh so that every order is non-trivial).
let private oneLayer (inputShape: int[]) (spec: LayerSpec) =
    Model.sequential "probe" inputShape init [ spec; LayerSpec.Act Activation.Tanh ]

let layerCases =
    [|
        "linear", [| 5 |], LayerSpec.Linear(5, 3, true)
        "linear-nobias", [| 4 |], LayerSpec.Linear(4, 2, false)
        "conv2d", [| 2; 5; 5 |], LayerSpec.Conv2d(2, 3, 3, 2, 1, true)
        "conv2d-nobias", [| 1; 4; 4 |], LayerSpec.Conv2d(1, 2, 2, 1, 0, false)
        "maxpool", [| 2; 4; 4 |], LayerSpec.MaxPool2d(2, 2, 0)
        "avgpool", [| 2; 4; 4 |], LayerSpec.AvgPool2d(3, 1, 1)
        "flatten", [| 2; 2; 3 |], LayerSpec.Flatten
        "relu", [| 6 |], LayerSpec.Act Activation.Relu
        "elu", [| 6 |], LayerSpec.Act Activation.Elu
        "sigmoid", [| 6 |], LayerSpec.Act Activation.Sigmoid
        "softplus", [| 6 |], LayerSpec.Act Activation.Softplus
    |]
    |> Array.collect (fun (name, shape, spec) ->
        let hasParameters =
            match spec with
            | LayerSpec.Linear _
            | LayerSpec.Conv2d _ -> true
            | _ -> false

        [|
            for wrt in (if hasParameters then [ "parameters"; "input" ] else [ "input" ]) do
                for order in 1..3 do
                    yield TestCaseData(name, shape, spec, wrt, order).SetName(sprintf "%s wrt %s order %d" name wrt order)
        |])

[<TestCaseSource(nameof layerCases)>]
let ``layer derivatives match finite differences`` (_name: string, shape: int[], spec: LayerSpec, wrt: string, order: int) =
    let m = oneLayer shape spec
    // inputs kept away from kinks (relu, elu at 0; max-pool ties)
    let x0 =
        t
            (Array.append [| 2 |] shape)
            (randn 5 (2 * Shape.numel shape)
             |> Array.mapi (fun i v -> (if v >= 0.0 then 1.0 else -1.0) * (0.3 + abs v) + 0.01 * float i))

    let ps = m.Parameters
    let sizes = ps.Values |> Array.map (fun v -> v.Numel)

    let flatParams =
        if ps.Count = 0 then Tensor.zeros [| 0 |] else Tensor.cat 0 (ps.Values |> Array.map Tensor.flatten)

    let withParams (theta: Tensor) =
        if ps.Count = 0 then
            ps
        else
            let parts = Tensor.split 0 sizes theta
            ps.WithValues(Array.map2 (fun (p: Tensor) (v: Tensor) -> Tensor.view v.Shape p) parts ps.Values)

    let out0 = m.Forward(ps, x0)
    let w = t out0.Shape (randn 9 out0.Numel)

    let f, x =
        if wrt = "input" then
            (fun (z: Tensor) -> Tensor.sum (m.Forward(ps, Tensor.view x0.Shape z) * w)), Tensor.flatten x0
        else
            (fun (theta: Tensor) -> Tensor.sum (m.Forward(withParams theta, x0) * w)), flatParams

    let v = vec (randn 13 x.Numel)

    let table =
        GroupedNewton.Conformance.DerivativeCases.nestings f v |> List.find (fun (k, _) -> k = order) |> snd

    let values = table |> List.map (fun (n, g) -> n, Tensor.toScalar (g x))

    for n, value in values.Tail do
        assertClose 1e-9 (sprintf "%s vs %s" n (fst values.Head)) (snd values.Head) value

    let lower =
        if order = 1 then
            fun (z: Tensor) -> Tensor.toScalar (f z)
        else
            let g =
                GroupedNewton.Conformance.DerivativeCases.nestings f v
                |> List.find (fun (k, _) -> k = order - 1)
                |> snd
                |> List.head
                |> snd

            fun z -> Tensor.toScalar (g z)

    let h = 1e-5
    assertClose 2e-6 "central difference of the order below" ((lower (x + h * v) - lower (x - h * v)) / (2.0 * h)) (snd values.Head)

[<Test>]
let ``the papers' models have the expected output shapes and parameter counts`` () =
    let i32 = Init.reference 1
    let mlp = Models.mlp [ 784; 1024; 200; 100; 10 ] Activation.Tanh i32
    Assert.That(mlp.Parameters.NumelTotal, equalTo (784 * 1024 + 1024 + 1024 * 200 + 200 + 200 * 100 + 100 + 100 * 10 + 10))
    Assert.That(mlp.Parameters.Names, equalTo [| "1.weight"; "1.bias"; "3.weight"; "3.bias"; "5.weight"; "5.bias"; "7.weight"; "7.bias" |])
    Assert.That((mlp.Forward(mlp.Parameters, Tensor.zerosOf Dtype.Float32 [| 3; 784 |])).Shape, equalTo [| 3; 10 |])

    for channels, pixels in [ 1, 28; 3, 32 ] do
        let lenet = Models.lenet5 channels pixels i32

        let y =
            lenet.Forward(lenet.Parameters, Tensor.randnOf Dtype.Float32 2 [| 2; channels; pixels; pixels |])

        Assert.That(y.Shape, equalTo [| 2; 10 |])

    let lenet = Models.lenet5 3 32 i32
    Assert.That(lenet.Parameters.NumelTotal, equalTo (6 * 3 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10))
    let vgg = Models.vgg11 { i32 with Scheme = InitScheme.ScaledNormal(sqrt 2.0, 0.0) }
    Assert.That(vgg.OutputShape, equalTo [| 10 |])
    Assert.That(vgg.Parameters.Count, equalTo 18)
    Assert.That((vgg.Forward(vgg.Parameters, Tensor.randnOf Dtype.Float32 3 [| 1; 3; 32; 32 |])).Shape, equalTo [| 1; 10 |])
    let ae = Models.mnistAutoencoder i32
    Assert.That(ae.OutputShape, equalTo [| 784 |])

    let reluCount =
        ae.Layers |> Array.filter (fun l -> l.Spec = LayerSpec.Act Activation.Relu) |> Array.length

    Assert.That(reluCount, equalTo 6)

[<Test>]
let ``the conv layer equals the naive convolution`` () =
    let m = Model.sequential "conv" [| 2; 6; 5 |] init [ LayerSpec.Conv2d(2, 3, 3, 2, 1, true) ]
    let x = randn 2 (2 * 2 * 6 * 5)
    let w = Tensor.toArray m.Parameters.["0.weight"]
    let b = Tensor.toArray m.Parameters.["0.bias"]
    let expected, shape = KernelTests.naiveConv2d x (2, 2, 6, 5) w (3, 3, 3) b (2, 2) (1, 1)
    let y = m.Forward(m.Parameters, t [| 2; 2; 6; 5 |] x)
    Assert.That(y.Shape, equalTo shape)
    assertAllClose 1e-13 "conv layer" expected (Tensor.toArray y)

[<Test>]
let ``initialisers follow their scheme and are seeded`` () =
    let big = Model.sequential "init" [| 400 |] (Init.pytorch 5) [ LayerSpec.Linear(400, 300, true) ]
    let w = Tensor.toArray big.Parameters.["0.weight"]
    let bound = 1.0 / sqrt 400.0
    Assert.That(w |> Array.forall (fun v -> abs v <= bound), Is.True)
    assertClose 0.01 "uniform variance" (bound * bound / 3.0) (w |> Array.averageBy (fun v -> v * v))
    let normal = Model.sequential "init" [| 400 |] (Init.reference 5) [ LayerSpec.Linear(400, 300, true) ]
    let wn = Tensor.toArray normal.Parameters.["0.weight"]
    assertClose 0.05 "N(0,1)/sqrt(fan_in) variance × fan_in" 1.0 ((wn |> Array.averageBy (fun v -> v * v)) * 400.0)
    Assert.That(Tensor.toArray normal.Parameters.["0.bias"] |> Array.forall ((=) 0.0), Is.True)
    let again = Model.sequential "init" [| 400 |] (Init.reference 5) [ LayerSpec.Linear(400, 300, true) ]
    Assert.That(Tensor.toArray again.Parameters.["0.weight"], equalTo wn)

[<Test>]
let ``shape errors between model and data name both shapes`` () =
    let m = Models.lenet5 3 32 (Init.reference 0)

    let e =
        Assert.Throws<ShapeMismatchException>(fun () -> m.Forward(m.Parameters, Tensor.zerosOf Dtype.Float32 [| 4; 1; 28; 28 |]) |> ignore)

    Assert.That(e.Message, Does.Contain "[N; 3; 32; 32]")
    Assert.That(e.Message, Does.Contain "[4; 1; 28; 28]")

    let e2 =
        Assert.Throws<ShapeMismatchException>(fun () -> Model.sequential "bad" [| 10 |] init [ LayerSpec.Linear(12, 3, true) ] |> ignore)

    Assert.That(e2.Message, Does.Contain "[12]")
    Assert.That(e2.Message, Does.Contain "[10]")

[<Test>]
let ``parameter sets are keyed by identity and validate names`` () =
    let ps = Parameters.ofSeq [ "a", Tensor.scalar 1.0; "b", vec [| 2.0; 3.0 |] ]
    let moved = ps.WithValues [| Tensor.scalar 5.0; vec [| 6.0; 7.0 |] |]
    Assert.That(obj.ReferenceEquals(moved.Key "a", ps.Key "a"), Is.True)
    Assert.That(Tensor.toScalar moved.[ps.Key "a"], equalTo 5.0)
    let other = Parameters.ofSeq [ "a", Tensor.scalar 1.0 ]
    Assert.That(obj.ReferenceEquals(other.Key "a", ps.Key "a"), Is.False)
    let e = Assert.Throws<System.ArgumentException>(fun () -> ps.["c"] |> ignore)
    Assert.That(e.Message, Does.Contain "'c'")
    Assert.That(e.Message, Does.Contain "a, b")

    Assert.Throws<System.ArgumentException>(fun () -> Parameters.ofSeq [ "a", Tensor.scalar 1.0; "a", Tensor.scalar 2.0 ] |> ignore)
    |> ignore

    Assert.Throws<ShapeMismatchException>(fun () -> ps.WithValues [| Tensor.scalar 5.0; vec [| 6.0 |] |] |> ignore)
    |> ignore

[<Test>]
let ``autoencoder losses: BCE with logits and half squared error`` () =
    let z = t [| 2; 2 |] [| 0.3; -1.2; 2.0; 0.0 |]
    let y = t [| 2; 2 |] [| 1.0; 0.0; 0.5; 1.0 |]
    let sigmoid v = 1.0 / (1.0 + exp -v)
    let bce (zv: float) (yv: float) = -(yv * log (sigmoid zv) + (1.0 - yv) * log (1.0 - sigmoid zv))
    let expected = (Array.map2 bce (Tensor.toArray z) (Tensor.toArray y) |> Array.sum) / 2.0
    assertClose 1e-14 "bce" expected (Tensor.toScalar (Losses.bceWithLogits z y))

    let hse =
        (Array.map2 (fun a b -> (a - b) * (a - b)) (Tensor.toArray z) (Tensor.toArray y) |> Array.sum) * 0.5
        / 2.0

    assertClose 1e-14 "half squared error" hse (Tensor.toScalar (Losses.halfSquaredError z y))
    assertClose 0.0 "accuracy" 0.5 (Losses.accuracy z (Tensor.ofInts [| 0; 1 |]))

[<Test>]
let ``default dtypes: creators make float64, default models float32, and a model names a mismatched input`` () =
    Assert.That(
        [
            Tensor.zeros [| 2 |]
            Tensor.ones [| 2 |]
            Tensor.randn 0 [| 2 |]
            Tensor.ofArray [| 1.0 |]
            Tensor.scalar 1.0
        ]
        |> List.map (fun x -> x.Dtype),
        Is.All.EqualTo Dtype.Float64
    )

    let m = Models.mlp [ 4; 3; 2 ] Activation.Tanh (Init.reference 0)
    Assert.That(m.Parameters.Values |> Array.map (fun v -> v.Dtype), Is.All.EqualTo Dtype.Float32)
    Assert.That((Models.mlp [ 4; 2 ] Activation.Tanh (Init.pytorch 0)).Parameters.["1.weight"].Dtype, equalTo Dtype.Float32)
    let x = Tensor.randn 1 [| 5; 4 |]
    let e = Assert.Throws<DtypeMismatchException>(fun () -> m.Forward(m.Parameters, x) |> ignore)
    Assert.That(e.Message, Does.Contain m.Name)
    Assert.That(e.Message, Does.Contain "float32")
    Assert.That(e.Message, Does.Contain "float64")
    // converted, the same input runs, and a float64 model takes it as it is
    let y = m.Forward(m.Parameters, Tensor.cast Dtype.Float32 x)
    Assert.That(y.Shape, equalTo [| 5; 2 |])
    Assert.That(y.Dtype, equalTo Dtype.Float32)
    let m64 = Models.mlp [ 4; 3; 2 ] Activation.Tanh { Init.reference 0 with Dtype = Dtype.Float64 }
    Assert.That((m64.Forward(m64.Parameters, x)).Dtype, equalTo Dtype.Float64)
