// A walk through GroupedNewton from F#: a model, the summary tensors of one batch, one
// GroupedNewton step, and the paper's invariance claim checked on a reparameterised model.
//
//   dotnet pack GroupedNewton.sln -c Release -o out/packages
//   dotnet fsi samples/FSharpWalkthrough/FSharpWalkthrough.fsx
//
// It uses the GroupedNewton.Core package as F# scripts use packages: the nuget.config next to
// this file adds out/packages to the package sources; a folder elsewhere is added with a line
// `#i "nuget: /absolute/path/to/packages"` above the `#r` (tests/Package.Tests runs this script
// that way against its own freshly packed folder). Everything is seeded: two runs print the
// same numbers.

#r "nuget: GroupedNewton.Core, 0.2.0"

open System
open GroupedNewton
open GroupedNewton.Data

// ---------------------------------------------------------------------------------------
// 1. A model and a batch. Float64 keeps the invariance check below free of float32 noise.
// ---------------------------------------------------------------------------------------
let init = { Init.reference 0 with Dtype = Dtype.Float64 }
let model = Models.mlpOn [| 20 |] [ 20; 16; 10 ] Activation.Tanh init
let data = Synthetic.teacherClassification 1 200 [| 20 |] 10

let batch =
    Loader.batch { Loader.defaults 64 with Shuffle = false; Dtype = Dtype.Float64 } data (Array.init 64 id)

let loss (ps: Parameters) = Losses.crossEntropy (model.Forward(ps, batch.Inputs)) batch.Labels.Value

printfn "model %s: %d parameters in %s" model.Name model.Parameters.NumelTotal (String.Join(", ", model.Parameters.Names))
printfn "loss at initialisation: %.6f" (Tensor.toScalar (loss model.Parameters))

// ---------------------------------------------------------------------------------------
// 2. The derivatives of the loss according to a partition, along a direction u.
//    Here u is the gradient and the partition has one subset per tensor (S = 4).
// ---------------------------------------------------------------------------------------
let ps = model.Parameters
let gradient = ps.WithValues(Ad.gradMany (fun vs -> loss (ps.WithValues vs)) ps.Values)
let partition = Partition.canonical ps
let s = Summary.compute loss ps partition gradient

printfn "\npartition: %O" partition
printfn "ḡ  = %A" s.Gradient
printfn "H̄  =\n%A" s.Hessian
printfn "D̄ (diagonal) = %A   (%d reverse passes)" s.ThirdDiagonal s.ReversePasses

// the learning rates the cubic-regularised Newton step gives per subset
let d = s.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))
let sol = CubicRegularization.solve s.Hessian s.Gradient d 1.0
printfn "η = %A (solver path %A, r = %.4g)" sol.Eta sol.Path sol.Radius

// ---------------------------------------------------------------------------------------
// 3. One GroupedNewton step: an SGD-momentum direction at learning rate 1, and per-subset
//    rates from the summaries of a curvature batch (here the same batch).
// ---------------------------------------------------------------------------------------
let options = {
    GroupedNewtonOptions.Defaults with
        Cubic = true
        Damping = 0.5
        LambdaInt = 1.0
        ClipNegativeRates = true
}

let gn = GroupedNewtonOptimizer.create options 0.9 partition (fun () -> loss) ps
let before = gn.Step loss
printfn "\nGroupedNewton step: loss %.6f before, %.6f after" before (Tensor.toScalar (loss gn.Parameters))

for name, lr in (Array.last gn.History).LearningRates do
    printfn "  %-10s learning rate %.5g" name lr

// ---------------------------------------------------------------------------------------
// 4. Invariance under an affine reparameterisation per tensor: θ = a·θ̃ + b. GroupedNewton
//    on θ̃, mapped back, follows the same trajectory as on θ; SGD does not. The property
//    tests (property-tests/Invariance.fs) check this on random models, scales and offsets.
// ---------------------------------------------------------------------------------------
let scales = [| 10.0; -0.1; 3.0; 0.05 |]
let offsets = ps.Values |> Array.mapi (fun i v -> Tensor.randnOf Dtype.Float64 (100 + i) v.Shape * 0.3)
let toTheta (tilde: Parameters) = ps.WithValues(tilde.Values |> Array.mapi (fun i v -> scales.[i] * v + offsets.[i]))

let tilde0 =
    Parameters.ofSeq (Array.init ps.Count (fun i -> ps.Names.[i], (ps.Values.[i] - offsets.[i]) / scales.[i]))

let tildeLoss (t: Parameters) = loss (toTheta t)

let flat (p: Parameters) = p.Values |> Array.collect Tensor.toArray
let largestGap (x: float[]) (y: float[]) = Array.map2 (fun a b -> abs (a - b)) x y |> Array.max

let compareRuns (label: string) (make: Parameters -> (Parameters -> Tensor) -> Optimizer) =
    let o1 = make ps loss
    let o2 = make tilde0 tildeLoss

    for _ in 1..5 do
        o1.Step loss |> ignore
        o2.Step tildeLoss |> ignore

    let gap = largestGap (flat o1.Parameters) (flat (toTheta o2.Parameters))
    printfn "  %-14s after 5 steps, largest |θ − θ(θ̃)| = %.3g" label gap
    gap

printfn "\ninvariance under θ = a·θ̃ + b with a = %A:" scales

let gnGap =
    compareRuns "GroupedNewton" (fun p l -> GroupedNewtonOptimizer.create options 0.9 (Partition.canonical p) (fun () -> l) p :> Optimizer)

let sgdGap =
    compareRuns "SGD" (fun p _ -> Sgd.create { SgdOptions.Defaults with LearningRate = 0.05; Momentum = 0.9 } p :> Optimizer)

printfn "GroupedNewton is invariant (gap %.1g, rounding only); SGD is not (gap %.2g)." gnGap sgdGap

// the claim, checked: a script run that does not show it fails
if not (gnGap < 1e-9 && sgdGap > 1e-3) then
    eprintfn "the invariance claim does not hold here: GroupedNewton gap %g, SGD gap %g" gnGap sgdGap
    exit 1
