/// BFGS building blocks of K-BFGS (docs/kbfgs.md: the damping, the gated update and K-BFGS(L), with
/// reference values computed independently).
module GroupedNewton.Tests.BfgsTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private h3 = array2D [ [ 2.0; 0.3; 0.0 ]; [ 0.3; 1.0; 0.1 ]; [ 0.0; 0.1; 0.5 ] ]
let private mu1 = 0.2
let private mu2 = sqrt 0.3

let private rows (m: float[,]) = Array.init (Array2D.length1 m) (fun i -> m.[i, *])
let private flat (m: float[,]) = Array.concat (rows m)
let private maxAbsDiff (a: float[]) (b: float[]) = Array.fold2 (fun acc x y -> max acc (abs (x - y))) 0.0 a b

let private matMul (a: float[,]) (b: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 b) (fun i j ->
        Seq.sum (seq { for k in 0 .. Array2D.length2 a - 1 -> a.[i, k] * b.[k, j] }))

/// (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ, the textbook product form.
let private productForm (h: float[,]) (s: float[]) (y: float[]) =
    let n = s.Length
    let rho = 1.0 / Bfgs.dot s y
    let left = Array2D.init n n (fun i j -> (if i = j then 1.0 else 0.0) - rho * s.[i] * y.[j])
    let right = Array2D.init n n (fun i j -> (if i = j then 1.0 else 0.0) - rho * y.[i] * s.[j])
    let m = matMul (matMul left h) right
    Array2D.init n n (fun i j -> m.[i, j] + rho * s.[i] * s.[j])

let private inverseOf (m: float[,]) =
    let n = Array2D.length1 m

    let cols =
        Array.init n (fun j -> (DenseAlgebra.trySolve m (Array.init n (fun i -> if i = j then 1.0 else 0.0))).Value)

    Array2D.init n n (fun i j -> cols.[j].[i])

[<Test>]
let ``the BFGS inverse update has the reference values and satisfies the secant condition`` () =
    let s = [| 0.5; -0.2; 0.1 |]
    let y = [| 0.4; 0.1; -0.3 |]
    assertClose 1e-15 "sᵀy" 0.15 (Bfgs.dot s y)
    let hn = Bfgs.inverseUpdate h3 s y
    assertAllClose 1e-12 "H⁺" [| 2.5; -1.64; 1.12; -1.64; 2.472; -0.696; 1.12; -0.696; 0.928 |] (flat hn)
    Assert.That(maxAbsDiff (Bfgs.matVec hn y) s, Is.LessThan 1e-15, "H⁺y = s")

    for i in 0..2 do
        for j in 0..2 do
            Assert.That(hn.[i, j], Is.EqualTo hn.[j, i], "symmetric")

    assertAllClose 1e-14 "product form" (flat (productForm h3 s y)) (flat hn)
    // the gated update makes the same change and reports it
    let status, hg = Bfgs.gatedUpdate 1e-4 h3 s y s
    Assert.That(status, equalTo BfgsStatus.Updated)
    assertAllClose 0.0 "gated" (flat hn) (flat hg)

[<Test>]
let ``Powell damping on H of a negative-curvature pair`` () =
    let s = [| 0.5; -0.2; 0.1 |]
    let y = [| -0.4; 0.1; 0.3 |]
    assertClose 1e-15 "sᵀy" -0.19 (Bfgs.dot s y)
    let sd, damped = Bfgs.powell mu1 s y (Bfgs.matVec h3 y)
    Assert.That(damped, Is.True)
    assertAllClose 1e-10 "s̃" [| -0.1069067642; -0.0996453382; 0.1286727605 |] sd
    let yhy = Bfgs.dot y (Bfgs.matVec h3 y)
    assertClose 1e-15 "s̃ᵀy = μ1·yᵀHy" (mu1 * yhy) (Bfgs.dot sd y)
    assertClose 1e-14 "s̃ᵀy = 0.0714" 0.0714 (Bfgs.dot sd y)
    // a pair with enough curvature is left alone
    let s2 = [| 0.5; -0.2; 0.1 |]
    let kept, d2 = Bfgs.powell mu1 s2 [| 0.4; 0.1; -0.3 |] (Bfgs.matVec h3 [| 0.4; 0.1; -0.3 |])
    Assert.That(d2, Is.False)
    Assert.That(kept, equalTo s2)

