/// Laws of the nested AD core on random compositions of ops: forward and reverse mode
/// agree; the Hessian-vector product is the same by every nesting; third derivatives by
/// every nesting agree and match finite differences.
module GroupedNewton.PropertyTests.AdLaws

open FsCheck.NUnit
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

let private close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))

let private scalarF (p: Problem) = fun (x: Tensor) -> Tensor.sum (eval p.Expr x)

[<NUnit.Framework.Test>]
let ``forward and reverse mode give the same directional derivative`` () =
    Run.check 60 [ typeof<Arbitraries> ] (fun (p: Problem) ->
        let f = scalarF p
        let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V
        let fwd = Tensor.toScalar (snd (Ad.jvp f x v))
        let rev = Tensor.toScalar (Tensor.dot (Ad.grad f x) v)
        close 1e-10 fwd rev && close 1e-5 (Numerical.directional 1 f x v) fwd)

[<NUnit.Framework.Test>]
let ``hvp by reverse∘forward, forward∘reverse and reverse∘reverse agree`` () =
    Run.check 40 [ typeof<Arbitraries> ] (fun (p: Problem) ->
        let f = scalarF p
        let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V
        let a = Tensor.toArray (Ad.hvp f x v)
        let b = Tensor.toArray (snd (Ad.jvp (Ad.grad f) x v))
        let c = Tensor.toArray (Ad.grad (fun z -> Tensor.dot (Ad.grad f z) v) x)
        Array.forall2 (close 1e-9) a b && Array.forall2 (close 1e-9) a c)

[<NUnit.Framework.Test>]
let ``third directional derivatives agree across nestings and with finite differences`` () =
    Run.check 25 [ typeof<Arbitraries> ] (fun (p: Problem) ->
        let f = scalarF p
        let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V
        let d1 (z: Tensor) = snd (Ad.jvp f z v)
        let d2 (z: Tensor) = snd (Ad.jvp d1 z v)
        let fff = Tensor.toScalar (snd (Ad.jvp d2 x v))
        let rff = Tensor.toScalar (Tensor.dot (Ad.grad d2 x) v)
        let rrr =
            let g1 (z: Tensor) = Tensor.dot (Ad.grad f z) v
            let g2 (z: Tensor) = Tensor.dot (Ad.grad g1 z) v
            Tensor.toScalar (Tensor.dot (Ad.grad g2 x) v)
        let h = 1e-5
        let fd = (Tensor.toScalar (d2 (x + h * v)) - Tensor.toScalar (d2 (x - h * v))) / (2.0 * h)
        close 1e-8 fff rff && close 1e-8 fff rrr && close 1e-4 fd fff)

/// An anchor for the generator's evaluator: the expression (x · tanh x) has the gradient
/// tanh x + x (1 − tanh² x).
[<NUnit.Framework.Test>]
let ``the evaluator differentiates a known expression exactly`` () =
    let e = Binary ("*", X 1.0, Unary ("tanh", X 1.0))
    let xs = [| -1.3; 0.2; 0.9 |]
    let g = Ad.grad (fun x -> Tensor.sum (eval e x)) (Tensor.ofArray xs) |> Tensor.toArray
    let expected = xs |> Array.map (fun x -> tanh x + x * (1.0 - tanh x * tanh x))
    NUnit.Framework.Assert.That(Array.forall2 (close 1e-15) expected g, NUnit.Framework.Is.True, sprintf "%A vs %A" g expected)
