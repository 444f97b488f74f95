/// K-FAC: the Kronecker identities with column-major vec, the conv factors of a
/// small example against a direct computation, the damped direction against an explicit
/// Kronecker solve, training, state round trip, fallback, failure and degenerate batches.
module GroupedNewton.Tests.KfacTests

open System
open System.Collections.Generic
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private f64 seed = { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = seed }

/// The explicit Kronecker product a ⊗ b.
let private kron (a: float[,]) (b: float[,]) =
    let ra, ca, rb, cb = Array2D.length1 a, Array2D.length2 a, Array2D.length1 b, Array2D.length2 b
    Array2D.init (ra * rb) (ca * cb) (fun i j -> a.[i / rb, j / cb] * b.[i % rb, j % cb])

/// Column-major vec of a matrix.
let private vecCm (x: float[,]) =
    let r, c = Array2D.length1 x, Array2D.length2 x
    Array.init (r * c) (fun k -> x.[k % r, k / r])

let private matmul (a: float[,]) (b: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 b) (fun i j ->
        let mutable s = 0.0

        for k in 0 .. Array2D.length2 a - 1 do
            s <- s + a.[i, k] * b.[k, j]

        s)

let private transpose (a: float[,]) = Array2D.init (Array2D.length2 a) (Array2D.length1 a) (fun i j -> a.[j, i])
let private randMatrix seed r c = let v = randn seed (r * c) in Array2D.init r c (fun i j -> v.[i * c + j])
let private flat (a: float[,]) = Array.init a.Length (fun k -> a.[k / Array2D.length2 a, k % Array2D.length2 a])

let private spd seed n shift =
    let x = randMatrix seed (n + 2) n
    let xtx = matmul (transpose x) x
    Array2D.init n n (fun i j -> xtx.[i, j] / float (n + 2) + (if i = j then shift else 0.0))

let private addDiag (a: float[,]) d =
    Array2D.init (Array2D.length1 a) (Array2D.length2 a) (fun i j -> a.[i, j] + (if i = j then d else 0.0))

let private trace (a: float[,]) = Seq.sum (seq { for i in 0 .. Array2D.length1 a - 1 -> a.[i, i] })

let private options = {
    KfacOptions.Defaults with
        LearningRate = 1.0
        Damping = 0.09
        Momentum = 0.0
        WeightDecay = 0.0
        InverseInterval = 1
}

[<Test>]
let ``Kronecker identities with column-major vec: (A⊗G)vec(X) = vec(G X Aᵀ) and the inverse`` () =
    let a = randMatrix 1 4 4 // not symmetric: the transpose matters
    let g = randMatrix 2 3 3
    let x = randMatrix 3 3 4
    let lhs = DenseAlgebra.matVec (kron a g) (vecCm x)
    assertAllClose 1e-14 "(A⊗G)vec(X)" (vecCm (matmul (matmul g x) (transpose a))) lhs
    // row-major vec pairs with the other order: (G⊗A)vecᵣ(X) = vecᵣ(G X Aᵀ)
    assertAllClose 1e-14 "row-major" (flat (matmul (matmul g x) (transpose a))) (DenseAlgebra.matVec (kron g a) (flat x))
    // the inverse through K-FAC's factored application, against a solve with the explicit product
    let aS, gS = spd 4 4 0.3, spd 5 3 0.2
    let solved = (DenseAlgebra.trySolve (kron aS gS) (vecCm x)).Value

    let inv (m: float[,]) =
        Tensor.ofArrayShape (DenseAlgebra.trySpdInverse (Array2D.length1 m) (flat m)).Value [| Array2D.length1 m; Array2D.length1 m |]

    let d = KfacMath.precondition (inv gS) (Tensor.ofArray2D x) (inv aS) |> Tensor.toArray2D
    assertAllClose 1e-12 "(A⊗G)⁻¹vec(X) = vec(G⁻¹ X A⁻¹)" solved (vecCm d)

