/// The anchor's workloads: the MLP 784-1024-200-100-10 (tanh) on flat inputs and LeNet-5
/// on 3×32×32, batch 100, float32, random labels, PyTorch's default initialisation.
module GroupedNewton.Benchmarks.Workloads

open System
open GroupedNewton

type Workload = { Model: Model; Inputs: Tensor; Labels: Tensor; Loss: Parameters -> Tensor }

let create (name: string) =
    let model, x =
        match name with
        | "mlp" -> Models.mlp [ 784; 1024; 200; 100; 10 ] Activation.Tanh (Init.pytorch 0), Tensor.randnOf Dtype.Float32 1 [| 100; 784 |]
        | "lenet" -> Models.lenet5 3 32 (Init.pytorch 0), Tensor.randnOf Dtype.Float32 1 [| 100; 3; 32; 32 |]
        | other -> invalidArg "name" (sprintf "unknown workload '%s' (mlp, lenet)" other)

    let rng = Random 2
    let y = Tensor.ofInts (Array.init 100 (fun _ -> rng.Next 10))

    {
        Model = model
        Inputs = x
        Labels = y
        Loss = fun ps -> Losses.crossEntropy (model.Forward(ps, x)) y
    }

/// An SGD optimizer (lr 1e-3, momentum 0.9) for the workload's parameters.
let sgd (w: Workload) = Sgd.create { SgdOptions.Defaults with LearningRate = 1e-3; Momentum = 0.9 } w.Model.Parameters
