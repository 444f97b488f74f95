/// SOFIM: its closed form F⁻¹m̂ = m̂/(ρ + ‖m̂‖²) for F = m̂m̂ᵀ + ρI against Sherman–Morrison and an explicit solve,
/// the three-step trajectory, limits, scopes, float32 robustness, training.
module GroupedNewton.Tests.SofimTests

open System
open System.Collections.Generic
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

/// One direction from a given previous moment mPrev and gradient g (β, no bias correction
/// when asked): with β = 0 the moment is g itself.
let private direction (options: SofimOptions) (mPrev: float[] option) (g: float[]) =
    let ps = Parameters.ofSeq [ "w", vec (Array.zeroCreate g.Length) ]
    let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)
    mPrev |> Option.iter (fun m -> buffers.[ps.Key "w"] <- [| vec m |])
    let d, _ = SofimRule(options).Direction(ps, ps.WithValues [| vec g |], { Step = 0; Buffers = buffers })
    Tensor.toArray d.["w"]

let private m4 = [| 0.3; -1.2; 0.5; 2.0 |]
let private plainOptions = { SofimOptions.Defaults with Beta = 0.0; BiasCorrection = false; Rho = 0.5 }

[<Test>]
let ``F⁻¹m by the closed form equals Sherman–Morrison, an explicit solve and hand-computed values`` () =
    let expected = [| 0.047770700637; -0.191082802548; 0.079617834395; 0.318471337580 |]
    let d = direction plainOptions None m4
    assertAllClose 1e-11 "hand-computed values" expected d
    let s2 = m4 |> Array.sumBy (fun v -> v * v)
    let sm = m4 |> Array.map (fun v -> v / 0.5 - v * s2 / (0.25 * (1.0 + s2 / 0.5)))
    assertAllClose 3e-15 "Sherman–Morrison" sm d
    let f = Array2D.init 4 4 (fun i j -> m4.[i] * m4.[j] + (if i = j then 0.5 else 0.0))
    let solved = (DenseAlgebra.trySolve f m4).Value
    assertAllClose 3e-15 "explicit solve" solved d
    // parallel to m̂, ratio 1/(ρ + ‖m̂‖²)
    Array.iter2 (fun di mi -> assertClose 1e-15 "ratio" (1.0 / (0.5 + s2)) (di / mi)) d m4

[<Test>]
let ``the gradient variant applies F(m)⁻¹ to g`` () =
    let g = [| 1.0; 0.0; -0.5; 0.25 |]
    // β = 0.5 without bias correction: the new moment is m when mPrev = 2m − g
    let mPrev = Array.map2 (fun m gi -> 2.0 * m - gi) m4 g
    let d = direction { plainOptions with Beta = 0.5; Direction = SofimDirection.Gradient } (Some mPrev) g
    assertAllClose 1e-11 "hand-computed values" [| 1.947452229299; 0.210191082803; -1.087579617834; 0.149681528662 |] d
    let f = Array2D.init 4 4 (fun i j -> m4.[i] * m4.[j] + (if i = j then 0.5 else 0.0))
    assertAllClose 1e-14 "explicit solve" (DenseAlgebra.trySolve f g).Value d

[<Test>]
let ``a three-step trajectory matches values computed by hand from the closed form`` () =
    let ps = Parameters.ofSeq [ "w", vec [| 1.0; -2.0; 0.5 |] ]
    let grads = [| [| 0.2; -0.4; 1.0 |]; [| 0.1; 0.3; -0.2 |]; [| -0.5; 0.2; 0.4 |] |]
    let opt = Sofim.create { SofimOptions.Defaults with Beta = 0.9; LearningRate = 0.1; Rho = 0.5 } ps

    let expected = [|
        [| 0.9882352941; -1.9764705882; 0.4411764706 |]
        [| 0.9658541414; -1.9716746269; 0.3852235888 |]
        [| 0.9798099574; -1.9798905509; 0.3272619337 |]
    |]

    for t in 0..2 do
        // a loss whose gradient is the given vector: L(w) = ⟨g_t, w⟩
        opt.Step(fun p -> Tensor.dot p.["w"] (vec grads.[t])) |> ignore
        assertAllClose 1e-10 (sprintf "w_%d" (t + 1)) expected.[t] (Tensor.toArray opt.Parameters.["w"])