[<Test>]
let ``the SPD inverse matches an explicit solve and refuses an indefinite matrix`` () =
    // 37: one Cholesky block; 301: recursive blocks (odd sizes, uneven halves)
    for n in [ 37; 301 ] do
        let m = spd 6 n 0.1
        let inv = (DenseAlgebra.trySpdInverse n (flat m)).Value
        let id = matmul m (Array2D.init n n (fun i j -> inv.[i * n + j]))
        assertAllClose 1e-11 (sprintf "M·M⁻¹ (n = %d)" n) (flat (DenseAlgebra.identity n)) (flat id)

        Assert.That(
            Array2D.init n n (fun i j -> inv.[i * n + j] - inv.[j * n + i])
            |> flat
            |> Array.forall (fun v -> v = 0.0),
            "symmetric"
        )

        let indefinite = addDiag m -100.0
        Assert.That(DenseAlgebra.trySpdInverse n (flat indefinite), equalTo None)
        // an indefinite trailing block only
        let lateBad =
            Array2D.init n n (fun i j ->
                if i = j && i = n - 1 then -1.0
                elif i = j then 1.0
                else 0.0)

        Assert.That(DenseAlgebra.trySpdInverse n (flat lateBad), equalTo None)

[<Test>]
let ``conv factors of a small example: shapes and values against a direct computation`` () =
    // M = 2, Cin = 2, 4×4 input, 3×3 kernel, pad 1, stride 1, Cout = 3, bias
    let m = Model.sequential "conv" [| 2; 4; 4 |] (f64 3) [ LayerSpec.Conv2d(2, 3, 3, 1, 1, true) ]
    let xv = randn 7 (2 * 2 * 4 * 4)
    let cv = randn 8 (2 * 3 * 4 * 4)
    let x = t [| 2; 2; 4; 4 |] xv
    // L = (1/M) Σ ⟨C_i, h_i⟩ ⇒ g_{i,t} = M ∂L/∂h_{i,t} = C_{i,:,t} exactly
    let tr = Trace.run m m.Parameters x (fun out -> Tensor.sum (out * t [| 2; 3; 4; 4 |] cv) / 2.0)
    let kl = KroneckerLayers.ofTrace tr.Layers.[0]
    Assert.That((kl.InputDim, kl.OutputDim, kl.Locations), equalTo (19, 3, 16))
    Assert.That((KroneckerLayers.weightMatrix kl.Layer m.Parameters).Shape, equalTo [| 3; 19 |])
    let a, g = KfacMath.batchFactors KfacConvScaling.AverageActivations kl
    Assert.That((a.Shape, g.Shape), equalTo ([| 19; 19 |], [| 3; 3 |]))
    // direct patches, channel-slowest (c, i, j), then the homogeneous 1
    let patch i oi oj = [|
        for c in 0..1 do
            for di in 0..2 do
                for dj in 0..2 do
                    let ii, jj = oi + di - 1, oj + dj - 1
                    yield (if ii >= 0 && ii < 4 && jj >= 0 && jj < 4 then xv.[((i * 2 + c) * 4 + ii) * 4 + jj] else 0.0)
        yield 1.0
    |]

    let aDirect = Array2D.zeroCreate 19 19
    let gDirect = Array2D.zeroCreate 3 3
    let mean = Array.zeroCreate 19

    for i in 0..1 do
        for oi in 0..3 do
            for oj in 0..3 do
                let p = patch i oi oj
                let c = Array.init 3 (fun k -> cv.[((i * 3 + k) * 4 + oi) * 4 + oj])

                for r in 0..18 do
                    mean.[r] <- mean.[r] + p.[r] / 32.0

                    for s in 0..18 do
                        aDirect.[r, s] <- aDirect.[r, s] + p.[r] * p.[s] / 32.0 // mean over M·|T|

                for r in 0..2 do
                    for s in 0..2 do
                        gDirect.[r, s] <- gDirect.[r, s] + c.[r] * c.[s] / 2.0 // Σ_t, mean over M

    assertAllClose 1e-13 "A (mean over samples and locations)" (flat aDirect) (Tensor.toArray a)
    assertAllClose 1e-13 "G (sum over locations, mean over samples)" (flat gDirect) (Tensor.toArray g)
    Assert.That(mean.[18], equalTo 1.0)
    let a2, g2 = KfacMath.batchFactors KfacConvScaling.SumActivations kl
    assertAllClose 1e-12 "A (sum over locations)" (flat aDirect |> Array.map (fun v -> v * 16.0)) (Tensor.toArray a2)
    assertAllClose 1e-13 "G (mean over locations)" (flat gDirect |> Array.map (fun v -> v / 16.0)) (Tensor.toArray g2)

