/// K-BFGS and K-BFGS(L) (docs/kbfgs.md): the first steps against
/// a hand computation, conv factors against explicit patches, secant pairs on a known G,
/// training, state round trips and failure handling.
module GroupedNewton.Tests.KbfgsTests

open System
open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private init64 = { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 17 }
let private mu2 = sqrt 0.3

// ---- small dense helpers for the hand computations ----

let private matOf (tensor: Tensor) = Tensor.toArray2D tensor

let private mm (a: float[,]) (b: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 b) (fun i j ->
        let mutable s = 0.0

        for k in 0 .. Array2D.length2 a - 1 do
            s <- s + a.[i, k] * b.[k, j]

        s)

let private tr (a: float[,]) = Array2D.init (Array2D.length2 a) (Array2D.length1 a) (fun i j -> a.[j, i])

let private mv (a: float[,]) (v: float[]) =
    Array.init (Array2D.length1 a) (fun i -> Seq.sum (seq { for j in 0 .. v.Length - 1 -> a.[i, j] * v.[j] }))

let private dotv (a: float[]) (b: float[]) = Array.fold2 (fun s x y -> s + x * y) 0.0 a b
let private eye n = Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)

let private plusDiag c (a: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 a) (fun i j -> a.[i, j] + (if i = j then c else 0.0))

let private flat (m: float[,]) = Array.init (m.Length) (fun k -> m.[k / Array2D.length2 m, k % Array2D.length2 m])

let private withOnes (a: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 a + 1) (fun i j -> if j < Array2D.length2 a then a.[i, j] else 1.0)

let private colMeans (a: float[,]) =
    Array.init (Array2D.length2 a) (fun j ->
        (Seq.sum (seq { for i in 0 .. Array2D.length1 a - 1 -> a.[i, j] })) / float (Array2D.length1 a))

let private colSums (a: float[,]) =
    Array.init (Array2D.length2 a) (fun j -> Seq.sum (seq { for i in 0 .. Array2D.length1 a - 1 -> a.[i, j] }))

let private inverseOf (m: float[,]) =
    let n = Array2D.length1 m

    let cols =
        Array.init n (fun j -> (DenseAlgebra.trySolve m (Array.init n (fun i -> if i = j then 1.0 else 0.0))).Value)

    Array2D.init n n (fun i j -> cols.[j].[i])

/// (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ
let private bfgsProduct (h: float[,]) (s: float[]) (y: float[]) =
    let n = s.Length
    let rho = 1.0 / dotv s y
    let l = Array2D.init n n (fun i j -> (if i = j then 1.0 else 0.0) - rho * s.[i] * y.[j])
    let m = mm (mm l h) (tr l)
    Array2D.init n n (fun i j -> m.[i, j] + rho * s.[i] * s.[j])

/// Powell damping on H = I then Powell with B = I (the DD of the NeurIPS code), written out.
let private ddIdentity (s: float[]) (y: float[]) =
    let sy, yy = dotv s y, dotv y y

    let s1 =
        if sy < 0.2 * yy then
            (let th = 0.8 * yy / (yy - sy) in Array.map2 (fun a b -> th * a + (1.0 - th) * b) s y)
        else
            s

    let sy1, ss1 = dotv s1 y, dotv s1 s1

    let y1 =
        if sy1 < mu2 * ss1 then
            (let th = (1.0 - mu2) * ss1 / (ss1 - sy1) in Array.map2 (fun a b -> th * a + (1.0 - th) * b) y s1)
        else
            y

    s1, y1

let private entries (o: Optimizer) = dict (o.StateEntries())

let private entryTensor (o: Optimizer) (name: string) =
    match (entries o).[name] with
    | StoreValue.Tensor v -> v
    | other -> failwithf "entry %s is %A" name other

let private entryMatrix o name = matOf (entryTensor o name)

let private entryInt (o: Optimizer) (name: string) =
    match (entries o).[name] with
    | StoreValue.Int v -> v
    | other -> failwithf "entry %s is %A" name other

/// Every entry of a state as comparable text (tensors by their values).
let private snapshot (o: Optimizer) =
    o.StateEntries()
    |> List.map (fun (k, v) ->
        match v with
        | StoreValue.Tensor x -> k, sprintf "%A %A" x.Shape (Tensor.toArray x)
        | other -> k, sprintf "%A" other)

let private paramValues (ps: Parameters) = ps.Values |> Array.map Tensor.toArray

// ---- the first steps of K-BFGS on a 4-5-3 tanh MLP, by hand ----

type private HandMlp = {
    A: float[,][] // ā per layer, [N, d_a]
    H: float[,][] // pre-activations per layer
    DH: float[,][] // ∂L/∂h per layer
    Grad: float[,][]
} // [W̄ | b̄] per layer

/// Forward and backward of the 2-layer tanh MLP with ½·squared-error loss, by hand.
let private handMlp (w: float[,][]) (x: float[,]) (target: float[,]) =
    let n = float (Array2D.length1 x)
    let a0 = withOnes x
    let h0 = mm a0 (tr w.[0])
    let z = Array2D.map tanh h0
    let a1 = withOnes z
    let h1 = mm a1 (tr w.[1])

    let dh1 =
        Array2D.init (Array2D.length1 h1) (Array2D.length2 h1) (fun i j -> (h1.[i, j] - target.[i, j]) / n)

    let w1NoBias =
        Array2D.init (Array2D.length1 w.[1]) (Array2D.length2 w.[1] - 1) (fun i j -> w.[1].[i, j])

    let dz = mm dh1 w1NoBias

    let dh0 =
        Array2D.init (Array2D.length1 dz) (Array2D.length2 dz) (fun i j -> dz.[i, j] * (1.0 - z.[i, j] * z.[i, j]))

    {
        A = [| a0; a1 |]
        H = [| h0; h1 |]
        DH = [| dh0; dh1 |]
        Grad = [| mm (tr dh0) a0; mm (tr dh1) a1 |]
    }

