/// Time per training step of several optimizers relative to SGD with momentum on the same
/// anchor workload (MLP 784-1024-200-100-10 tanh and LeNet-5, batch 100, float32), in one
/// run: each repetition times a block of consecutive steps per optimizer, the optimizers
/// take turns (interleaved), and the per-step medians over repetitions are compared. A
/// block spans K-FAC's inverse interval so its amortised inversions are counted.
module GroupedNewton.Benchmarks.OptimizerStep

open System
open System.Diagnostics
open System.Text.Json
open GroupedNewton

/// A named way to build an optimizer for a workload.
type Contender = { Name: string; Create: Workloads.Workload -> Optimizer }

/// SGD with momentum: the baseline every ratio is taken against (kept first).
let baseline = { Name = "sgd-momentum"; Create = fun w -> Workloads.sgd w :> Optimizer }

/// K-BFGS in the authors' MLP mode, or in CNN mode when the model has a convolution.
let private kbfgsOptions (m: Model) =
    let conv =
        m.Layers
        |> Array.exists (fun l ->
            match l.Spec with
            | LayerSpec.Conv2d _ -> true
            | _ -> false)

    { (if conv then KbfgsOptions.Cnn else KbfgsOptions.Mlp) with LearningRate = 1e-3 }

/// The optimizers compared with the baseline.
let contenders: Contender list = [
    {
        Name = "sofim"
        Create = fun w -> Sofim.create { SofimOptions.Defaults with LearningRate = 1e-3 } w.Model.Parameters :> Optimizer
    }
    {
        Name = "kfac"
        Create = fun w -> Kfac.create { KfacOptions.Defaults with LearningRate = 1e-3 } w.Model :> Optimizer
    }
    { Name = "kbfgs"; Create = fun w -> Kbfgs.create (kbfgsOptions w.Model) w.Model :> Optimizer }
    {
        Name = "kbfgs-l"
        Create = fun w -> Kbfgs.createLimited (kbfgsOptions w.Model) w.Model :> Optimizer
    }
]

let private stepOf (w: Workloads.Workload) (opt: Optimizer) =
    fun () -> opt.StepOn(w.Model, w.Inputs, fun out -> Losses.crossEntropy out w.Labels) |> ignore

/// `optimizer-step [models] [threads] [reps] [block] [names]`: defaults mlp,lenet; 1; 7; 20; all.
let run (args: string[]) =
    let arg i (d: string) = if args.Length > i then args.[i] else d
    let models = (arg 0 "mlp,lenet").Split(',')
    let threads = int (arg 1 "1")
    let reps = int (arg 2 "7")
    let block = int (arg 3 "20")
    let only = (arg 4 "").Split(',', StringSplitOptions.RemoveEmptyEntries)

    let chosen =
        baseline :: (contenders |> List.filter (fun c -> only.Length = 0 || Array.contains c.Name only))

    BackendRegistry.setThreads threads

    printfn
        "optimizer step, batch 100, float32, %d thread(s): %d interleaved repetitions of %d-step blocks, per-step medians"
        threads
        reps
        block

    for model in models do
        let w = Workloads.create model
        let steps = chosen |> List.map (fun c -> c.Name, stepOf w (c.Create w)) |> Array.ofList
        // warm-up: reach optimised JIT tiers and fill every optimizer's state
        for _, step in steps do
            for _ in 1 .. block + 5 do
                step ()

        let times = steps |> Array.map (fun _ -> ResizeArray<float>())

        for _ in 1..reps do
            steps
            |> Array.iteri (fun i (_, step) ->
                let sw = Stopwatch.StartNew()

                for _ in 1..block do
                    step ()

                times.[i].Add(sw.Elapsed.TotalMilliseconds / float block))

        let medians = times |> Array.map Timing.median
        let base' = medians.[0]

        steps
        |> Array.iteri (fun i (name, _) ->
            printfn "%-6s %-14s %9.2f ms/step   ratio to SGD-m %.2f" model name medians.[i] (medians.[i] / base')

            printfn
                "%s"
                (JsonSerializer.Serialize {|
                    bench = "optimizer-step"
                    model = model
                    optimizer = name
                    threads = threads
                    block = block
                    reps = reps
                    step_ms = medians.[i]
                    sgd_momentum_ms = base'
                    ratio = medians.[i] / base'
                |}))

    0