/// One K-FAC step on a single Linear layer (½ squared error), against an explicit solve with
/// (A + πγI) ⊗ (G + γ/π·I).
let private linearStepAgainstSolve (split: KfacDampingSplit) =
    let m = Model.sequential "lin" [| 4 |] (f64 9) [ LayerSpec.Linear(4, 3, true) ]
    let n = 6
    let xv = randMatrix 10 n 4
    let yv = randMatrix 11 n 3
    let opt = Kfac.create { options with DampingSplit = split } m
    let before = KroneckerLayers.weightMatrix m.Layers.[0] opt.Parameters |> Tensor.toArray2D

    opt.StepOn(m, Tensor.ofArray2D xv, fun out -> Losses.halfSquaredError out (Tensor.ofArray2D yv))
    |> ignore

    let after = KroneckerLayers.weightMatrix m.Layers.[0] opt.Parameters |> Tensor.toArray2D
    let delta = Array2D.init 3 5 (fun i j -> before.[i, j] - after.[i, j])
    // the oracle: ā = [x, 1], h = W ā, g = N·∂L/∂h = h − y
    let abar = Array2D.init n 5 (fun i j -> if j < 4 then xv.[i, j] else 1.0)
    let h = matmul abar (transpose before)
    let g = Array2D.init n 3 (fun i j -> h.[i, j] - yv.[i, j])
    let a = Array2D.map (fun v -> v / float n) (matmul (transpose abar) abar)
    let gf = Array2D.map (fun v -> v / float n) (matmul (transpose g) g)
    let grad = Array2D.map (fun v -> v / float n) (matmul (transpose g) abar)
    let gamma = 0.3

    let pi =
        match split with
        | KfacDampingSplit.Pi -> sqrt ((trace a / 5.0) / (trace gf / 3.0))
        | KfacDampingSplit.Plain -> 1.0

    let k = kron (addDiag a (pi * gamma)) (addDiag gf (gamma / pi))
    let solved = (DenseAlgebra.trySolve k (vecCm grad)).Value
    assertAllClose 1e-11 (sprintf "direction (%A)" split) solved (vecCm delta)
    Assert.That(opt.Diagnostics.Inversions, equalTo 2)

[<Test>]
let ``the direction equals an explicit solve with (A + πγI)⊗(G + γ/π I)`` () = linearStepAgainstSolve KfacDampingSplit.Pi

[<Test>]
let ``plain damping: the direction equals an explicit solve with (A + γI)⊗(G + γI)`` () = linearStepAgainstSolve KfacDampingSplit.Plain

let private smallCnn dtype seed =
    Model.sequential "cnn" [| 1; 8; 8 |] { Scheme = InitScheme.PyTorchDefault; Dtype = dtype; Seed = seed } [
        LayerSpec.Conv2d(1, 4, 3, 1, 1, true)
        LayerSpec.Act Activation.Tanh
        LayerSpec.MaxPool2d(2, 2, 0)
        LayerSpec.Conv2d(4, 6, 3, 1, 0, true)
        LayerSpec.Act Activation.Tanh
        LayerSpec.Flatten
        LayerSpec.Linear(24, 3, true)
    ]

