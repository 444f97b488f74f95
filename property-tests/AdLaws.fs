/// Laws of the nested AD core on random compositions of ops: forward and reverse mode
/// agree; the Hessian-vector product is the same by every nesting; third derivatives by
/// every nesting agree and match finite differences.
module GroupedNewton.PropertyTests.AdLaws

open System
open Expecto
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

let private close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))

/// Two nestings of the same derivative agree: close when both are finite; where the
/// function itself overflows (a chain of exponentials easily passes 1e308), the same
/// infinity or NaN on both sides. The nestings do compute identical non-finite values
/// there; a relative comparison is simply undefined for them.
let private agree (tol: float) (a: float) (b: float) = if Double.IsFinite a && Double.IsFinite b then close tol a b else a.Equals b

let private scalarF (p: Problem) = fun (x: Tensor) -> Tensor.sum (eval p.Expr x)

let ``forward and reverse mode give the same directional derivative`` =
    Run.property "forward and reverse mode give the same directional derivative" 60 [ typeof<Arbitraries> ] (fun (p: Problem) ->
        let f = scalarF p
        let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V
        let fwd = Tensor.toScalar (snd (Ad.jvp f x v))
        let rev = Tensor.toScalar (Tensor.dot (Ad.grad f x) v)
        close 1e-10 fwd rev && close 1e-5 (Numerical.directional 1 f x v) fwd)

/// H·v by the three nestings, compared elementwise.
let private hvpNestingsAgree (p: Problem) =
    let f = scalarF p
    let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V
    let a = Tensor.toArray (Ad.hvp f x v)
    let b = Tensor.toArray (snd (Ad.jvp (Ad.grad f) x v))
    let c = Tensor.toArray (Ad.grad (fun z -> Tensor.dot (Ad.grad f z) v) x)
    let ok = Array.forall2 (agree 1e-9) a b && Array.forall2 (agree 1e-9) a c

    if not ok then
        printfn "hvp nestings differ for %O at %A along %A:\n  %A\n  %A\n  %A" p.Expr p.X p.V a b c

    ok

let ``hvp by reverse∘forward, forward∘reverse and reverse∘reverse agree`` =
    Run.property "hvp by reverse∘forward, forward∘reverse and reverse∘reverse agree" 40 [ typeof<Arbitraries> ] hvpNestingsAgree

/// The case a long-mode run found: a deep chain of exp0.3 under logsumexp.
let ``hvp nestings agree on the recorded exp-chain case`` =
    Run.replayed
        "hvp nestings agree on the recorded exp-chain case"
        [ typeof<Arbitraries> ]
        (408149342622319280UL, 16736748902868594687UL, 79)
        hvpNestingsAgree

/// The three nestings agree to 1e-8 plus the rounding the expression itself shows: the
/// same forward nesting along 3v, divided by 27 (equal in exact arithmetic, not in floating
/// point), measures how much rounding the value carries. Where a saturating op sits on a
/// steep chain (tanh over logsumexp over exp0.3∘exp0.3) the result is a small difference of
/// large terms, and all nestings carry rounding far above 1e-8 of it.
/// A value that overflows is not finite in any nesting.
let private thirdNestingsAgree (p: Problem) =
    let f = scalarF p
    let x, v = Tensor.ofArray p.X, Tensor.ofArray p.V

    let along (w: Tensor) =
        let d1 (z: Tensor) = snd (Ad.jvp f z w)
        let d2 (z: Tensor) = snd (Ad.jvp d1 z w)
        d2, Tensor.toScalar (snd (Ad.jvp d2 x w))

    let d2, fff = along v
    let rff = Tensor.toScalar (Tensor.dot (Ad.grad d2 x) v)

    let rrr =
        let g1 (z: Tensor) = Tensor.dot (Ad.grad f z) v
        let g2 (z: Tensor) = Tensor.dot (Ad.grad g1 z) v
        Tensor.toScalar (Tensor.dot (Ad.grad g2 x) v)

    let rounding = abs (fff - snd (along (3.0 * v)) / 27.0)
    let near (a: float) (b: float) = abs (a - b) <= 1e-8 * max 1.0 (max (abs a) (abs b)) + 100.0 * rounding
    let h = 1e-5
    let fd = (Tensor.toScalar (d2 (x + h * v)) - Tensor.toScalar (d2 (x - h * v))) / (2.0 * h)
    let finite = [ fff; rff; rrr ] |> List.map Double.IsFinite
    // where the value overflows float64 (exp0.3 over a fourth power), the nestings overflow
    // in different ways (∞ forward, ∞ − ∞ = NaN in reverse): all of them, or none
    if List.forall id finite then
        near fff rff && near fff rrr && close 1e-4 fd fff
    else
        not (List.exists id finite)

let ``third directional derivatives agree across nestings and with finite differences`` =
    Run.property
        "third directional derivatives agree across nestings and with finite differences"
        25
        [ typeof<Arbitraries> ]
        thirdNestingsAgree

/// The case a long-mode run found: tanh over logsumexp over a chain of exp0.3.
let ``third derivatives agree on the recorded saturated exp-chain case`` =
    Run.replayed
        "third derivatives agree on the recorded saturated exp-chain case"
        [ typeof<Arbitraries> ]
        (737237906968305310UL, 102188470816368739UL, 55)
        thirdNestingsAgree

/// An anchor for the generator's evaluator: the expression (x · tanh x) has the gradient
/// tanh x + x (1 − tanh² x).
let ``the evaluator differentiates a known expression exactly`` () =
    let e = Binary("*", X 1.0, Unary("tanh", X 1.0))
    let xs = [| -1.3; 0.2; 0.9 |]
    let g = Ad.grad (fun x -> Tensor.sum (eval e x)) (Tensor.ofArray xs) |> Tensor.toArray
    let expected = xs |> Array.map (fun x -> tanh x + x * (1.0 - tanh x * tanh x))
    Expect.isTrue (Array.forall2 (close 1e-15) expected g) (sprintf "%A vs %A" g expected)

[<Tests>]
let tests =
    testList "AdLaws" [
        ``forward and reverse mode give the same directional derivative``
        ``hvp by reverse∘forward, forward∘reverse and reverse∘reverse agree``
        ``hvp nestings agree on the recorded exp-chain case``
        ``third directional derivatives agree across nestings and with finite differences``
        ``third derivatives agree on the recorded saturated exp-chain case``
        testCase "the evaluator differentiates a known expression exactly" ``the evaluator differentiates a known expression exactly``
    ]
