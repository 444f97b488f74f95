/// Nested differentiation: perturbation confusion, tag-aware extraction, high orders,
/// and the Hessian-vector product by each nesting.
module GroupedNewton.Tests.NestingTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

[<Test>]
let ``d/dx of x times d/dy x is zero (the inner result does not depend on y)`` () =
    let r = Ad.diff (fun x -> x * Ad.diff (fun _ -> x) (Tensor.scalar 3.0)) (Tensor.scalar 1.7)
    assertClose 0.0 "d/dx[x · d/dy x]" 0.0 (Tensor.toScalar r)

[<Test>]
let ``d/dx of the primal of an inner jvp of x*x is 2x`` () =
    let x0 = 1.25

    let r =
        Ad.diff (fun x -> fst (Ad.jvp (fun _ -> x * x) (Tensor.scalar 3.0) (Tensor.scalar 1.0))) (Tensor.scalar x0)

    assertClose 1e-15 "d/dx[first (jvp (fun y -> x*x))]" (2.0 * x0) (Tensor.toScalar r)

[<Test>]
let ``the same through reverse mode at both levels`` () =
    let x0 = -0.75
    let inner (x: Tensor) = fst (Ad.valueAndGrad (fun _ -> x * x) (Tensor.scalar 3.0))
    let g = Ad.grad inner (Tensor.scalar x0)
    assertClose 1e-15 "grad of an inner primal" (2.0 * x0) (Tensor.toScalar g)
    let z = Ad.grad (fun x -> x * Ad.grad (fun _ -> x) (Tensor.scalar 3.0)) (Tensor.scalar x0)
    assertClose 0.0 "grad[x · grad_y x]" 0.0 (Tensor.toScalar z)

[<Test>]
let ``Siskind-Pearlmutter: D (x -> x * D (y -> x + y) 1) 1 = 1`` () =
    let f (x: Tensor) = x * Ad.diff (fun y -> x + y) (Tensor.scalar 1.0)
    assertClose 0.0 "forward∘forward" 1.0 (Tensor.toScalar (Ad.diff f (Tensor.scalar 1.0)))
    assertClose 0.0 "reverse∘forward" 1.0 (Tensor.toScalar (Ad.grad f (Tensor.scalar 1.0)))
    let g (x: Tensor) = x * Ad.grad (fun y -> x + y) (Tensor.scalar 1.0)
    assertClose 0.0 "reverse∘reverse" 1.0 (Tensor.toScalar (Ad.grad g (Tensor.scalar 1.0)))
    assertClose 0.0 "forward∘reverse" 1.0 (Tensor.toScalar (Ad.diff g (Tensor.scalar 1.0)))

[<Test>]
let ``an input that does not reach the output has a zero gradient of its shape`` () =
    let gs =
        Ad.gradMany (fun xs -> Tensor.sum (xs.[0] * xs.[0])) [| vec [| 1.0; 2.0 |]; Tensor.zeros [| 3; 2 |] |]

    assertAllClose 0.0 "used" [| 2.0; 4.0 |] (Tensor.toArray gs.[0])
    Assert.That(gs.[1].Shape, equalTo [| 3; 2 |])
    assertAllClose 0.0 "unused" (Array.zeroCreate 6) (Tensor.toArray gs.[1])

[<Test>]
let ``a constant function has zero derivatives at every order`` () =
    let c = Tensor.scalar 4.0
    Assert.That(Tensor.toScalar (Ad.diffn 3 (fun _ -> c) (Tensor.scalar 1.0)), equalTo 0.0)
    Assert.That(Tensor.toArray (Ad.hessian (fun _ -> c) (vec [| 1.0; 2.0 |])), equalTo (Array.zeroCreate<float> 4))

/// Coefficients of the polynomial P_n with tanh⁽ⁿ⁾(x) = P_n(tanh x): P_{n+1} = P_n' · (1 − t²).
let private tanhDerivativePoly (n: int) =
    let mutable p = [| 0.0; 1.0 |]

    for _ in 1..n do
        let d =
            Array.init (max 1 (p.Length - 1)) (fun i -> if i + 1 < p.Length then float (i + 1) * p.[i + 1] else 0.0)

        let r = Array.zeroCreate (d.Length + 2)

        d
        |> Array.iteri (fun i c ->
            r.[i] <- r.[i] + c
            r.[i + 2] <- r.[i + 2] - c)

        p <- r

    p