let private cnnData dtype = Tensor.randnOf dtype 1 [| 16; 1; 8; 8 |], Tensor.ofInts (Array.init 16 (fun i -> i % 3))

[<Test>]
let ``with the π split both conv scalings give the same step`` () =
    let m = smallCnn Dtype.Float64 5
    let x, y = cnnData Dtype.Float64

    let run scaling =
        let opt = Kfac.create { options with ConvScaling = scaling } m

        for _ in 1..2 do
            opt.StepOn(m, x, fun out -> Losses.crossEntropy out y) |> ignore

        opt.Parameters

    let p1, p2 = run KfacConvScaling.AverageActivations, run KfacConvScaling.SumActivations

    for k in p1.Keys do
        assertTensorClose 1e-10 k.Name p1.[k] p2.[k]

/// An autoencoder built like Models.mnistAutoencoder (ReLU except the code layer and the
/// output, logits for a sigmoid BCE), smaller so that a unit test inverts small factors.
let private smallAutoencoder seed =
    let sizes = [ 784; 64; 32; 8; 32; 64; 784 ]
    let code = 2
    let last = sizes.Length - 2

    Model.sequential "small-autoencoder" [| 784 |] (Init.pytorch seed) [
        for i, (a, b) in List.indexed (List.pairwise sizes) do
            yield LayerSpec.Linear(a, b, true)

            if i <> code && i <> last then
                yield LayerSpec.Act Activation.Relu
    ]

[<Test>]
let ``K-FAC lowers the loss of an MNIST-shaped autoencoder and of a small CNN`` () =
    let ae = smallAutoencoder 2

    let xa =
        Tensor.sigmoid (Tensor.matmul (Tensor.randnOf Dtype.Float32 3 [| 32; 8 |]) (Tensor.randnOf Dtype.Float32 4 [| 8; 784 |]))

    let cnn = smallCnn Dtype.Float32 1
    let x, y = cnnData Dtype.Float32

    for name, model, input, loss, o, factor in
        [
            "autoencoder",
            ae,
            xa,
            (fun out -> Losses.bceWithLogits out xa),
            // inverses every 10 steps: the 785×785 and 784×784 factors dominate the cost here
            {
                Kfac.authorsBaseline 1.0 3.0 KfacSamplers.bernoulliLogits with
                    InverseWarmup = 0
                    InverseInterval = 10
            },
            0.9
            "cnn", cnn, x, (fun out -> Losses.crossEntropy out y), { KfacOptions.Defaults with LearningRate = 0.3; Damping = 0.03 }, 0.5
        ] do
        let opt = Kfac.create o model
        let first = opt.StepOn(model, input, loss)

        for _ in 1..30 do
            opt.StepOn(model, input, loss) |> ignore

        let last = Tensor.toScalar (loss (model.Forward(opt.Parameters, input)))
        Assert.That(last, Is.LessThan(first * factor), sprintf "%s: %g -> %g" name first last)
        Assert.That(opt.Diagnostics.FailedInversions, equalTo 0)

[<Test>]
let ``the authors' baseline holds their published settings`` () =
    let o = Kfac.authorsBaseline 0.3 3.0 KfacSamplers.bernoulliLogits
    Assert.That(o.LearningRate, Is.EqualTo 0.3)
    Assert.That(o.Damping, Is.EqualTo 3.0)
    Assert.That(o.DampingSplit, Is.EqualTo KfacDampingSplit.Plain)
    Assert.That(o.Momentum, Is.EqualTo 0.9)
    Assert.That(o.WeightDecay, Is.EqualTo 1e-5)
    Assert.That(o.StatDecay, Is.EqualTo 0.9)
    Assert.That(o.CovarianceInterval, Is.EqualTo 1)
    Assert.That(o.InverseInterval, Is.EqualTo 20)
    Assert.That(o.InverseWarmup, Is.EqualTo 20)
    Assert.That(o.KlClip, Is.EqualTo(None: float option))
    Assert.That(o.MaxFactorSize, Is.EqualTo Int32.MaxValue)

    Assert.That(
        (match o.Fisher with
         | KfacFisher.Sampled _ -> true
         | _ -> false),
        Is.True
    )