let private mlp453 () = Models.mlp [ 4; 5; 3 ] Activation.Tanh init64
let private weightNames = [| "1.weight"; "3.weight" |]
let private layersOf (m: Model) = Model.trainableLayers m
let private wMatrix (m: Model) (ps: Parameters) (l: int) = matOf (KroneckerLayers.weightMatrix (layersOf m).[l] ps)

[<Test>]
let ``first two K-BFGS steps equal the hand computation (A, H_a, H_g, Ĝ and the parameters)`` () =
    let model = mlp453 ()
    let opt = Kbfgs.create KbfgsOptions.Mlp model
    let n = 8
    let x1 = Array2D.init n 4 (fun i j -> (randn 1 (n * 4)).[i * 4 + j])
    let t1 = Array2D.init n 3 (fun i j -> (randn 2 (n * 3)).[i * 3 + j])
    let loss (target: float[,]) = fun (out: Tensor) -> Losses.halfSquaredError out (Tensor.ofArray2D target)
    let w0 = Array.init 2 (wMatrix model model.Parameters)
    let f0 = handMlp w0 x1 t1
    let l0 = opt.StepOn(model, Tensor.ofArray2D x1, loss t1)

    let expectedLoss =
        0.5 * (Array.fold2 (fun s a b -> s + (a - b) * (a - b)) 0.0 (flat f0.H.[1]) (flat t1)) / float n

    assertClose 1e-14 "loss" expectedLoss l0
    let tau, lr = 1e-5, 0.3
    // per layer: A = Ā of the batch, H_a = (A + √λI)⁻¹, H_g = I, Ĝ = 0.1·(∇ + τW), W ← W − α·Ĝ·H_a
    let aBatch = f0.A |> Array.map (fun a -> Array2D.map (fun v -> v / float n) (mm (tr a) a))
    let ha0 = aBatch |> Array.map (fun a -> inverseOf (plusDiag mu2 a))

    let mom =
        Array.init 2 (fun l ->
            Array2D.init (Array2D.length1 w0.[l]) (Array2D.length2 w0.[l]) (fun i j -> 0.1 * (f0.Grad.[l].[i, j] + tau * w0.[l].[i, j])))

    let w1 =
        Array.init 2 (fun l ->
            let p = mm mom.[l] ha0.[l] in Array2D.init (Array2D.length1 p) (Array2D.length2 p) (fun i j -> w0.[l].[i, j] - lr * p.[i, j]))

    for l in 0..1 do
        assertAllClose 1e-12 (sprintf "layer %d [W|b] after step 1" l) (flat w1.[l]) (flat (wMatrix model opt.Parameters l))
        // check 9: the last column of the homogeneous matrix is the bias
        let bias = Tensor.toArray opt.Parameters.[sprintf "%d.bias" (2 * l + 1)]
        assertAllClose 1e-12 (sprintf "layer %d bias" l) (Array.init bias.Length (fun i -> w1.[l].[i, Array2D.length2 w1.[l] - 1])) bias
        assertAllClose 1e-13 (sprintf "layer %d A" l) (flat aBatch.[l]) (flat (entryMatrix opt (sprintf "layer.%s.a" weightNames.[l])))
        assertAllClose 1e-13 (sprintf "layer %d Ĝ" l) (flat mom.[l]) (flat (entryMatrix opt (sprintf "layer.%s.momentum" weightNames.[l])))
    // the trial pass at W1 on the same batch gives the G pairs
    let f1 = handMlp w1 x1 t1

    for l in 0..1 do
        let s = Array.map2 (-) (colMeans f1.H.[l]) (colMeans f0.H.[l])
        let y = Array.map2 (-) (colSums f1.DH.[l]) (colSums f0.DH.[l]) // N·mean(∂L/∂h)
        let sBar, yBar = s |> Array.map ((*) 0.1), y |> Array.map ((*) 0.1)
        let sd, yd = ddIdentity sBar yBar
        let gBar = colSums f0.DH.[l]
        let dg = sBar.Length

        let expectedHg =
            if dotv sd yd > 1e-4 * dotv sd sd * sqrt (dotv gBar gBar) then
                bfgsProduct (eye dg) sd yd
            else
                eye dg

        let hg = entryMatrix opt (sprintf "layer.%s.hg" weightNames.[l])
        assertAllClose 1e-11 (sprintf "layer %d H_g" l) (flat expectedHg) (flat hg)
        assertAllClose 1e-13 (sprintf "layer %d s̄" l) sBar (Tensor.toArray (entryTensor opt (sprintf "layer.%s.sbar" weightNames.[l])))
        // the Hessian-action pair: v = mean ā, s_a = H_a v, y_a = (A + √λI) s_a
        let v = colMeans f0.A.[l]
        let sa = mv ha0.[l] v
        let ya = mv (plusDiag mu2 aBatch.[l]) sa

        assertAllClose
            1e-11
            (sprintf "layer %d H_a" l)
            (flat (bfgsProduct ha0.[l] sa ya))
            (flat (entryMatrix opt (sprintf "layer.%s.ha" weightNames.[l])))
    // second step on a new batch: A ← 0.9·A + 0.1·Ā₂ (layer 1's inputs do not depend on the parameters)
    let x2 = Array2D.init n 4 (fun i j -> (randn 3 (n * 4)).[i * 4 + j])
    let t2 = Array2D.init n 3 (fun i j -> (randn 4 (n * 3)).[i * 3 + j])
    let hg1 = entryMatrix opt "layer.3.weight.hg"
    let ha1 = entryMatrix opt "layer.3.weight.ha"
    opt.StepOn(model, Tensor.ofArray2D x2, loss t2) |> ignore
    let a02 = withOnes x2

    let expectedA =
        Array2D.init 5 5 (fun i j -> 0.9 * aBatch.[0].[i, j] + 0.1 * (mm (tr a02) a02).[i, j] / float n)

    assertAllClose 1e-13 "A after step 2" (flat expectedA) (flat (entryMatrix opt "layer.1.weight.a"))
    // and the second direction uses the updated factors: W2 = W1 − α·H_g·Ĝ₂·H_a
    let f2 = handMlp w1 x2 t2

    let mom2 =
        Array2D.init 3 6 (fun i j -> 0.9 * mom.[1].[i, j] + 0.1 * (f2.Grad.[1].[i, j] + tau * w1.[1].[i, j]))

    let p = mm (mm hg1 mom2) ha1
    let w2 = Array2D.init 3 6 (fun i j -> w1.[1].[i, j] - lr * p.[i, j])
    assertAllClose 1e-11 "output layer after step 2" (flat w2) (flat (wMatrix model opt.Parameters 1))
    Assert.That(opt.StepCount, equalTo 2)