[<Test>]
let ``double damping (NeurIPS DD), second stage idle and triggered`` () =
    let s = [| 0.5; -0.2; 0.1 |]
    let y = [| -0.4; 0.1; 0.3 |]
    let p = Bfgs.damp SecondStageDamping.Powell mu1 mu2 (Bfgs.matVec h3) s y
    Assert.That((p.PowellApplied, p.SecondStageApplied), equalTo (true, false))
    Assert.That(p.Y, equalTo y)
    Assert.That(Bfgs.dot p.S p.Y, Is.GreaterThanOrEqualTo(mu2 * Bfgs.dot p.S p.S))
    assertClose 1e-6 "μ2‖s̃‖²" 0.020767 (mu2 * Bfgs.dot p.S p.S)
    // triggered: H = I, s = e1, y = 0.1 e1
    let i3 = Array2D.init 3 3 (fun i j -> if i = j then 1.0 else 0.0)

    let q =
        Bfgs.damp SecondStageDamping.Powell mu1 mu2 (Bfgs.matVec i3) [| 1.0; 0.0; 0.0 |] [| 0.1; 0.0; 0.0 |]

    Assert.That((q.PowellApplied, q.SecondStageApplied), equalTo (false, true))
    Assert.That(q.S, equalTo [| 1.0; 0.0; 0.0 |])
    assertAllClose 1e-10 "ỹ" [| 0.5477225575; 0.0; 0.0 |] q.Y
    assertClose 1e-15 "s̃ᵀỹ = μ2‖s̃‖²" mu2 (Bfgs.dot q.S q.Y)
    let theta2 = (1.0 - mu2) / 0.9
    assertClose 1e-15 "θ2" (theta2 * 0.1 + (1.0 - theta2)) q.Y.[0]

[<Test>]
let ``DDV2 (Powell then Levenberg–Marquardt) and the BFGS update after it`` () =
    let s = [| 0.5; -0.2; 0.1 |]
    let y = [| -0.4; 0.1; 0.3 |]
    let p = Bfgs.damp SecondStageDamping.LevenbergMarquardt mu1 mu2 (Bfgs.matVec h3) s y
    Assert.That((p.PowellApplied, p.SecondStageApplied), equalTo (true, true))
    assertAllClose 1e-10 "s̃" [| -0.1069067642; -0.0996453382; 0.1286727605 |] p.S
    assertAllClose 1e-10 "ỹ" [| -0.4585552463; 0.0454220005; 0.3704769735 |] p.Y
    assertClose 1e-6 "s̃ᵀỹ" 0.092167 (Bfgs.dot p.S p.Y)
    let status, hn = Bfgs.gatedUpdate 1e-4 h3 p.S p.Y y
    Assert.That(status, equalTo BfgsStatus.Updated)
    Assert.That(maxAbsDiff (Bfgs.matVec hn p.Y) p.S, Is.LessThan 1e-15)