let private tempPath () = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "kfac-%s.state" (Guid.NewGuid().ToString("N")))

[<Test>]
let ``state saved mid-run gives the identical next steps`` () =
    let m = smallCnn Dtype.Float32 3
    let x, y = cnnData Dtype.Float32
    let loss out = Losses.crossEntropy out y
    let o = { KfacOptions.Defaults with InverseInterval = 3; InverseWarmup = 1; KlClip = Some 0.01 }
    let a = Kfac.create o m

    for _ in 1..4 do
        a.StepOn(m, x, loss) |> ignore

    let path = tempPath ()

    try
        a.SaveState path
        let b = Kfac.create o m
        b.SetParameters a.Parameters
        b.LoadState path
        Assert.That(b.StepCount, equalTo 4)
        Assert.That(b.Diagnostics.Inversions, equalTo a.Diagnostics.Inversions)

        for _ in 1..3 do
            a.StepOn(m, x, loss) |> ignore
            b.StepOn(m, x, loss) |> ignore

        for k in a.Parameters.Keys do
            Assert.That(Tensor.toArray b.Parameters.[k], equalTo (Tensor.toArray a.Parameters.[k]), k.Name)
    finally
        if IO.File.Exists path then
            IO.File.Delete path

[<Test>]
let ``a parameter outside Linear/Conv2d layers and an oversized layer fall back to SGD momentum with a warning`` () =
    let m = Models.mlp [ 5; 4; 3 ] Activation.Tanh (f64 4)

    let extra =
        Parameters.ofSeq [ yield! Seq.zip m.Parameters.Names m.Parameters.Values; yield "scale", vec [| 2.0; -1.0 |] ]
    // the model reads its parameters by key: give it the same keys through a model over `extra`
    let model = {
        m with
            Layers =
                m.Layers
                |> Array.map (fun l -> {
                    l with
                        Weight = l.Weight |> Option.map (fun k -> extra.Key k.Name)
                        Bias = l.Bias |> Option.map (fun k -> extra.Key k.Name)
                })
            Parameters = extra
    }

    let o = { options with Momentum = 0.9; WeightDecay = 0.1; LearningRate = 0.5; MaxFactorSize = 5 }
    let opt = Kfac.createFor o model extra
    let warnings = ResizeArray<string>()
    opt.Warning.Add warnings.Add
    let x = t [| 3; 5 |] (randn 12 15)
    let y = Tensor.ofInts [| 0; 1; 2 |]
    let loss out = Losses.crossEntropy out y
    let grad = (Trace.run model extra x loss).Gradient
    opt.StepOn(model, x, loss) |> ignore
    opt.StepOn(model, x, loss) |> ignore
    Assert.That(warnings.Count, equalTo 2, String.Join("\n", warnings))
    Assert.That(warnings |> Seq.exists (fun w -> w.Contains "'scale'"))
    Assert.That(warnings |> Seq.exists (fun w -> w.Contains "layer 1 (Linear(5→4))"))
    Assert.That(opt.Diagnostics.PreconditionedLayers, equalTo 1)
    Assert.That(opt.Diagnostics.FallbackParameters, equalTo [| "1.weight"; "1.bias"; "scale" |])
    // the first fallback step: θ − lr·(1 − β)(g + τθ); 'scale' has no gradient, only decay
    let opt1 = Kfac.createFor o model extra
    opt1.StepOn(model, x, loss) |> ignore

    for name in [ "1.weight"; "scale" ] do
        let th = Tensor.toArray extra.[name]
        let g = Tensor.toArray grad.[name]
        let expected = Array.map2 (fun th g -> th - 0.5 * 0.1 * (g + 0.1 * th)) th g
        assertAllClose 1e-14 name expected (Tensor.toArray opt1.Parameters.[name])

