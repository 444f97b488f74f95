/// Derivatives according to a partition (docs/derivatives.md): the worked example's analytic values, full-derivative and
/// finite-difference oracles, structure laws, pass counts and partitions.
module GroupedNewton.Tests.SummaryTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private xy = Parameters.ofSeq [ "x", Tensor.scalar 1.0; "y", Tensor.scalar 2.0 ]
let private poly (p: Parameters) = let x, y = p.["x"], p.["y"] in x * x * x / 3.0 + x * x * y + y * y * y + x
let private ones = Parameters.ofSeq [ "x", Tensor.scalar 1.0; "y", Tensor.scalar 1.0 ]

[<Test>]
let ``the analytic two-subset example`` () =
    let s = Summary.compute poly xy (Partition.canonical xy) ones
    assertAllClose 1e-14 "ḡ" [| 6.0; 13.0 |] s.Gradient
    assertAllClose 1e-14 "H̄" [| 6.0; 2.0; 2.0; 12.0 |] (Seq.cast<float> s.Hessian |> Array.ofSeq)
    assertAllClose 1e-14 "D̄ diagonal" [| 2.0; 6.0 |] s.ThirdDiagonal
    let full = Summary.tensor 3 poly xy (Partition.canonical xy) ones
    // D000 = 2, D001 (every permutation) = 2, D011 = 0, D111 = 6
    assertAllClose 1e-14 "full D̄" [| 2.0; 2.0; 2.0; 0.0; 2.0; 0.0; 0.0; 6.0 |] full
    Assert.That(s.ReversePasses, Is.LessThanOrEqualTo 5, "no more passes than the reference (1 + 2S)")
    Assert.That(s.ReversePasses, equalTo 3, "1 + S")
    assertClose 0.0 "loss" (1.0 / 3.0 + 2.0 + 8.0 + 1.0) s.Loss

[<Test>]
let ``an infinite off-diagonal H̄ entry with a finite diagonal is refused, naming the entry`` () =
    // L = x·y at 0 along u = (1e200, 1e200): ḡ = 0, H̄_00 = H̄_11 = 0, D̄ = 0, but
    // H̄_01 = u_x·u_y overflows to +∞ (a check of the diagonal alone lets it through)
    let at0 = Parameters.ofSeq [ "x", Tensor.scalar 0.0; "y", Tensor.scalar 0.0 ]
    let huge = Parameters.ofSeq [ "x", Tensor.scalar 1e200; "y", Tensor.scalar 1e200 ]
    let bilinear (p: Parameters) = p.["x"] * p.["y"]

    let ex =
        Assert.Throws<OptimizationException>(fun () -> Summary.compute bilinear at0 (Partition.canonical at0) huge |> ignore)

    Assert.That(ex.Message, Does.Contain "H̄[0, 1] of subsets 0 and 1 ('x', 'y') is Infinity")
    // with the diagonal alone there is no off-diagonal entry to refuse
    let diag =
        Summary.computeWith { SummaryOptions.Defaults with DiagonalOnly = true } bilinear at0 (Partition.canonical at0) huge

    Assert.That(diag.Hessian, equalTo (array2D [ [ 0.0; 0.0 ]; [ 0.0; 0.0 ] ]))

[<Test>]
let ``a NaN loss is refused before its derivatives, naming the loss`` () =
    let ps = Parameters.ofSeq [ "x", Tensor.scalar 1.0 ]
    let nanLoss (p: Parameters) = p.["x"] * p.["x"] * nan

    let ex =
        Assert.Throws<OptimizationException>(fun () -> Summary.compute nanLoss ps (Partition.canonical ps) ps |> ignore)

    Assert.That(ex.Message, Does.Contain "the loss at θ is NaN")