[<Test>]
let ``the gates keep H, and a joint scaling of (s, y) changes nothing`` () =
    let s = [| 0.5; -0.2; 0.1 |]
    let st, h = Bfgs.gatedUpdate 1e-4 h3 s [| -0.4; 0.1; 0.3 |] s
    Assert.That(st, equalTo BfgsStatus.NonPositiveCurvature)
    Assert.That(obj.ReferenceEquals(h, h3), Is.True)
    let st0, _ = Bfgs.gatedUpdate 1e-4 h3 s [| 0.0; 0.0; 0.0 |] s
    Assert.That(st0, equalTo BfgsStatus.NonPositiveCurvature)
    // sᵀy = 1e-6 > 0 but ≤ 1e-4·sᵀs·‖g‖ with ‖g‖ = 1
    let sSmall = [| 1.0; 0.0; 0.0 |]
    let ySmall = [| 1e-6; 1.0; 0.0 |]
    let st2, h2 = Bfgs.gatedUpdate 1e-4 h3 sSmall ySmall [| 0.0; 1.0; 0.0 |]
    Assert.That(st2, equalTo BfgsStatus.SmallCurvature)
    Assert.That(obj.ReferenceEquals(h2, h3), Is.True)
    // the same pair passes with a smaller gate vector
    let st3, _ = Bfgs.gatedUpdate 1e-4 h3 sSmall ySmall [| 0.0; 1e-3; 0.0 |]
    Assert.That(st3, equalTo BfgsStatus.Updated)
    // an overflowing result is rejected
    let st4, h4 =
        Bfgs.gatedUpdate 1e-4 h3 [| 1e200; 0.0; 0.0 |] [| 1e-200; 1e-100; 0.0 |] [| 0.0; 0.0; 0.0 |]

    Assert.That(st4, equalTo BfgsStatus.NonFinite)
    Assert.That(obj.ReferenceEquals(h4, h3), Is.True)
    // joint scaling: (10s, 10y) gives the same damped direction and the same H⁺
    let yb = [| -0.4; 0.1; 0.3 |]

    for second in [ SecondStageDamping.Powell; SecondStageDamping.LevenbergMarquardt ] do
        let p1 = Bfgs.damp second mu1 mu2 (Bfgs.matVec h3) s yb

        let p10 =
            Bfgs.damp second mu1 mu2 (Bfgs.matVec h3) (s |> Array.map ((*) 10.0)) (yb |> Array.map ((*) 10.0))

        assertAllClose 1e-14 "s̃ scales" (p1.S |> Array.map ((*) 10.0)) p10.S
        assertAllClose 1e-14 "ỹ scales" (p1.Y |> Array.map ((*) 10.0)) p10.Y
        assertAllClose 1e-13 "H⁺" (flat (Bfgs.inverseUpdate h3 p1.S p1.Y)) (flat (Bfgs.inverseUpdate h3 p10.S p10.Y))

[<Test>]
let ``Hessian-action updates drive H to (A + λI)⁻¹`` () =
    let n = 4
    let x = randn 11 (20 * n)

    let a =
        Array2D.init n n (fun i j -> Seq.sum (seq { for r in 0..19 -> x.[r * n + i] * x.[r * n + j] }) / 20.0)

    let m = Array2D.init n n (fun i j -> a.[i, j] + (if i = j then 0.3 else 0.0))
    let minv = inverseOf m
    let mutable h = Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)
    // the reference construction reaches 7e-12 after 60 updates with its RNG; with this one the error is 3e-10
    // after 60 and below 1e-13 after 100 (the convergence is superlinear)
    let vs = randn 12 (100 * n)
    let mutable after20 = 0.0

    for it in 0..99 do
        let v = vs.[it * n .. it * n + n - 1]
        let s = Bfgs.matVec h v
        let y = Bfgs.matVec m s
        let status, next = Bfgs.gatedUpdate 1e-4 h s y v
        Assert.That(status, equalTo BfgsStatus.Updated)
        h <- next

        if it = 19 then
            after20 <- maxAbsDiff (flat h) (flat minv)

    Assert.That(after20, Is.GreaterThan 1e-6, "not there after 20 updates")
    Assert.That(maxAbsDiff (flat h) (flat minv), Is.LessThan 1e-12)
    // and the Cholesky inverse used for H_a⁰ agrees with an explicit solve
    let chol = (Bfgs.choleskyInverse m).Value
    Assert.That(maxAbsDiff (flat chol) (flat minv), Is.LessThan 1e-13)
    Assert.That(Bfgs.choleskyInverse (array2D [ [ 1.0; 2.0 ]; [ 2.0; 1.0 ] ]), equalTo None, "indefinite")