[<Test>]
let ``the step length never exceeds η/(2√ρ)`` () =
    let rng = Random 4

    for _ in 1..50 do
        let g = Array.init 5 (fun _ -> (rng.NextDouble() - 0.5) * 10.0 ** (rng.NextDouble() * 4.0 - 2.0))
        let d = direction plainOptions None g
        let step = 0.1 * sqrt (d |> Array.sumBy (fun v -> v * v))
        Assert.That(step, Is.LessThanOrEqualTo(0.1 / (2.0 * sqrt 0.5) * (1.0 + 1e-12)))

[<Test>]
let ``limits: large ρ is momentum SGD, β = 0 without bias correction is g/(ρ + ‖g‖²)`` () =
    let g = [| 0.4; -0.3; 0.2 |]
    let d0 = direction plainOptions None g
    let s2 = g |> Array.sumBy (fun v -> v * v)
    assertAllClose 1e-15 "β = 0" (g |> Array.map (fun v -> v / (0.5 + s2))) d0
    // ρ → ∞ with η = ρ·α: η·d → α·m̂
    let rho = 1e8
    let d = direction { SofimOptions.Defaults with Rho = rho } None g
    assertAllClose 1e-7 "momentum limit" g (d |> Array.map (fun v -> v * rho))

[<Test>]
let ``model scope shares one norm, tensor scope uses each tensor's own`` () =
    let ps = Parameters.ofSeq [ "0.weight", vec [| 0.0; 0.0 |]; "1.weight", vec [| 0.0 |] ]
    let grad = ps.WithValues [| vec [| 3.0; 4.0 |]; vec [| 1.0 |] |]
    let run scope = fst (SofimRule({ plainOptions with Scope = scope }).Direction(ps, grad, RuleState.Empty))
    let model = run SofimScope.Model
    let tensor = run SofimScope.Tensor
    assertAllClose 1e-15 "model scope" [| 3.0 / 26.5; 4.0 / 26.5 |] (Tensor.toArray model.["0.weight"])
    assertAllClose 1e-15 "model scope" [| 1.0 / 26.5 |] (Tensor.toArray model.["1.weight"])
    assertAllClose 1e-15 "tensor scope" [| 3.0 / 25.5; 4.0 / 25.5 |] (Tensor.toArray tensor.["0.weight"])
    assertAllClose 1e-15 "tensor scope" [| 1.0 / 1.5 |] (Tensor.toArray tensor.["1.weight"])
    Assert.That(SofimOptions.Defaults.Scope, equalTo SofimScope.Model)

[<Test>]
let ``a zero gradient leaves the parameters unchanged, without NaN`` () =
    let ps = Parameters.ofSeq [ "w", vec [| 1.0; 2.0 |] ]
    let opt = Sofim.create SofimOptions.Defaults ps
    opt.Step(fun p -> Tensor.sum (p.["w"] * 0.0)) |> ignore
    Assert.That(Tensor.toArray opt.Parameters.["w"], equalTo [| 1.0; 2.0 |])

[<Test>]
let ``float32: the closed form is accurate where the textbook difference fails`` () =
    let ps = Parameters.ofSeq [ "w", Tensor.ofArray32 [| 0.0f; 0.0f |] ]
    let grad = ps.WithValues [| Tensor.ofArray32 [| 6000.0f; 8000.0f |] |]
    let d, _ = SofimRule({ plainOptions with Rho = 1e-3 }).Direction(ps, grad, RuleState.Empty)
    let got = Tensor.toArray d.["w"]
    Assert.That(abs (got.[0] - 5.99999999994e-05) / 6e-5, Is.LessThan 1e-6)
    Assert.That(abs (got.[1] - 7.99999999992e-05) / 8e-5, Is.LessThan 1e-6)