[<Test>]
let ``the trial pass runs on the same batch at the point the step commits`` () =
    let model = mlp453 ()
    let x = t [| 6; 4 |] (randn 5 24)
    let target = t [| 6; 3 |] (randn 6 18)

    for updateEvery in [ 1; 2 ] do
        let opt = Kbfgs.create { KbfgsOptions.Mlp with UpdateEvery = updateEvery } model
        let seen = Collections.Generic.List<Tensor>()

        let loss (out: Tensor) =
            seen.Add(Tensor.detach out)
            Losses.halfSquaredError out target

        let before = opt.Parameters
        opt.StepOn(model, x, loss) |> ignore
        Assert.That(seen.Count, equalTo 2, "main and trial pass")
        assertTensorClose 0.0 "main pass output" (model.Forward(before, x)) seen.[0]
        assertTensorClose 0.0 "trial output = output at the committed parameters" (model.Forward(opt.Parameters, x)) seen.[1]
        seen.Clear()
        opt.StepOn(model, x, loss) |> ignore
        Assert.That(seen.Count, equalTo (if updateEvery = 1 then 2 else 1), sprintf "UpdateEvery %d, step 2" updateEvery)
        let counts = opt.LayerCounts.[0]
        Assert.That(counts.GUpdated + counts.GSkipped, equalTo (if updateEvery = 1 then 2 else 1))

[<Test>]
let ``the warm start averages Ā over the batches and the first step uses it undecayed`` () =
    let model = mlp453 ()
    let opt = Kbfgs.create KbfgsOptions.Mlp model

    let batches = [
        for k in 0..2 -> Array2D.init (4 + 2 * k) 4 (fun i j -> (randn (30 + k) ((4 + 2 * k) * 4)).[i * 4 + j])
    ]

    opt.WarmStart(model, batches |> List.map Tensor.ofArray2D)
    let abar (x: float[,]) = let a = withOnes x in Array2D.map (fun v -> v / float (Array2D.length1 x)) (mm (tr a) a)
    let expected = Array2D.init 5 5 (fun i j -> (batches |> List.sumBy (fun b -> (abar b).[i, j])) / 3.0)
    assertAllClose 1e-14 "warm A" (flat expected) (flat (entryMatrix opt "layer.1.weight.warm_a"))
    // the first step: A is the warm-start A, not decayed towards the batch
    let x = Array2D.init 8 4 (fun i j -> (randn 40 32).[i * 4 + j])
    let target = Array2D.init 8 3 (fun i j -> (randn 41 24).[i * 3 + j])
    let w0 = wMatrix model model.Parameters 0
    let f0 = handMlp (Array.init 2 (wMatrix model model.Parameters)) x target

    opt.StepOn(model, Tensor.ofArray2D x, fun out -> Losses.halfSquaredError out (Tensor.ofArray2D target))
    |> ignore

    assertAllClose 1e-14 "A after step 0" (flat expected) (flat (entryMatrix opt "layer.1.weight.a"))
    let mom = Array2D.init 5 5 (fun i j -> 0.1 * (f0.Grad.[0].[i, j] + 1e-5 * w0.[i, j]))
    let p = mm mom (inverseOf (plusDiag mu2 expected))
    let w1 = Array2D.init 5 5 (fun i j -> w0.[i, j] - 0.3 * p.[i, j])
    assertAllClose 1e-12 "first layer after step 0" (flat w1) (flat (wMatrix model opt.Parameters 0))
    Assert.That((entries opt).ContainsKey "layer.1.weight.warm_a", Is.False, "consumed")

    Assert.Throws<InvalidOperationException>(fun () -> opt.WarmStart(model, [ Tensor.ofArray2D x ]))
    |> ignore

    let cnn = Kbfgs.create KbfgsOptions.Cnn model

    Assert.Throws<InvalidOperationException>(fun () -> cnn.WarmStart(model, [ Tensor.ofArray2D x ]))
    |> ignore

[<Test>]
let ``with a linear last layer and ½·squared error, y = s; DD keeps H_g = I, DDV2 gives H_g s̄ = s̄/(1+√λ)`` () =
    let model = Model.sequential "linear" [| 4 |] init64 [ LayerSpec.Linear(4, 3, true) ]

    for second in [ SecondStageDamping.Powell; SecondStageDamping.LevenbergMarquardt ] do
        let opt = Kbfgs.create { KbfgsOptions.Mlp with SecondStage = second } model

        for k in 0..9 do
            let x = t [| 10; 4 |] (randn (100 + k) 40)
            let target = t [| 10; 3 |] (randn (200 + k) 30)
            opt.StepOn(model, x, fun out -> Losses.halfSquaredError out target) |> ignore
            let hg = entryMatrix opt "layer.0.weight.hg"
            let sBar = Tensor.toArray (entryTensor opt "layer.0.weight.sbar")
            let yBar = Tensor.toArray (entryTensor opt "layer.0.weight.ybar")
            assertAllClose 1e-12 "ȳ = s̄" sBar yBar

            match second with
            | SecondStageDamping.Powell -> assertAllClose 1e-12 "H_g = I" (flat (eye 3)) (flat hg)
            | SecondStageDamping.LevenbergMarquardt ->
                assertAllClose 1e-12 "secant on G + √λI" (sBar |> Array.map (fun v -> v / (1.0 + mu2))) (mv hg sBar)
                let ev = fst (DenseAlgebra.symmetricEigen hg)
                Assert.That(ev.[0], Is.GreaterThan(1.0 / (1.0 + mu2) - 1e-12))
                Assert.That(ev.[2], Is.LessThan(1.0 + 1e-12))

        let c = opt.LayerCounts.[0]
        Assert.That((c.GUpdated, c.PowellDamped, c.AUpdated), equalTo (10, 0, 10))

