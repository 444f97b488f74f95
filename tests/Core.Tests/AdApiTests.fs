/// The functional API (Ad) against the finite-difference oracles (Numerical) and
/// analytic cases.
module GroupedNewton.Tests.AdApiTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private w = t [| 3; 4 |] (randn 1 12)

let private f (x: Tensor) =
    Tensor.sum (Tensor.tanh (Tensor.matmul w (Tensor.view [| 4; 1 |] x))) + Tensor.sum (x * x * x) / 3.0

let private x0 = vec (randn 2 4)

[<Test>]
let ``grad and valueAndGrad match finite differences`` () =
    let y, g = Ad.valueAndGrad f x0
    assertClose 0.0 "value" (Tensor.toScalar (f x0)) (Tensor.toScalar y)
    assertTensorClose 1e-8 "grad" (Numerical.grad f x0) g
    assertTensorClose 0.0 "grad = snd valueAndGrad" g (Ad.grad f x0)

[<Test>]
let ``the example polynomial with floats on either side`` () =
    let p (x: Tensor) = x * x * x / 3.0 + x
    assertClose 1e-15 "p'(2)" 5.0 (Tensor.toScalar (Ad.diff p (Tensor.scalar 2.0)))
    assertClose 1e-15 "p''(2)" 4.0 (Tensor.toScalar (Ad.diffn 2 p (Tensor.scalar 2.0)))
    assertClose 1e-15 "p'''(2)" 2.0 (Tensor.toScalar (Ad.diffn 3 p (Tensor.scalar 2.0)))
    assertClose 1e-6 "numerical p'(2)" 5.0 (Tensor.toScalar (Numerical.diff p (Tensor.scalar 2.0)))
    assertClose 1e-4 "numerical p'''(2)" 2.0 (Tensor.toScalar (Numerical.diffn 3 p (Tensor.scalar 2.0)))

[<Test>]
let ``jvp and vjp match finite differences`` () =
    let g (x: Tensor) = Tensor.tanh (Tensor.matmul w (Tensor.view [| 4; 1 |] x)) |> Tensor.flatten
    let v = vec (randn 3 4)
    let _, jv = Ad.jvp g x0 v
    assertTensorClose 1e-8 "jvp" (Numerical.jvp g x0 v) jv
    let u = vec (randn 4 3)
    let _, uj = Ad.vjp g x0 u
    assertTensorClose 1e-8 "vjp" (Numerical.vjp g x0 u) uj

[<Test>]
let ``hvp and hessian match finite differences and the Hessian is symmetric`` () =
    let v = vec (randn 5 4)
    assertTensorClose 1e-6 "hvp" (Numerical.hvp f x0 v) (Ad.hvp f x0 v)
    let h = Ad.hessian f x0
    Assert.That(h.Shape, equalTo [| 4; 4 |])
    assertTensorClose 1e-6 "hessian" (Numerical.hessian f x0) h
    let a = Tensor.toArray2D h

    for i in 0..3 do
        for j in 0..3 do
            assertClose 1e-14 (sprintf "symmetry %d,%d" i j) a.[i, j] a.[j, i]

[<Test>]
let ``jacobian by jvps (tall) and by vjps (wide) match finite differences`` () =
    let tall (x: Tensor) =
        Tensor.tanh (Tensor.matmul (t [| 6; 4 |] (randn 6 24)) (Tensor.view [| 4; 1 |] x)) |> Tensor.flatten

    let wide (x: Tensor) = Tensor.tanh (Tensor.matmul (t [| 2; 4 |] (randn 7 8)) (Tensor.view [| 4; 1 |] x)) |> Tensor.flatten

    for name, g in [ "tall", tall; "wide", wide ] do
        let j = Ad.jacobian g x0
        assertTensorClose 1e-8 name (Numerical.jacobian g x0) j

[<Test>]
let ``gradients with respect to several inputs`` () =
    let a, b = vec [| 1.0; 2.0 |], vec [| 3.0; -1.0 |]
    let y, gs = Ad.valueAndGradMany (fun xs -> Tensor.sum (xs.[0] * xs.[1] * xs.[1])) [| a; b |]
    assertClose 0.0 "value" 11.0 (Tensor.toScalar y)
    Assert.That(Tensor.toArray gs.[0], equalTo [| 9.0; 1.0 |])
    Assert.That(Tensor.toArray gs.[1], equalTo [| 6.0; -4.0 |])

    let _, d =
        Ad.jvpMany (fun xs -> Tensor.sum (xs.[0] * xs.[1])) [| a; b |] [| vec [| 1.0; 0.0 |]; vec [| 0.0; 1.0 |] |]

    assertClose 0.0 "jvpMany" 5.0 (Tensor.toScalar d)

[<Test>]
let ``float32 gradients agree with float64 gradients`` () =
    let x32 = Tensor.cast Dtype.Float32 x0
    let w32 = Tensor.cast Dtype.Float32 w

    let f32 (x: Tensor) =
        Tensor.sum (Tensor.tanh (Tensor.matmul w32 (Tensor.view [| 4; 1 |] x)))
        + Tensor.sum (x * x * x) / 3.0

    let g32 = Ad.grad f32 x32
    Assert.That(g32.Dtype, equalTo Dtype.Float32)
    assertTensorClose 1e-5 "float32 grad" (Ad.grad f x0) g32
    let h32 = Ad.hvp f32 x32 (Tensor.cast Dtype.Float32 (vec (randn 5 4)))
    assertTensorClose 1e-5 "float32 hvp" (Ad.hvp f x0 (vec (randn 5 4))) h32