/// Five pairs of the reference construction: s random, y = M s + noise.
let private lbfgsPairs (seed: int) (n: int) (count: int) =
    let x = randn seed (20 * n)

    let m =
        Array2D.init n n (fun i j ->
            Seq.sum (seq { for r in 0..19 -> x.[r * n + i] * x.[r * n + j] }) / 20.0
            + (if i = j then 0.3 else 0.0))

    let z = randn (seed + 1) (2 * n * count)

    [
        for k in 0 .. count - 1 do
            let s = z.[2 * n * k .. 2 * n * k + n - 1]
            let noise = z.[2 * n * k + n .. 2 * n * k + 2 * n - 1] |> Array.map (fun v -> 0.05 * v)
            let y = Array.map2 (+) (Bfgs.matVec m s) noise

            if Bfgs.dot s y > 0.0 then
                yield s, y
    ]

[<Test>]
let ``L-BFGS compact form, two-loop recursion and explicit BFGS recursion agree`` () =
    let n = 4
    let pairs = lbfgsPairs 21 n 5
    Assert.That(pairs.Length, equalTo 5)
    let mem = pairs |> List.fold (fun m (s, y) -> Lbfgs.push m s y) (Lbfgs.empty 100 n 1.0)

    let explicitH =
        pairs
        |> List.fold (fun h (s, y) -> Bfgs.inverseUpdate h s y) (Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0))

    let v = [| 1.0; 2.0; -1.0; 0.5 |]
    let reference = Bfgs.matVec explicitH v
    Assert.That(maxAbsDiff (Lbfgs.twoLoop mem v) reference, Is.LessThan 1e-13)
    Assert.That(maxAbsDiff (Lbfgs.compactTimesVector mem v) reference, Is.LessThan 1e-13)
    // many right-hand sides at once: columns of H X
    let xs = randn 31 (n * 6)
    let hx = Tensor.toArray (Lbfgs.compactTimes mem (t [| n; 6 |] xs))

    for c in 0..5 do
        let col = Array.init n (fun i -> xs.[i * 6 + c])
        let expected = Bfgs.matVec explicitH col
        Assert.That(maxAbsDiff (Array.init n (fun i -> hx.[i * 6 + c])) expected, Is.LessThan 1e-13)
    // γ scales the initial matrix
    let memG = pairs |> List.fold (fun m (s, y) -> Lbfgs.push m s y) (Lbfgs.empty 100 n 0.5)

    let explicitG =
        pairs
        |> List.fold (fun h (s, y) -> Bfgs.inverseUpdate h s y) (Array2D.init n n (fun i j -> if i = j then 0.5 else 0.0))

    Assert.That(maxAbsDiff (Lbfgs.compactTimesVector memG v) (Bfgs.matVec explicitG v), Is.LessThan 1e-13)
    Assert.That(maxAbsDiff (Lbfgs.twoLoop memG v) (Bfgs.matVec explicitG v), Is.LessThan 1e-13)
    // an empty memory is γI
    Assert.That(Lbfgs.twoLoop (Lbfgs.empty 3 n 2.0) v, equalTo (v |> Array.map ((*) 2.0)))