[<Test>]
let ``an infinite D̄ entry is refused, naming the subset`` () =
    // L = x³ + y² at 0 along u = (1e103, 1): ḡ = 0 and H̄ = 0 (x = 0), but D̄_000 = 6·u_x³
    // overflows to +∞
    let ps = Parameters.ofSeq [ "x", Tensor.scalar 0.0; "y", Tensor.scalar 0.0 ]
    let u = Parameters.ofSeq [ "x", Tensor.scalar 1e103; "y", Tensor.scalar 1.0 ]
    let cubicLoss (p: Parameters) = p.["x"] * p.["x"] * p.["x"] + p.["y"] * p.["y"]

    let ex =
        Assert.Throws<OptimizationException>(fun () -> Summary.compute cubicLoss ps (Partition.canonical ps) u |> ignore)

    Assert.That(ex.Message, Does.Contain "D̄[0] of subset 0 ('x') is")
    Assert.That(ex.Message, Does.Contain "Infinity")

/// A tiny tanh MLP (3-4-2) with an MSE loss on 7 samples, float64.
let private tinyMlp () =
    let m =
        Model.sequential "tiny" [| 3 |] { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 5 } [
            LayerSpec.Linear(3, 4, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.Linear(4, 2, true)
        ]

    let x = t [| 7; 3 |] (randn 1 21)
    let y = t [| 7; 2 |] (randn 2 14)
    m, (fun (ps: Parameters) -> Tensor.mse (m.Forward(ps, x)) y)

/// A tiny CNN: conv 2→3 (3×3, padding 1), tanh, max-pool 2, linear 12→2.
let private tinyCnn () =
    let m =
        Model.sequential "tinycnn" [| 2; 4; 4 |] { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 6 } [
            LayerSpec.Conv2d(2, 3, 3, 1, 1, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.MaxPool2d(2, 2, 0)
            LayerSpec.Flatten
            LayerSpec.Linear(12, 2, true)
        ]

    let x = t [| 3; 2; 4; 4 |] (randn 3 96)
    let y = Tensor.ofInts [| 0; 1; 1 |]
    m, (fun (ps: Parameters) -> Tensor.crossEntropy (m.Forward(ps, x)) y)

let private direction (ps: Parameters) seed = ps.WithValues(ps.Values |> Array.mapi (fun i v -> t v.Shape (randn (seed + i) v.Numel)))

/// The oracle: the full gradient, Hessian and third directional derivatives in θ-space.
let private oracle (loss: Parameters -> Tensor) (ps: Parameters) (partition: Partition) (u: Parameters) =
    let sizes = ps.Values |> Array.map (fun v -> v.Numel)
    let flat = Tensor.cat 0 (ps.Values |> Array.map Tensor.flatten)

    let unflat (z: Tensor) =
        ps.WithValues(Array.map2 (fun (p: Tensor) (v: Tensor) -> Tensor.view v.Shape p) (Tensor.split 0 sizes z) ps.Values)

    let f z = loss (unflat z)
    let S = partition.Count
    // V_s: u masked to subset s, flattened
    let v =
        Array.init S (fun s ->
            Tensor.cat
                0
                (ps.Keys
                 |> Array.map (fun k -> if partition.SubsetOf k = s then Tensor.flatten u.[k] else Tensor.flatten (Tensor.zerosLike u.[k]))))

    let g = Ad.grad f flat
    let h = Ad.hessian f flat
    let gbar = v |> Array.map (fun vs -> Tensor.toScalar (Tensor.dot g vs))

    let hbar =
        Array2D.init S S (fun i j -> Tensor.toScalar (Tensor.dot (Tensor.matmul h (Tensor.view [| -1; 1 |] v.[j]) |> Tensor.flatten) v.[i]))

    let third =
        v
        |> Array.map (fun vs ->
            let d2 (z: Tensor) = snd (Ad.jvp (fun q -> snd (Ad.jvp f q vs)) z vs)
            Tensor.toScalar (snd (Ad.jvp d2 flat vs)))

    gbar, hbar, third, f, flat, v

/// Every placement of a parameter in a product: on the left and on the right, under each
/// pair of transpose flags, plus a strided convolution (a summary splits these products),
/// with the other operand differentiated as well.
let private products () =
    let fixedT seed shape = t shape (randn seed (Array.fold (*) 1 shape))

    let ps =
        Parameters.ofSeq [
            "a", fixedT 70 [| 3; 4 |]
            "b", fixedT 71 [| 5; 2 |]
            "k", fixedT 72 [| 2; 1; 3; 3 |]
            "c", fixedT 69 [| 1 |]
        ]

    let x45, x35, x54, x53 =
        fixedT 73 [| 4; 5 |], fixedT 74 [| 3; 5 |], fixedT 75 [| 5; 4 |], fixedT 76 [| 5; 3 |]

    let x23, x24, x32, x42 =
        fixedT 77 [| 2; 3 |], fixedT 78 [| 2; 4 |], fixedT 79 [| 3; 2 |], fixedT 80 [| 4; 2 |]

    let img = fixedT 81 [| 2; 1; 7; 7 |]
    let sq (y: Tensor) = let z = Tensor.tanh y in Tensor.sum (z * z)

    let loss (p: Parameters) =
        let a, b = p.["a"], p.["b"]
        // the other operand carries a derivative too (through c)
        let c = Tensor.tanh p.["c"]

        let x45, x35, x54, x53, x23, x24, x32, x42, img =
            x45 * c, x35 * c, x54 * c, x53 * c, x23 * c, x24 * c, x32 * c, x42 * c, img * c

        let y1 = Tensor.matmulT false false a x45

        sq (Tensor.matmulT false false (Tensor.tanh y1) b)
        + sq (Tensor.matmulT true false a x35)
        + sq (Tensor.matmulT false true a x54)
        + sq (Tensor.matmulT true true a x53)
        + sq (Tensor.matmulT false false x23 a)
        + sq (Tensor.matmulT false true x24 a)
        + sq (Tensor.matmulT true false x32 a)
        + sq (Tensor.matmulT true true x42 a)
        + sq (Tensor.conv2d (2, 2) (1, 1) img p.["k"] None)

    ps, loss

[<Test>]
let ``summaries of products with the parameter on either side, any transposes, and a strided convolution`` () =
    let ps, loss = products ()
    let partition = Partition.canonical ps
    let u = direction ps 90
    let s = Summary.compute loss ps partition u
    let gbar, hbar, third, _, _, _ = oracle loss ps partition u
    assertAllClose 1e-12 "ḡ" gbar s.Gradient

    for i in 0 .. partition.Count - 1 do
        for j in 0 .. partition.Count - 1 do
            assertClose 1e-12 (sprintf "H̄[%d,%d]" i j) hbar.[i, j] s.Hessian.[i, j]

    assertAllClose 1e-12 "D̄ diagonal" third s.ThirdDiagonal
    let full = Summary.tensor 3 loss ps partition u

    for i in 0 .. partition.Count - 1 do
        assertClose 1e-12 (sprintf "D̄[%d] of the full tensor" i) third.[i] full.[i * 16 + i * 4 + i]

let oracleCases = [|
    for model in [ "mlp"; "cnn" ] do
        for part in [ "canonical"; "per-layer"; "weights-biases"; "trivial" ] do
            yield TestCaseData(model, part).SetName(sprintf "%s, %s partition" model part)
|]

[<TestCaseSource(nameof oracleCases)>]
let ``summaries equal the full gradient, Hessian and third-derivative oracle`` (model: string, part: string) =
    let m, loss = if model = "mlp" then tinyMlp () else tinyCnn ()
    let ps = m.Parameters
    let partition = Partition.parse ps part
    let u = direction ps 40
    let s = Summary.compute loss ps partition u
    let gbar, hbar, third, _, _, _ = oracle loss ps partition u
    assertAllClose 1e-12 "ḡ" gbar s.Gradient

    for i in 0 .. partition.Count - 1 do
        for j in 0 .. partition.Count - 1 do
            assertClose 1e-12 (sprintf "H̄[%d,%d]" i j) hbar.[i, j] s.Hessian.[i, j]
            Assert.That(s.Hessian.[i, j], equalTo s.Hessian.[j, i], "exactly symmetric")

    assertAllClose 1e-12 "D̄ diagonal" third s.ThirdDiagonal
    Assert.That(s.ReversePasses, equalTo (1 + partition.Count))

[<Test>]
let ``each entry is a derivative of t -> L(θ + t·u_s) (finite differences)`` () =
    let m, loss = tinyMlp ()
    let ps = m.Parameters
    let partition = Partition.canonical ps
    let u = direction ps 50
    let s = Summary.compute loss ps partition u
    let _, _, _, f, flat, v = oracle loss ps partition u
    let along (w: Tensor) order = Numerical.directional order f flat w

    for i in 0 .. partition.Count - 1 do
        assertClose 1e-6 (sprintf "ḡ[%d]" i) (along v.[i] 1) s.Gradient.[i]
        assertClose 1e-4 (sprintf "H̄[%d,%d]" i i) (along v.[i] 2) s.Hessian.[i, i]
        assertClose 1e-2 (sprintf "D̄[%d]" i) (along v.[i] 3) s.ThirdDiagonal.[i]

    let i, j = 0, 2
    let off = 0.5 * (along (v.[i] + v.[j]) 2 - along v.[i] 2 - along v.[j] 2)
    assertClose 1e-4 "H̄ off-diagonal" off s.Hessian.[i, j]

[<Test>]
let ``quadratic loss: H̄ = VAVᵀ, ḡ = V(Aθ + b), D̄ = 0 exactly`` () =
    let a =
        let r = t [| 5; 5 |] (randn 3 25) in

        Tensor.matmulT false true r r
        + Tensor.ofArray2D (Array2D.init 5 5 (fun i j -> if i = j then 1.0 else 0.0))

    let b = vec (randn 4 5)
    let ps = Parameters.ofSeq [ "p", vec (randn 5 2); "q", vec (randn 6 3) ]

    let loss (p: Parameters) =
        let th = Tensor.cat 0 [ p.["p"]; p.["q"] ]

        0.5 * Tensor.dot th (Tensor.matmul a (Tensor.view [| 5; 1 |] th) |> Tensor.flatten)
        + Tensor.dot b th

    let u = direction ps 60
    let s = Summary.compute loss ps (Partition.canonical ps) u
    let am = Tensor.toArray2D a
    let th = Array.append (Tensor.toArray ps.["p"]) (Tensor.toArray ps.["q"])

    let vs = [|
        Array.append (Tensor.toArray u.["p"]) [| 0.0; 0.0; 0.0 |]
        Array.append [| 0.0; 0.0 |] (Tensor.toArray u.["q"])
    |]

    let av (x: float[]) = Array.init 5 (fun i -> Array.sum (Array.init 5 (fun j -> am.[i, j] * x.[j])))
    let grad = Array.map2 (+) (av th) (Tensor.toArray b)

    for i in 0..1 do
        assertClose 1e-13 "ḡ" (Array.fold2 (fun acc x y -> acc + x * y) 0.0 vs.[i] grad) s.Gradient.[i]

        for j in 0..1 do
            assertClose 1e-13 "H̄" (Array.fold2 (fun acc x y -> acc + x * y) 0.0 vs.[i] (av vs.[j])) s.Hessian.[i, j]

    Assert.That(s.ThirdDiagonal, equalTo [| 0.0; 0.0 |])

[<Test>]
let ``homogeneity in u and coarsening to the trivial partition`` () =
    let m, loss = tinyMlp ()
    let ps = m.Parameters
    let u = direction ps 70
    let canon = Summary.compute loss ps (Partition.canonical ps) u

    for c in [ -2.0; 0.5; 3.0 ] do
        let sc = Summary.compute loss ps (Partition.canonical ps) (Parameters.map (fun v -> c * v) u)
        assertAllClose 1e-12 "ḡ·c" (canon.Gradient |> Array.map (fun v -> c * v)) sc.Gradient

        assertAllClose
            1e-12
            "H̄·c²"
            (Seq.cast<float> canon.Hessian |> Seq.map (fun v -> c * c * v) |> Array.ofSeq)
            (Seq.cast<float> sc.Hessian |> Array.ofSeq)

        assertAllClose 1e-12 "D̄·c³" (canon.ThirdDiagonal |> Array.map (fun v -> c * c * c * v)) sc.ThirdDiagonal

    let triv = Summary.compute loss ps (Partition.trivial ps) u
    assertClose 1e-12 "Σ ḡ" (Array.sum canon.Gradient) triv.Gradient.[0]
    assertClose 1e-12 "Σ H̄" (Seq.cast<float> canon.Hessian |> Seq.sum) triv.Hessian.[0, 0]
    let full3 = Summary.tensor 3 loss ps (Partition.canonical ps) u
    assertClose 1e-10 "Σ D̄ = D³L[u,u,u]" (Array.sum full3) triv.ThirdDiagonal.[0]

[<Test>]
let ``the full third-order tensor is symmetric under every permutation`` () =
    let m, loss = tinyMlp ()
    let ps = m.Parameters
    let partition = Partition.perLayer ps
    let S = partition.Count
    let full = Summary.tensor 3 loss ps partition (direction ps 80)
    let at i j k = full.[(i * S + j) * S + k]

    for i in 0 .. S - 1 do
        for j in 0 .. S - 1 do
            for k in 0 .. S - 1 do
                for (a, b, c) in [ (i, k, j); (j, i, k); (j, k, i); (k, i, j); (k, j, i) ] do
                    assertClose 1e-12 (sprintf "D̄[%d,%d,%d]" i j k) (at i j k) (at a b c)

[<Test>]
let ``directions are matched by identity: listing the subsets in another order permutes the result`` () =
    // a uniform-width MLP: every weight has the same shape, so a positional mix-up would go unnoticed
    let m =
        Models.mlp [ 4; 4; 4; 4 ] Activation.Tanh { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 9 }

    let x = t [| 5; 4 |] (randn 1 20)
    let loss (ps: Parameters) = Tensor.mean (m.Forward(ps, x) * m.Forward(ps, x))
    let ps = m.Parameters
    let u = direction ps 90
    let names = ps.Names
    let forward = Partition.byNames ps [ for n in names -> n, [ n ] ]
    let backward = Partition.byNames ps [ for n in Array.rev names -> n, [ n ] ]
    let a = Summary.compute loss ps forward u
    let b = Summary.compute loss ps backward u
    let S = names.Length
    assertAllClose 1e-14 "ḡ" a.Gradient (Array.rev b.Gradient)
    assertAllClose 1e-14 "D̄" a.ThirdDiagonal (Array.rev b.ThirdDiagonal)

    for i in 0 .. S - 1 do
        for j in 0 .. S - 1 do
            assertClose 1e-14 "H̄" a.Hessian.[i, j] b.Hessian.[S - 1 - i, S - 1 - j]

[<Test>]
let ``orders 1 to 6 of a univariate polynomial`` () =
    let ps = Parameters.ofSeq [ "x", Tensor.scalar 1.0 ]
    let p (q: Parameters) = let x = q.["x"] in 1.0 + 2.0 * x - x * x + 0.5 * x ** 3.0 - 0.2 * x ** 4.0 + 0.1 * x ** 5.0
    let u = Parameters.ofSeq [ "x", Tensor.scalar 1.0 ]
    // p', p'', … at x = 1
    let expected = [| 2.0 - 2.0 + 1.5 - 0.8 + 0.5; -2.0 + 3.0 - 2.4 + 2.0; 3.0 - 4.8 + 6.0; -4.8 + 12.0; 12.0; 0.0 |]

    for order in 1..6 do
        let v = Summary.tensor order p ps (Partition.trivial ps) u
        assertClose 1e-12 (sprintf "order %d" order) expected.[order - 1] v.[0]

[<Test>]
let ``a subset that does not affect the loss gives zeros, not an exception`` () =
    let ps = Parameters.ofSeq [ "used", vec [| 0.3; -0.2 |]; "unused", vec [| 1.0; 2.0 |] ]
    let loss (p: Parameters) = Tensor.sum (Tensor.tanh p.["used"] * p.["used"])
    let u = direction ps 3
    let s = Summary.compute loss ps (Partition.canonical ps) u
    Assert.That(s.Gradient.[1], equalTo 0.0)
    Assert.That([ s.Hessian.[0, 1]; s.Hessian.[1, 0]; s.Hessian.[1, 1] ], equalTo [ 0.0; 0.0; 0.0 ])
    Assert.That(s.ThirdDiagonal.[1], equalTo 0.0)
    Assert.That(s.Gradient.[0], Is.Not.EqualTo 0.0)

[<Test>]
let ``float32 models give float64 summaries close to the float64 ones`` () =
    let m, loss = tinyMlp ()
    let ps = m.Parameters
    let u = direction ps 11
    let s64 = Summary.compute loss ps (Partition.canonical ps) u

    let m32 =
        Model.sequential "tiny" [| 3 |] { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float32; Seed = 5 } [
            LayerSpec.Linear(3, 4, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.Linear(4, 2, true)
        ]

    let x32 = Tensor.cast Dtype.Float32 (t [| 7; 3 |] (randn 1 21))
    let y32 = Tensor.cast Dtype.Float32 (t [| 7; 2 |] (randn 2 14))
    let ps32 = m32.Parameters.WithValues(ps.Values |> Array.map (Tensor.cast Dtype.Float32))
    let u32 = ps32.WithValues(u.Values |> Array.map (Tensor.cast Dtype.Float32))

    let s32 =
        Summary.compute (fun p -> Tensor.mse (m32.Forward(p, x32)) y32) ps32 (Partition.canonical ps32) u32

    assertAllClose 1e-4 "ḡ" s64.Gradient s32.Gradient
    assertAllClose 1e-4 "D̄" s64.ThirdDiagonal s32.ThirdDiagonal

[<Test>]
let ``partitions: constructors and validation messages`` () =
    let m, _ = tinyMlp ()
    let ps = m.Parameters
    Assert.That((Partition.canonical ps).Count, equalTo 4)
    Assert.That((Partition.trivial ps).Count, equalTo 1)
    Assert.That((Partition.weightsBiases ps).Names, equalTo [| "weight"; "bias" |])
    Assert.That((Partition.perLayer ps).Names, equalTo [| "0"; "2" |])
    Assert.That((Partition.blocks 2 ps).Count, equalTo 4)
    Assert.That((Partition.alternate 2 ps).Subset(0) |> Array.map (fun k -> k.Name), equalTo [| "0.weight"; "0.bias" |])
    Assert.That((Partition.byNamesWithRest ps [ "first", [ "0.weight" ] ]).Names, equalTo [| "first"; "rest" |])

    let check (f: unit -> Partition) (part: string) =
        let e = Assert.Throws<PartitionException>(fun () -> f () |> ignore)
        Assert.That(e.Message, Does.Contain part)

    check (fun () -> Partition.byNames ps [ "a", [ "0.weight"; "nope" ]; "b", [ "0.bias"; "2.weight"; "2.bias" ] ]) "'nope'"
    check (fun () -> Partition.byNames ps [ "a", [ "0.weight"; "0.bias" ]; "b", [ "2.weight" ] ]) "'2.bias' is in no subset"

    check
        (fun () -> Partition.byNames ps [ "a", [ "0.weight"; "0.bias"; "2.weight" ]; "b", [ "2.weight"; "2.bias" ] ])
        "'2.weight' is in both"

    check (fun () -> Partition.byNames ps [ "a", [ "0.weight"; "0.bias"; "2.weight"; "2.bias" ]; "b", [] ]) "'b' is empty"
    check (fun () -> Partition.parse ps "pieces") "unknown partition"