[<Test>]
let ``negative curvature pairs are damped by Powell and counted; H_g stays positive definite`` () =
    // L = −½·mean‖h‖²: per-sample ∂²f/∂h² = −I, so y = −s
    let model = Model.sequential "linear" [| 4 |] init64 [ LayerSpec.Linear(4, 3, true) ]
    let concave (out: Tensor) = -0.5 * Tensor.sum (out * out) / float out.Shape.[0]

    for limited in [ false; true ] do
        let opts = { KbfgsOptions.Mlp with LearningRate = 0.01 }
        let opt = if limited then Kbfgs.createLimited opts model else Kbfgs.create opts model

        for k in 0..4 do
            opt.StepOn(model, t [| 10; 4 |] (randn (300 + k) 40), concave) |> ignore

        let c = opt.LayerCounts.[0]
        Assert.That(c.PowellDamped, equalTo 5, "every pair damped")
        Assert.That(c.GUpdated + c.GSkipped, equalTo 5)
        Assert.That(c.GUpdated, Is.GreaterThan 0)

        if not limited then
            let ev = fst (DenseAlgebra.symmetricEigen (entryMatrix opt "layer.0.weight.hg"))
            Assert.That(ev.[0], Is.GreaterThan 0.0)
        else
            Assert.That(entryInt opt "layer.0.weight.lbfgs.count", equalTo c.GUpdated)

        Assert.That(Parameters.allFinite opt.Parameters, Is.True)

// ---- conv layers ----

/// A small example: M = 2, C_in = 2, 4×4, 3×3 kernel, padding 1, stride 1, C_out = 3, bias.
let private convModel () =
    Model.sequential "conv-example" [| 2; 4; 4 |] init64 [
        LayerSpec.Conv2d(2, 3, 3, 1, 1, true)
        LayerSpec.Act Activation.Tanh
        LayerSpec.Flatten
        LayerSpec.Linear(48, 2, true)
    ]

/// Patches by hand for M samples of C_in × side × side and a 3×3 kernel: rows (sample, oi, oj),
/// entries (c, di, dj) then the homogeneous 1.
let private handPatchesWith (m: int) (cin: int) (side: int) (stride: int) (pad: int) (x: float[]) =
    let o = (side + 2 * pad - 3) / stride + 1
    let da = cin * 9 + 1

    Array2D.init (m * o * o) da (fun r e ->
        let i, oi, oj = r / (o * o), (r % (o * o)) / o, r % o

        if e = da - 1 then
            1.0
        else
            let c, di, dj = e / 9, (e % 9) / 3, e % 3
            let ii, jj = oi * stride + di - pad, oj * stride + dj - pad

            if ii >= 0 && ii < side && jj >= 0 && jj < side then
                x.[((i * cin + c) * side + ii) * side + jj]
            else
                0.0)

let private handPatches (x: float[]) = handPatchesWith 2 2 4 1 1 x

[<Test>]
let ``the conv gradient is Σ_{i,t} (M·∂L/∂h) āᵀ / M over explicit patches (stride 1 and 2, padding 1 and 0)`` () =
    for stride, pad in [ 1, 1; 2, 1; 2, 0 ] do
        let o = (5 + 2 * pad - 3) / stride + 1

        let model =
            Model.sequential "conv" [| 2; 5; 5 |] init64 [
                LayerSpec.Conv2d(2, 3, 3, stride, pad, true)
                LayerSpec.Act Activation.Tanh
                LayerSpec.Flatten
                LayerSpec.Linear(3 * o * o, 2, true)
            ]

        let xs = randn (90 + stride + pad) (3 * 2 * 25)
        let labels = Tensor.ofInts [| 0; 1; 1 |]

        let trace =
            Trace.run model model.Parameters (t [| 3; 2; 5; 5 |] xs) (fun out -> Losses.crossEntropy out labels)

        let kl = KroneckerLayers.ofTrace trace.Layers.[0]
        let patches = handPatchesWith 3 2 5 stride pad xs
        assertAllClose 0.0 "patches" (flat patches) (Tensor.toArray kl.Activations)
        // per-sample gradients g = M·∂L/∂h, then the mean over samples of Σ_t g āᵀ
        let g = Array2D.map (fun v -> 3.0 * v) (matOf kl.OutputGradients)
        let expected = Array2D.map (fun v -> v / 3.0) (mm (tr g) patches)
        let actual = matOf (KroneckerLayers.weightMatrix kl.Layer trace.Gradient)
        assertAllClose 1e-14 (sprintf "stride %d padding %d" stride pad) (flat expected) (flat actual)

