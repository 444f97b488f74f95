/// Layer traces: per-layer inputs and output gradients from one reverse pass, checked
/// against the parameter gradients they must reproduce.
module GroupedNewton.Tests.TraceTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private init = { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 8 }

[<Test>]
let ``the trace's loss and gradients equal plain differentiation`` () =
    let m = Models.mlp [ 5; 4; 3 ] Activation.Tanh init
    let x = t [| 6; 5 |] (randn 1 30)
    let y = Tensor.ofInts [| 0; 1; 2; 0; 1; 2 |]
    let tr = Trace.run m m.Parameters x (fun out -> Losses.crossEntropy out y)

    let value, grads =
        Ad.valueAndGradMany (fun vs -> Losses.crossEntropy (m.Forward(m.Parameters.WithValues vs, x)) y) m.Parameters.Values

    assertClose 1e-15 "loss" (Tensor.toScalar value) tr.Loss

    Array.iteri2
        (fun i (g: Tensor) (k: ParameterKey) -> assertTensorClose 1e-14 (sprintf "gradient %s" k.Name) g tr.Gradient.[k])
        grads
        m.Parameters.Keys

    Assert.That(tr.Layers.Length, equalTo 2)

[<Test>]
let ``Linear layers: W̄ = gᵀa and b̄ = Σ g from the trace`` () =
    let m = Models.mlp [ 5; 4; 3 ] Activation.Elu init
    let x = t [| 6; 5 |] (randn 2 30)
    let target = t [| 6; 3 |] (randn 3 18)
    let tr = Trace.run m m.Parameters x (fun out -> Tensor.mse out target)

    for lt in tr.Layers do
        let w = Tensor.matmulT true false lt.OutputGradient lt.Input
        assertTensorClose 1e-14 "W̄" tr.Gradient.[lt.Layer.Weight.Value] w
        assertTensorClose 1e-14 "b̄" tr.Gradient.[lt.Layer.Bias.Value] (Tensor.sumDim 0 false lt.OutputGradient)
        Assert.That(lt.Output.Shape, equalTo lt.OutputGradient.Shape)

[<Test>]
let ``Conv2d layers: W̄ = g · unfold(a)ᵀ from the trace`` () =
    let m =
        Model.sequential "cnn" [| 2; 5; 5 |] init [
            LayerSpec.Conv2d(2, 3, 3, 2, 1, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.Flatten
            LayerSpec.Linear(27, 2, true)
        ]

    let x = t [| 4; 2; 5; 5 |] (randn 4 200)
    let y = Tensor.ofInts [| 0; 1; 1; 0 |]
    let tr = Trace.run m m.Parameters x (fun out -> Losses.crossEntropy out y)
    let conv = tr.Layers.[0]
    let cols = Tensor.unfold2d (3, 3) (2, 2) (1, 1) conv.Input // [C·9, N·L]
    let g = conv.OutputGradient |> Tensor.permute [| 1; 0; 2; 3 |] |> Tensor.view [| 3; -1 |] // [K, N·L]
    let w = Tensor.matmulT false true g cols |> Tensor.view [| 3; 2; 3; 3 |]
    assertTensorClose 1e-14 "conv W̄" tr.Gradient.[conv.Layer.Weight.Value] w
    assertTensorClose 1e-14 "conv b̄" tr.Gradient.[conv.Layer.Bias.Value] (g |> Tensor.sumDim 1 false)

[<Test>]
let ``Kronecker matrix form: [W̄ | b̄] = ∂L/∂hᵀ · ā for Linear and Conv2d, and the weight matrix splits back`` () =
    let m =
        Model.sequential "cnn" [| 2; 5; 5 |] init [
            LayerSpec.Conv2d(2, 3, 3, 2, 1, true)
            LayerSpec.Act Activation.Tanh
            LayerSpec.Flatten
            LayerSpec.Linear(27, 2, true)
        ]

    let x = t [| 4; 2; 5; 5 |] (randn 5 200)
    let y = Tensor.ofInts [| 1; 0; 1; 0 |]
    let tr = Trace.run m m.Parameters x (fun out -> Losses.crossEntropy out y)
    let expectedDims = [| (3, 19, 9); (2, 28, 1) |]

    tr.Layers
    |> Array.iteri (fun i lt ->
        let kl = KroneckerLayers.ofTrace lt
        let dg, da, locations = expectedDims.[i]
        Assert.That((kl.OutputDim, kl.InputDim, kl.Locations, kl.BatchSize), equalTo (dg, da, locations, 4))
        Assert.That(kl.Activations.Shape, equalTo [| 4 * locations; da |])
        let gradMatrix = Tensor.matmulT true false kl.OutputGradients kl.Activations
        assertTensorClose 1e-14 (sprintf "layer %d [W̄|b̄]" i) (KroneckerLayers.weightMatrix lt.Layer tr.Gradient) gradMatrix

        for key, part in KroneckerLayers.splitMatrix lt.Layer m.Parameters (KroneckerLayers.weightMatrix lt.Layer m.Parameters) do
            assertTensorClose 0.0 key.Name m.Parameters.[key] part)