[<Test>]
let ``L-BFGS memory is first in, first out`` () =
    let n = 3
    let pairs = lbfgsPairs 41 n 12
    let full = pairs |> List.fold (fun m (s, y) -> Lbfgs.push m s y) (Lbfgs.empty 100 n 1.0)
    Assert.That(full.Pairs.Length, equalTo pairs.Length)
    let small = pairs |> List.fold (fun m (s, y) -> Lbfgs.push m s y) (Lbfgs.empty 4 n 1.0)
    Assert.That(small.Pairs.Length, equalTo 4)
    let lastFour = pairs |> List.skip (pairs.Length - 4)
    Assert.That(small.Pairs |> Array.map fst, equalTo (lastFour |> List.map fst |> Array.ofList))

    let explicitH =
        lastFour
        |> List.fold (fun h (s, y) -> Bfgs.inverseUpdate h s y) (Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0))

    let v = [| 0.3; -1.0; 2.0 |]
    Assert.That(maxAbsDiff (Lbfgs.twoLoop small v) (Bfgs.matVec explicitH v), Is.LessThan 1e-13)
    // the default memory size: 105 pushes keep the last 100
    let many = randn 51 (2 * n * 105)

    let mem100 =
        Seq.fold
            (fun m k ->
                let s = many.[2 * n * k .. 2 * n * k + n - 1]
                Lbfgs.push m s (s |> Array.map ((*) 2.0)))
            (Lbfgs.empty 100 n 1.0)
            [ 0..104 ]

    Assert.That(mem100.Pairs.Length, equalTo 100)
    Assert.That(fst mem100.Pairs.[0], equalTo many.[2 * n * 5 .. 2 * n * 5 + n - 1])

[<Test>]
let ``the preconditioned direction is (H_a ⊗ H_g) vec(Ĝ) with column-major vec`` () =
    let dg, da = 3, 4
    let hg = array2D [ [ 1.0; 0.2; 0.0 ]; [ 0.2; 2.0; 0.1 ]; [ 0.0; 0.1; 0.7 ] ]

    let ha =
        array2D [ [ 1.5; 0.1; 0.0; 0.0 ]; [ 0.1; 1.0; 0.2; 0.0 ]; [ 0.0; 0.2; 0.8; 0.1 ]; [ 0.0; 0.0; 0.1; 1.2 ] ]

    let gr = randn 61 (dg * da)
    let p = Tensor.toArray (KbfgsAlgebra.precondition Dtype.Float64 (GSide.Dense hg) (t [| dg; da |] gr) ha)
    // vec stacks columns: index (ja, ia) ↦ ja·dg + ia
    let vecCm (m: int -> int -> float) = Array.init (dg * da) (fun k -> m (k % dg) (k / dg))
    let kron = Array2D.init (dg * da) (dg * da) (fun r c -> ha.[r / dg, c / dg] * hg.[r % dg, c % dg])
    let lhs = Bfgs.matVec kron (vecCm (fun i j -> gr.[i * da + j]))
    Assert.That(maxAbsDiff lhs (vecCm (fun i j -> p.[i * da + j])), Is.LessThan 1e-14)
    // a row-major vec would need the other Kronecker order
    let kronSwapped =
        Array2D.init (dg * da) (dg * da) (fun r c -> hg.[r / da, c / da] * ha.[r % da, c % da])

    let rowMajor = Bfgs.matVec kronSwapped gr
    Assert.That(maxAbsDiff rowMajor p, Is.LessThan 1e-14)
    // the L-BFGS G side gives the same direction as its explicit matrix
    let pairs = lbfgsPairs 71 dg 3
    let mem = pairs |> List.fold (fun m (s, y) -> Lbfgs.push m s y) (Lbfgs.empty 10 dg 1.0)

    let explicitH =
        pairs
        |> List.fold (fun h (s, y) -> Bfgs.inverseUpdate h s y) (Array2D.init dg dg (fun i j -> if i = j then 1.0 else 0.0))

    let pl =
        Tensor.toArray (KbfgsAlgebra.precondition Dtype.Float64 (GSide.Limited mem) (t [| dg; da |] gr) ha)

    let pd =
        Tensor.toArray (KbfgsAlgebra.precondition Dtype.Float64 (GSide.Dense explicitH) (t [| dg; da |] gr) ha)

    Assert.That(maxAbsDiff pl pd, Is.LessThan 1e-13)