[<Test>]
let ``conv factor shapes and the A action of a small example, against explicit patches`` () =
    let model = convModel ()
    let xs = randn 81 (2 * 2 * 4 * 4)
    let x = t [| 2; 2; 4; 4 |] xs
    let labels = Tensor.ofInts [| 0; 1 |]
    let loss = fun out -> Losses.crossEntropy out labels
    let trace = Trace.run model model.Parameters x loss
    let kl = KroneckerLayers.ofTrace trace.Layers.[0]
    Assert.That((kl.InputDim, kl.OutputDim, kl.Locations), equalTo (19, 3, 16))
    let patches = handPatches xs
    assertAllClose 0.0 "patches" (flat patches) (Tensor.toArray kl.Activations)
    let v = KbfgsAlgebra.columnMeans kl.Activations
    Assert.That(v.[18], Is.EqualTo 1.0, "mean patch ends in exactly 1")
    let opt = Kbfgs.create KbfgsOptions.Cnn model
    opt.StepOn(model, x, loss) |> ignore
    Assert.That((entryTensor opt "layer.0.weight.ha").Shape, equalTo [| 19; 19 |])
    Assert.That((entryTensor opt "layer.0.weight.hg").Shape, equalTo [| 3; 3 |])
    Assert.That((entryTensor opt "layer.0.weight.momentum").Shape, equalTo [| 3; 19 |])
    Assert.That((entries opt).ContainsKey "layer.0.weight.a", Is.False, "CNN mode keeps no A")
    // A = (1/M) Σ_{i,t} ā āᵀ (sum over locations, mean over samples); H_a⁰ = (A + √λI)⁻¹ and
    // one Hessian-action update with y_a = A s_a + √λ s_a
    let a = Array2D.map (fun e -> e / 2.0) (mm (tr patches) patches)
    let ha0 = inverseOf (plusDiag mu2 a)
    let sa = mv ha0 v
    let ya = mv (plusDiag mu2 a) sa
    assertAllClose 1e-11 "H_a after step 0" (flat (bfgsProduct ha0 sa ya)) (flat (entryMatrix opt "layer.0.weight.ha"))
    // the first direction: [W|b] − α·0.1·(∇ + τW)·H_a⁰ (H_g = I)
    let gradW = matOf (KroneckerLayers.weightMatrix kl.Layer trace.Gradient)
    let w0 = matOf (KroneckerLayers.weightMatrix kl.Layer model.Parameters)
    let p = mm (Array2D.init 3 19 (fun i j -> 0.1 * (gradW.[i, j] + 1e-5 * w0.[i, j]))) ha0
    let expected = Array2D.init 3 19 (fun i j -> w0.[i, j] - 0.3 * p.[i, j])
    assertAllClose 1e-12 "conv [W|b] after step 0" (flat expected) (flat (matOf (KroneckerLayers.weightMatrix kl.Layer opt.Parameters)))

// ---- training ----

/// An autoencoder built like the MNIST one (eight Linear layers, ReLU, linear code layer,
/// logits out, sigmoid BCE, the reference N(0, 1/fan_in) init, float32) but 32-64-32-16-4
/// wide instead of 784-1000-500-250-30, on synthetic images generated from a 4-dimensional
/// code (the 784-wide model takes seconds per step here: too slow for a unit test).
let private smallAutoencoder () =
    let init = { Scheme = InitScheme.ScaledNormal(1.0, 0.0); Dtype = Dtype.Float32; Seed = 5 }
    let sizes = [ 32; 64; 32; 16; 4; 16; 32; 64; 32 ]

    let specs = [
        yield LayerSpec.Flatten
        for i, (a, b) in List.indexed (List.pairwise sizes) do
            yield LayerSpec.Linear(a, b, true)

            if i <> 3 && i <> 7 then
                yield LayerSpec.Act Activation.Relu
    ]

    let model = Model.sequential "small-autoencoder" [| 32 |] init specs
    let n = 200
    let codes = randn 91 (n * 4)
    let basis = randn 92 (4 * 32)

    let images =
        Array.init (n * 32) (fun k ->
            let i, j = k / 32, k % 32
            let z = Seq.sum (seq { for c in 0..3 -> codes.[i * 4 + c] * basis.[c * 32 + j] })
            float32 (1.0 / (1.0 + exp (-z))))

    model, Tensor.ofArrayShape images [| n; 32 |]

let private batchesOf (data: Tensor) (size: int) = [
    for s in 0..size .. data.Shape.[0] - size -> Tensor.slice [| s; 0 |] [| size; data.Shape.[1] |] data
]

[<Test>]
let ``K-BFGS and K-BFGS(L) lower the loss of a small MNIST-shaped autoencoder (float32)`` () =
    for limited in [ false; true ] do
        let model, data = smallAutoencoder ()

        let opt =
            if limited then Kbfgs.createLimited KbfgsOptions.Mlp model else Kbfgs.create KbfgsOptions.Mlp model

        let bce (ps: Parameters) = Tensor.toScalar (Losses.bceWithLogits (model.Forward(ps, data)) data)
        // the BCE cannot go below the entropy of the targets
        let floor =
            (Tensor.toArray data
             |> Array.sumBy (fun p -> if p <= 0.0 || p >= 1.0 then 0.0 else -(p * log p + (1.0 - p) * log (1.0 - p))))
            / float data.Shape.[0]

        let start = bce opt.Parameters

        for _ in 1..10 do
            for b in batchesOf data 50 do
                opt.StepOn(model, b, fun out -> Losses.bceWithLogits out b) |> ignore

        let finish = bce opt.Parameters
        Assert.That(finish - floor, Is.LessThan(0.5 * (start - floor)), sprintf "limited=%b: %g → %g (floor %g)" limited start finish floor)
        Assert.That(opt.LayerCounts |> Array.sumBy (fun c -> c.GUpdated), Is.GreaterThan 0)
        Assert.That(opt.LayerCounts |> Array.forall (fun c -> c.AUpdated + c.ASkipped = 40), Is.True)

[<Test>]
let ``K-BFGS(L) whose memory holds every pair takes the same steps as K-BFGS`` () =
    // L-BFGS from H⁰ = I over all pairs is the BFGS recursion from I
    let model = mlp453 ()
    let dense = Kbfgs.create KbfgsOptions.Mlp model
    let limited = Kbfgs.createLimited { KbfgsOptions.Mlp with Memory = 10 } model
    let short = Kbfgs.createLimited { KbfgsOptions.Mlp with Memory = 2 } model

    for k in 0..5 do
        let x = t [| 8; 4 |] (randn (700 + k) 32)
        let target = t [| 8; 3 |] (randn (800 + k) 24)

        for o in [ dense; limited; short ] do
            o.StepOn(model, x, fun out -> Losses.halfSquaredError out target) |> ignore

    Array.iter2
        (fun (a: float[]) b -> assertAllClose 1e-12 "same parameters" a b)
        (paramValues dense.Parameters)
        (paramValues limited.Parameters)

    Assert.That(dense.LayerCounts |> Array.map (fun c -> c.GUpdated), equalTo (limited.LayerCounts |> Array.map (fun c -> c.GUpdated)))

    let diff =
        Array.map2
            (fun (a: float[]) b -> Array.fold2 (fun m x y -> max m (abs (x - y))) 0.0 a b)
            (paramValues dense.Parameters)
            (paramValues short.Parameters)

    Assert.That(Array.max diff, Is.GreaterThan 1e-8, "a 2-pair memory forgets")