[<Test>]
let ``SOFIM lowers the loss of a small CNN and of an MNIST-shaped autoencoder`` () =
    let cnn =
        Model.sequential "cnn" [| 1; 8; 8 |] (Init.pytorch 1) [
            LayerSpec.Conv2d(1, 4, 3, 1, 1, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.MaxPool2d(2, 2, 0)
            LayerSpec.Flatten
            LayerSpec.Linear(64, 3, true)
        ]

    let x = Tensor.randnOf Dtype.Float32 1 [| 32; 1; 8; 8 |]
    let y = Tensor.ofInts (Array.init 32 (fun i -> i % 3))
    let ae = Models.mlpOn [| 784 |] [ 784; 64; 16; 64; 784 ] Activation.Relu (Init.pytorch 2)

    let xa =
        Tensor.sigmoid (Tensor.matmul (Tensor.randnOf Dtype.Float32 3 [| 32; 8 |]) (Tensor.randnOf Dtype.Float32 4 [| 8; 784 |]))
    // the effective step is η/(ρ + ‖m̂‖²): the autoencoder's summed BCE has ‖g‖² ≈ 30, so it
    // takes a larger η; a deep autoencoder moves slowly in 40 steps, hence its 5% threshold
    for name, model, loss, eta, factor in
        [
            "cnn", cnn, (fun (m: Model) (p: Parameters) -> Losses.crossEntropy (m.Forward(p, x)) y), 0.5, 0.9
            "autoencoder", ae, (fun (m: Model) (p: Parameters) -> Losses.bceWithLogits (m.Forward(p, xa)) xa), 5.0, 0.95
        ] do
        let opt = Sofim.create { SofimOptions.Defaults with LearningRate = eta; Rho = 0.5 } model.Parameters
        let first = opt.Step(loss model)

        for _ in 1..40 do
            opt.Step(loss model) |> ignore

        let last = Tensor.toScalar (loss model opt.Parameters)
        Assert.That(last, Is.LessThan(first * factor), sprintf "%s: %g -> %g" name first last)

[<Test>]
let ``options are validated by name`` () =
    let ps = Parameters.ofSeq [ "w", vec [| 1.0 |] ]

    for bad, name in
        [
            { SofimOptions.Defaults with Rho = 0.0 }, "Rho"
            { SofimOptions.Defaults with Beta = 1.0 }, "Beta"
            { SofimOptions.Defaults with LearningRate = -1.0 }, "LearningRate"
        ] do
        let e = Assert.Throws<ArgumentException>(fun () -> Sofim.create bad ps |> ignore)
        Assert.That(e.Message, Does.Contain name)

[<Test>]
let ``SOFIM state saved mid-run resumes to the same trajectory`` () =
    let f (p: Parameters) = let w = p.["w"] in Tensor.sum (w * w * w * w) + Tensor.sum (Tensor.tanh w)
    let start () = Parameters.ofSeq [ "w", vec [| 0.7; -1.1; 0.3 |] ]
    let a = Sofim.create SofimOptions.Defaults (start ())

    for _ in 1..3 do
        a.Step f |> ignore

    let path =
        IO.Path.Combine(IO.Path.GetTempPath(), sprintf "sofim-%s.state" (Guid.NewGuid().ToString("N")))

    try
        a.SaveState path
        let b = Sofim.create SofimOptions.Defaults (start ())
        b.SetParameters a.Parameters
        b.LoadState path

        for _ in 1..3 do
            a.Step f |> ignore
            b.Step f |> ignore

        Assert.That(Tensor.toArray b.Parameters.["w"], equalTo (Tensor.toArray a.Parameters.["w"]))
    finally
        if IO.File.Exists path then
            IO.File.Delete path

let private managed = BackendRegistry.get "managed"
let private onManaged (t: Tensor) = Tensor.toBackend managed t

[<Test>]
let ``the fused float32 path runs and equals the tensor route (decay, momentum, every scope)`` () =
    let ps =
        Parameters.ofSeq [
            "0.weight", onManaged (Tensor.randnOf Dtype.Float32 1 [| 37; 11 |])
            "0.bias", onManaged (Tensor.randnOf Dtype.Float32 2 [| 37 |])
            "1.weight", onManaged (Tensor.randnOf Dtype.Float32 3 [| 5 |])
        ]

    for decay in [ 0.0; 0.01 ] do
        for scope in [ SofimScope.Model; SofimScope.Layer; SofimScope.Tensor ] do
            let rule = SofimRule { SofimOptions.Defaults with WeightDecay = decay; Scope = scope }
            let mutable fused = RuleState.Empty
            let mutable plain = RuleState.Empty

            for step in 1..3 do
                let grad =
                    ps.Map(fun k v -> onManaged (Tensor.randnOf Dtype.Float32 (10 * step + int k.Id % 7) v.Shape))

                let d1, s1 = rule.Direction(ps, grad, fused)
                Assert.That(rule.FusedSteps, equalTo step, sprintf "%A decay %g step %d took the fused kernels" scope decay step)
                let d2, s2 = rule.TensorDirection(ps, grad, plain)

                for k in ps.Keys do
                    // identical float32 arithmetic per element; only the float64 sum ‖m̂‖² is ordered differently
                    assertAllClose
                        1e-6
                        (sprintf "%A decay %g step %d direction %s" scope decay step k.Name)
                        (Tensor.toArray d2.[k])
                        (Tensor.toArray d1.[k])

                    Assert.That(Tensor.toArray s1.Buffers.[k].[0], equalTo (Tensor.toArray s2.Buffers.[k].[0]), sprintf "moment %s" k.Name)

                fused <- s1
                plain <- s2

[<Test>]
let ``float64 parameters and the gradient direction take the tensor route`` () =
    let ps64 = Parameters.ofSeq [ "w", onManaged (Tensor.randnOf Dtype.Float64 4 [| 9 |]) ]
    let rule = SofimRule SofimOptions.Defaults
    let d, _ = rule.Direction(ps64, ps64.Map(fun _ v -> 0.5 * v), RuleState.Empty)
    Assert.That(rule.FusedSteps, equalTo 0)

    assertAllClose
        1e-15
        "float64 direction"
        (Tensor.toArray (rule.TensorDirection(ps64, ps64.Map(fun _ v -> 0.5 * v), RuleState.Empty) |> fst).["w"])
        (Tensor.toArray d.["w"])

    let ps32 = Parameters.ofSeq [ "w", onManaged (Tensor.randnOf Dtype.Float32 4 [| 9 |]) ]
    let gradientRule = SofimRule { SofimOptions.Defaults with Direction = SofimDirection.Gradient }
    gradientRule.Direction(ps32, ps32.Map(fun _ v -> 0.5 * v), RuleState.Empty) |> ignore
    Assert.That(gradientRule.FusedSteps, equalTo 0)

[<Test>]
let ``the managed fused kernels equal the composed kernels bit for bit`` () =
    let raw seed n = (onManaged (Tensor.randnOf Dtype.Float32 seed [| n |])).Raw
    // 37 elements: whole SIMD vectors and a scalar tail
    let theta, g, prev = raw 5 37, raw 6 37, raw 7 37
    let bits (r: RawTensor) = managed.ToArray r :?> float32[]
    let m, norm2 = (managed.FusedMoment(theta, g, Some prev, 0.01, 0.9, 1.25)).Value
    let gd = managed.AddScaled(g, theta, 0.01)
    let composed = managed.AddScaled(managed.MulScalar(gd, 0.1), managed.MulScalar(prev, 0.9), 1.0)
    Assert.That(bits m, equalTo (bits composed), "moment")
    let expected = bits m |> Array.sumBy (fun v -> let h = float (v * 1.25f) in h * h)
    assertAllClose 1e-12 "Σ (m·scale)²" [| expected |] [| norm2 |]
    Assert.That(bits (managed.MulScalar2(m, 0.8, 1.7)), equalTo (bits (managed.MulScalar(managed.MulScalar(m, 0.8), 1.7))), "(t·a)·b")
    let f64 = (onManaged (Tensor.randnOf Dtype.Float64 8 [| 37 |])).Raw
    Assert.That(managed.FusedMoment(f64, f64, None, 0.0, 0.9, 1.0).IsNone, "no fused kernel for float64")
