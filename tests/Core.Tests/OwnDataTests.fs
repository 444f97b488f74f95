/// Data sets from a user's arrays, parameters saved on their own, predictions.
module GroupedNewton.Tests.OwnDataTests

open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data

[<Test>]
let ``ofArrays keeps samples and labels and refuses lengths that disagree, naming both numbers`` () =
    let d = Dataset.ofArrays [| 2 |] [| 1.0f; 2.0f; 3.0f; 4.0f |] [| 1; 0 |] 2
    Assert.That(Dataset.labels d, Is.EqualTo(box [| 1; 0 |]))
    Assert.That(Tensor.toArray32 (Dataset.inputs Dtype.Float32 d), Is.EqualTo(box [| 1.0f; 2.0f; 3.0f; 4.0f |]))

    let e =
        Assert.Throws<System.ArgumentException>(fun () -> Dataset.ofArrays [| 2 |] (Array.zeroCreate 6) [| 0; 1 |] 2 |> ignore)

    Assert.That(e.Message, Does.Contain("3 samples").And.Contain("2 labels"))

[<Test>]
let ``saved parameters reload into the same architecture and are refused by another, naming the parameter and both shapes`` () =
    let init = Init.reference 0
    let m = Models.mlpOn [| 4 |] [ 4; 6; 3 ] Activation.Tanh init
    let other = Models.mlpOn [| 4 |] [ 4; 6; 3 ] Activation.Tanh (Init.reference 3)
    use ms = new MemoryStream()
    ModelFile.write ms m m.Parameters
    ms.Position <- 0L
    let loaded = ModelFile.read "mem" ms other

    for a, b in Array.zip loaded.Values m.Parameters.Values do
        Assert.That(Tensor.toArray32 a, Is.EqualTo(box (Tensor.toArray32 b)))

    let wide = Models.mlpOn [| 4 |] [ 4; 5; 3 ] Activation.Tanh init
    ms.Position <- 0L
    let e = Assert.Throws<StateFormatException>(fun () -> ModelFile.read "mem" ms wide |> ignore)
    Assert.That(e.Message, Does.Contain("[6; 4]").And.Contain("[5; 4]"))
    let x = Tensor.randnOf Dtype.Float32 1 [| 5; 4 |]
    let p = Tensor.toArray (Prediction.probabilities m m.Parameters x)

    for i in 0..4 do
        Assert.That(Array.sum p.[3 * i .. 3 * i + 2], Is.EqualTo(1.0).Within(1e-6))

    let classes = Prediction.classes m m.Parameters x

    for i in 0..4 do
        let row = p.[3 * i .. 3 * i + 2]
        Assert.That(classes.[i], Is.EqualTo(Array.findIndex ((=) (Array.max row)) row))