/// conv(1→4, 3×3, pad 1) → tanh → max-pool 2 → linear(64 → 3) on 8×8 images; the class is the
/// brightest of three horizontal bands.
let private smallCnnTask () =
    let init = { Scheme = InitScheme.ScaledNormal(1.0, 0.0); Dtype = Dtype.Float64; Seed = 6 }

    let model =
        Model.sequential "small-cnn" [| 1; 8; 8 |] init [
            LayerSpec.Conv2d(1, 4, 3, 1, 1, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.MaxPool2d(2, 2, 0)
            LayerSpec.Flatten
            LayerSpec.Linear(64, 3, true)
        ]

    let n = 96
    let raw = randn 93 (n * 64)
    let labels = Array.init n (fun i -> i % 3)

    let pixels =
        Array.init (n * 64) (fun k ->
            let i, r = k / 64, (k % 64) / 8
            let band = min 2 (r / 3)
            raw.[k] * 0.5 + (if band = labels.[i] then 1.0 else 0.0))

    model, t [| n; 1; 8; 8 |] pixels, labels

[<Test>]
let ``K-BFGS and K-BFGS(L) in CNN mode lower the loss of a small CNN`` () =
    for limited in [ false; true ] do
        let model, x, labels = smallCnnTask ()

        let opt =
            if limited then Kbfgs.createLimited KbfgsOptions.Cnn model else Kbfgs.create KbfgsOptions.Cnn model

        let all = Tensor.ofInts labels
        let ce (ps: Parameters) = Tensor.toScalar (Losses.crossEntropy (model.Forward(ps, x)) all)
        let start = ce opt.Parameters

        for _ in 1..4 do
            for s in 0..32..95 do
                let xb = Tensor.slice [| s; 0; 0; 0 |] [| 32; 1; 8; 8 |] x
                let yb = Tensor.ofInts labels.[s .. s + 31]
                opt.StepOn(model, xb, fun out -> Losses.crossEntropy out yb) |> ignore

        let finish = ce opt.Parameters
        Assert.That(finish, Is.LessThan(0.7 * start), sprintf "limited=%b: %g → %g" limited start finish)
        Assert.That(opt.PreconditionedLayers, equalTo [| "0.weight"; "4.weight" |])

// ---- state, failures, fallback ----

[<Test>]
let ``state save and load: the next step is identical (K-BFGS, K-BFGS(L), with a fallback layer)`` () =
    let model = Models.mlp [ 4; 3; 8 ] Activation.Tanh init64
    let opts = { KbfgsOptions.Mlp with MaxFactorSize = 5; Memory = 2 }
    let x k = t [| 6; 4 |] (randn (400 + k) 24)
    let target k = t [| 6; 8 |] (randn (500 + k) 48)
    let loss k = fun out -> Losses.halfSquaredError out (target k)

    for limited in [ false; true ] do
        let make () = if limited then Kbfgs.createLimited opts model else Kbfgs.create opts model
        let a = make ()

        for k in 0..3 do
            a.StepOn(model, x k, loss k) |> ignore

        let path = Path.Combine(Path.GetTempPath(), sprintf "kbfgs-%s.gnts" (Guid.NewGuid().ToString("N")))

        try
            a.SaveState path
            let saved = a.Parameters
            let savedState = snapshot a
            a.StepOn(model, x 4, loss 4) |> ignore
            let b = make ()
            b.SetParameters saved
            b.LoadState path
            Assert.That(b.StepCount, equalTo 4)
            Assert.That(snapshot b, equalTo savedState)
            b.StepOn(model, x 4, loss 4) |> ignore
            Assert.That(paramValues b.Parameters, equalTo (paramValues a.Parameters), sprintf "limited=%b" limited)
            Assert.That(snapshot b, equalTo (snapshot a))

            if limited then
                Assert.That(entryInt b "layer.1.weight.lbfgs.count", equalTo 2)
            // a state of the other kind is refused
            let other =
                if limited then
                    Kbfgs.create opts model :> Optimizer
                else
                    Kbfgs.createLimited opts model :> Optimizer

            Assert.Throws<StateFormatException>(fun () -> other.LoadState path) |> ignore
        finally
            File.Delete path

[<Test>]
let ``a non-finite loss in the main or the trial pass leaves parameters and state unchanged`` () =
    let model = mlp453 ()
    let target = t [| 6; 3 |] (randn 7 18)

    for limited in [ false; true ] do
        let opt =
            if limited then Kbfgs.createLimited KbfgsOptions.Mlp model else Kbfgs.create KbfgsOptions.Mlp model

        let loss = fun out -> Losses.halfSquaredError out target

        for k in 0..1 do
            opt.StepOn(model, t [| 6; 4 |] (randn (600 + k) 24), loss) |> ignore

        let before, state = paramValues opt.Parameters, snapshot opt
        let bad = t [| 6; 4 |] (Array.append [| nan |] (randn 8 23))
        Assert.Throws<OptimizationException>(fun () -> opt.StepOn(model, bad, loss) |> ignore) |> ignore
        Assert.That(paramValues opt.Parameters, equalTo before)
        Assert.That(snapshot opt, equalTo state)
        // finite at the current point, NaN at the trial point
        let mutable calls = 0

        let trialNan (out: Tensor) =
            calls <- calls + 1
            let l = Losses.halfSquaredError out target
            if calls = 2 then l * nan else l

        let e =
            Assert.Throws<OptimizationException>(fun () -> opt.StepOn(model, t [| 6; 4 |] (randn 9 24), trialNan) |> ignore)

        Assert.That(e.Message, Does.Contain("trial"))
        Assert.That(paramValues opt.Parameters, equalTo before)
        Assert.That(snapshot opt, equalTo state)
        Assert.That(opt.StepCount, equalTo 2)

[<Test>]
let ``an all-zero batch never produces NaN parameters`` () =
    let model, _ = smallAutoencoder ()

    for options in [ KbfgsOptions.Mlp; KbfgsOptions.Cnn ] do
        let opt = Kbfgs.create options model
        let zeros = Tensor.zerosOf Dtype.Float32 [| 10; 32 |]

        for _ in 1..3 do
            opt.StepOn(model, zeros, fun out -> Losses.bceWithLogits out zeros) |> ignore

        Assert.That(Parameters.allFinite opt.Parameters, Is.True)
        let (_, data) = smallAutoencoder ()
        let b = Tensor.slice [| 0; 0 |] [| 10; 32 |] data
        opt.StepOn(model, b, fun out -> Losses.bceWithLogits out b) |> ignore
        Assert.That(Parameters.allFinite opt.Parameters, Is.True)

[<Test>]
let ``Step with a bare closure is refused; the optimizer needs the model`` () =
    let model = mlp453 ()
    let opt = Kbfgs.create KbfgsOptions.Mlp model
    Assert.That(opt.NeedsModel, Is.True)

    let e =
        Assert.Throws<OptimizationException>(fun () -> opt.Step(fun ps -> Tensor.sum ps.["1.weight"]) |> ignore)

    Assert.That(e.Message, Does.Contain("StepOn"))
    Assert.That(opt.StepCount, equalTo 0)
    let otherModel = mlp453 ()

    Assert.Throws<ArgumentException>(fun () -> opt.StepOn(otherModel, t [| 2; 4 |] (randn 1 8), fun out -> Tensor.sum out) |> ignore)
    |> ignore

[<Test>]
let ``a layer above MaxFactorSize falls back to momentum SGD with a warning naming it`` () =
    let model = Models.mlp [ 4; 3; 8 ] Activation.Tanh init64
    let opt = Kbfgs.create { KbfgsOptions.Mlp with MaxFactorSize = 5 } model
    let warnings = Collections.Generic.List<string>()
    opt.Warning.Add warnings.Add
    Assert.That(opt.PreconditionedLayers, equalTo [| "1.weight" |])
    Assert.That(opt.FallbackParameters, equalTo [| "3.weight"; "3.bias" |])
    let x = t [| 5; 4 |] (randn 10 20)
    let target = t [| 5; 8 |] (randn 11 40)
    let loss = fun (out: Tensor) -> Losses.halfSquaredError out target
    opt.StepOn(model, x, loss) |> ignore
    opt.StepOn(model, x, loss) |> ignore
    Assert.That(warnings.Count, equalTo 1, "one warning, at the first step")
    Assert.That(warnings.[0], Does.Contain("3.weight"))
    Assert.That(warnings.[0], Does.Contain("MaxFactorSize"))

[<Test>]
let ``the fallback step is the momentum SGD step`` () =
    let model = Models.mlp [ 4; 3; 8 ] Activation.Tanh init64
    let opt = Kbfgs.create { KbfgsOptions.Mlp with MaxFactorSize = 5 } model
    let x = t [| 5; 4 |] (randn 12 20)
    let target = t [| 5; 8 |] (randn 13 40)
    let loss = fun (out: Tensor) -> Losses.halfSquaredError out target
    let ps = model.Parameters
    let _, grads = Ad.valueAndGradMany (fun vs -> loss (model.Forward(ps.WithValues vs, x))) ps.Values
    opt.StepOn(model, x, loss) |> ignore

    for name in [ "3.weight"; "3.bias" ] do
        let i = ps.IndexOf name

        let expected =
            Array.map2 (fun w g -> w - 0.3 * 0.1 * (g + 1e-5 * w)) (Tensor.toArray ps.[name]) (Tensor.toArray grads.[i])

        assertAllClose 1e-15 name expected (Tensor.toArray opt.Parameters.[name])

[<Test>]
let ``options are validated with the bad value named`` () =
    let model = mlp453 ()

    let e =
        Assert.Throws<ArgumentException>(fun () -> Kbfgs.create { KbfgsOptions.Mlp with Lambda = 1.5 } model |> ignore)

    Assert.That(e.Message, Does.Contain("1.5"))
    Assert.DoesNotThrow(fun () -> Kbfgs.create { KbfgsOptions.Cnn with Lambda = 1.5 } model |> ignore)

    for bad in
        [
            { KbfgsOptions.Mlp with Lambda = 0.0 }
            { KbfgsOptions.Mlp with GradientMomentum = 1.0 }
            { KbfgsOptions.Mlp with UpdateEvery = 0 }
            { KbfgsOptions.Mlp with Memory = 0 }
            { KbfgsOptions.Mlp with Mu1 = 1.0 }
        ] do
        Assert.Throws<ArgumentException>(fun () -> Kbfgs.createLimited bad model |> ignore) |> ignore

[<Test>]
let ``float32 GEMMs for the factor products track the float64 ones on a float32 model`` () =
    let model, data = smallAutoencoder ()

    let run (precision: KbfgsPrecision) =
        let opt = Kbfgs.create { KbfgsOptions.Mlp with FactorProducts = precision } model

        for b in batchesOf data 50 do
            opt.StepOn(model, b, fun out -> Losses.bceWithLogits out b) |> ignore

        opt

    let single, double = run KbfgsPrecision.ModelDtype, run KbfgsPrecision.Float64

    Array.iter2
        (fun (a: float[]) (b: float[]) -> assertAllClose 1e-4 "parameters" b a)
        (paramValues single.Parameters)
        (paramValues double.Parameters)

    let ha32 = entryMatrix single "layer.1.weight.ha"
    let ha64 = entryMatrix double "layer.1.weight.ha"
    assertAllClose 1e-4 "H_a" (flat ha64) (flat ha32)
    // the option does change the arithmetic
    Assert.That(Array.fold2 (fun m x y -> max m (abs (x - y))) 0.0 (flat ha64) (flat ha32), Is.GreaterThan 0.0)

[<Test>]
let ``the trainer drives K-BFGS and K-BFGS(L) through StepOn and resumes them bit-identically from a checkpoint`` () =
    let task () =
        let all = Data.Synthetic.teacherClassification 7 400 [| 12 |] 3
        let train, validation = Data.Dataset.splitAt 200 all
        ({ Train = train; Validation = Some validation; Test = None }: TrainingData)

    let model () = Models.mlp [ 12; 32; 3 ] Activation.Tanh (Init.reference 1)
    let options = { TrainerOptions.Defaults with Epochs = 4; BatchSize = 50; Seed = 11 }

    for limited in [ false; true ] do
        let make (m: Model) = if limited then Kbfgs.createLimited KbfgsOptions.Mlp m else Kbfgs.create KbfgsOptions.Mlp m
        let dir = Path.Combine(Path.GetTempPath(), sprintf "kbfgs-train-%s" (Guid.NewGuid().ToString("N")))
        Directory.CreateDirectory dir |> ignore

        try
            let data = task ()
            let m1 = model ()
            let o1 = make m1
            let before = Trainer.evaluate m1 o1.Parameters Objective.Classification 1000 Dtype.Float32 data.Train
            let history = Trainer.fit m1 o1 options data ignore

            Assert.That(
                (List.last history).Train.Loss,
                Is.LessThan(0.5 * before.Loss),
                sprintf "limited=%b: %g -> %g" limited before.Loss (List.last history).Train.Loss
            )

            let m2 = model ()

            Trainer.fit m2 (make m2) { options with Epochs = 2; CheckpointFolder = Some dir } data ignore
            |> ignore

            let m3 = model ()
            let o3 = make m3

            Trainer.resume (Checkpoint.latest dir).Value m3 o3 options data ignore Threading.CancellationToken.None
            |> ignore

            for k in o1.Parameters.Keys do
                Assert.That(Tensor.toArray32 o3.Parameters.[k.Name], equalTo (Tensor.toArray32 o1.Parameters.[k]), k.Name)
        finally
            Directory.Delete(dir, true)

[<Test>]
let ``a state of another shape is refused with the entry named, and nothing changes`` () =
    let x = t [| 6; 4 |] (randn 20 24)
    let target = t [| 6; 3 |] (randn 21 18)
    let m453 = mlp453 ()
    let a = Kbfgs.create KbfgsOptions.Mlp m453
    a.StepOn(m453, x, fun out -> Losses.halfSquaredError out target) |> ignore
    let path = Path.Combine(Path.GetTempPath(), sprintf "kbfgs-%s.gnts" (Guid.NewGuid().ToString("N")))

    try
        a.SaveState path
        let other = Models.mlp [ 4; 6; 3 ] Activation.Tanh init64
        let b = Kbfgs.create KbfgsOptions.Mlp other
        let before = snapshot b
        let e = Assert.Throws<StateFormatException>(fun () -> b.LoadState path)
        Assert.That(e.Message, Does.Contain "layer.1.weight.hg")
        Assert.That(snapshot b, equalTo before)
        Assert.That(b.StepCount, equalTo 0)
    finally
        File.Delete path

[<Test>]
let ``MlpRulesForLinear: in CNN mode the Linear layer keeps a moving-average A and the MLP step`` () =
    let model = convModel ()
    let x = t [| 2; 2; 4; 4 |] (randn 82 64)
    let labels = Tensor.ofInts [| 1; 0 |]
    let loss = fun out -> Losses.crossEntropy out labels
    let mixed = Kbfgs.create { KbfgsOptions.Cnn with MlpRulesForLinear = true } model
    let cnn = Kbfgs.create KbfgsOptions.Cnn model
    let mlp = Kbfgs.create KbfgsOptions.Mlp model

    for o in [ mixed; cnn; mlp ] do
        o.StepOn(model, x, loss) |> ignore

    let e = entries mixed
    Assert.That((e.ContainsKey "layer.0.weight.a", e.ContainsKey "layer.3.weight.a"), equalTo (false, true))
    // the first step of a layer depends only on its own rules
    for name, reference in [ "0.weight", cnn; "0.bias", cnn; "3.weight", mlp; "3.bias", mlp ] do
        assertAllClose 1e-14 name (Tensor.toArray reference.Parameters.[name]) (Tensor.toArray mixed.Parameters.[name])

    Assert.Throws<ArgumentException>(fun () ->
        Kbfgs.create { KbfgsOptions.Cnn with MlpRulesForLinear = true; Lambda = 1.5 } model |> ignore)
    |> ignore
    // the warm start fills the Linear layer's A only
    let fresh = Kbfgs.create { KbfgsOptions.Cnn with MlpRulesForLinear = true } model
    fresh.WarmStart(model, [ x ])
    Assert.That((entries fresh).ContainsKey "layer.3.weight.warm_a", Is.True)

[<Test>]
let ``a layer without bias has d_a = fan-in and trains`` () =
    let model = Model.sequential "nobias" [| 4 |] init64 [ LayerSpec.Linear(4, 3, false) ]
    let x = t [| 20; 4 |] (randn 23 80)
    let wTrue = t [| 3; 4 |] (randn 24 12)
    let target = Tensor.matmulT false true x wTrue
    let loss = fun out -> Losses.halfSquaredError out target
    let opt = Kbfgs.create KbfgsOptions.Mlp model
    let first = opt.StepOn(model, x, loss)
    Assert.That((entryTensor opt "layer.0.weight.ha").Shape, equalTo [| 4; 4 |])
    let mutable last = first

    for _ in 1..30 do
        last <- opt.StepOn(model, x, loss)

    Assert.That(last, Is.LessThan(0.05 * first), sprintf "%g → %g" first last)