let private snapshot (opt: Optimizer) =
    opt.StateEntries()
    |> List.map (fun (k, v) ->
        k,
        (match v with
         | StoreValue.Tensor t -> box (Tensor.toArray t)
         | StoreValue.Float f -> box f
         | StoreValue.Int i -> box i
         | StoreValue.Text s -> box s))

[<Test>]
let ``a NaN loss leaves parameters and state unchanged; a bare Step is refused`` () =
    let m = smallCnn Dtype.Float64 4
    let x, y = cnnData Dtype.Float64
    let opt = Kfac.create KfacOptions.Defaults m
    opt.StepOn(m, x, fun out -> Losses.crossEntropy out y) |> ignore
    let before = opt.Parameters.Values |> Array.map Tensor.toArray
    let state = snapshot opt

    let e =
        Assert.Throws<OptimizationException>(fun () -> opt.StepOn(m, x, fun out -> Losses.crossEntropy out y * nan) |> ignore)

    Assert.That(e.Message, Does.Contain "NaN")
    Assert.That(opt.Parameters.Values |> Array.map Tensor.toArray, equalTo before)
    Assert.That(snapshot opt, equalTo state)
    Assert.That(opt.StepCount, equalTo 1)

    let e2 =
        Assert.Throws<OptimizationException>(fun () -> opt.Step(fun ps -> Losses.crossEntropy (m.Forward(ps, x)) y) |> ignore)

    Assert.That(e2.Message, Does.Contain "StepOn")

[<Test>]
let ``an all-zero batch and a zero loss give finite parameters (singular factors are damped)`` () =
    let mlp =
        Model.sequential "nobias" [| 6 |] (f64 5) [
            LayerSpec.Linear(6, 4, false)
            LayerSpec.Act Activation.Tanh
            LayerSpec.Linear(4, 2, true)
        ]

    let cnn = smallCnn Dtype.Float32 6

    for model, x, lossOf in
        [
            mlp, Tensor.zeros [| 5; 6 |], (fun (out: Tensor) -> Losses.mse out (Tensor.ones [| 5; 2 |]))
            mlp, Tensor.zeros [| 5; 6 |], (fun (out: Tensor) -> 0.0 * Tensor.sum out)
            cnn,
            Tensor.zerosOf Dtype.Float32 [| 4; 1; 8; 8 |],
            (fun (out: Tensor) -> Losses.crossEntropy out (Tensor.ofInts [| 0; 1; 2; 0 |]))
        ] do
        for split in [ KfacDampingSplit.Pi; KfacDampingSplit.Plain ] do
            let opt = Kfac.create { KfacOptions.Defaults with DampingSplit = split } model

            for _ in 1..3 do
                opt.StepOn(model, x, lossOf) |> ignore

            Assert.That(Parameters.allFinite opt.Parameters, sprintf "%s %A" model.Name split)
            Assert.That(opt.Diagnostics.FailedInversions, equalTo 0)

[<Test>]
let ``options are validated by name`` () =
    let m = Models.mlp [ 3; 2 ] Activation.Tanh (f64 1)

    for bad, name in
        [
            { KfacOptions.Defaults with Damping = 0.0 }, "Damping"
            { KfacOptions.Defaults with StatDecay = 1.0 }, "StatDecay"
            { KfacOptions.Defaults with InverseInterval = 0 }, "InverseInterval"
            { KfacOptions.Defaults with KlClip = Some -1.0 }, "KlClip"
        ] do
        let e = Assert.Throws<ArgumentException>(fun () -> Kfac.create bad m |> ignore)
        Assert.That(e.Message, Does.Contain name)