[<TestCase(1)>]
[<TestCase(3)>]
[<TestCase(6)>]
let ``n-th derivative of tanh by nested forward mode matches the analytic polynomial`` (n: int) =
    let x0 = 0.4
    let th = tanh x0
    let expected = tanhDerivativePoly n |> Array.mapi (fun i c -> c * pown th i) |> Array.sum
    assertClose 1e-12 (sprintf "tanh^(%d)" n) expected (Tensor.toScalar (Ad.diffn n Tensor.tanh (Tensor.scalar x0)))

let private rosenbrock (x: Tensor) =
    let a = Tensor.narrow 0 0 1 x
    let b = Tensor.narrow 0 1 1 x
    Tensor.sum ((1.0 - a) ** 2.0 + 100.0 * (b - a * a) ** 2.0)

[<Test>]
let ``Hessian-vector products by reverse∘forward, forward∘reverse and reverse∘reverse match the analytic Rosenbrock Hessian`` () =
    let x, y = 1.3, 0.7
    let h = array2D [ [ 2.0 - 400.0 * (y - x * x) + 800.0 * x * x; -400.0 * x ]; [ -400.0 * x; 200.0 ] ]
    let v = [| 0.3; -1.1 |]
    let expected = [| h.[0, 0] * v.[0] + h.[0, 1] * v.[1]; h.[1, 0] * v.[0] + h.[1, 1] * v.[1] |]
    let xt, vt = vec [| x; y |], vec v
    let revFwd = Ad.hvp rosenbrock xt vt
    let fwdRev = snd (Ad.jvp (Ad.grad rosenbrock) xt vt)
    let revRev = Ad.grad (fun z -> Tensor.dot (Ad.grad rosenbrock z) vt) xt

    for name, r in [ "reverse∘forward", revFwd; "forward∘reverse", fwdRev; "reverse∘reverse", revRev ] do
        assertAllClose 1e-13 name expected (Tensor.toArray r)

    assertAllClose 1e-13 "hessian" [| h.[0, 0]; h.[0, 1]; h.[1, 0]; h.[1, 1] |] (Tensor.toArray (Ad.hessian rosenbrock xt))

[<Test>]
let ``third derivative tensor contraction of an MLP loss agrees across nestings`` () =
    // D³L[u, u, ·] by reverse∘forward∘forward against forward∘forward∘reverse, and its
    // contraction with u against a third-order stencil
    let w1 = vec (randn 1 12) |> Tensor.view [| 4; 3 |]
    let xb = vec (randn 2 15) |> Tensor.view [| 5; 3 |]
    let lab = Tensor.ofInts [| 0; 1; 3; 2; 1 |]

    let loss (w2flat: Tensor) =
        let h = Tensor.tanh (Tensor.matmulT false true xb w1)
        Tensor.crossEntropy (Tensor.matmul h (Tensor.view [| 4; 4 |] w2flat)) lab

    let w2 = vec (randn 3 16)
    let u = vec (randn 4 16)
    let d2 (z: Tensor) = snd (Ad.jvp (fun q -> snd (Ad.jvp loss q u)) z u)
    let rff = Ad.grad d2 w2
    let ffr = snd (Ad.jvp (fun z -> snd (Ad.jvp (Ad.grad loss) z u)) w2 u)
    assertTensorClose 1e-11 "D³L[u,u,·]" rff ffr
    let fd = Numerical.directional 3 loss w2 u
    assertClose 1e-4 "D³L[u,u,u]" fd (Tensor.toScalar (Tensor.dot rff u))

[<Test>]
let ``nested derivatives computed on many threads at once equal the sequential ones`` () =
    let f (x: Tensor) = Tensor.sum (Tensor.tanh (x * x) * x)

    let third (seed: int) =
        let x = vec (randn seed 5)
        let v = vec (randn (seed + 1) 5)
        let d2 (z: Tensor) = snd (Ad.jvp (fun q -> snd (Ad.jvp f q v)) z v)
        Tensor.toArray (Ad.grad d2 x)

    let sequential = Array.init 64 third
    let concurrent = Array.zeroCreate 64
    System.Threading.Tasks.Parallel.For(0, 64, fun i -> concurrent.[i] <- third i) |> ignore

    for i in 0..63 do
        Assert.That(concurrent.[i], equalTo sequential.[i], sprintf "seed %d" i)
