/// One K-BFGS and one K-BFGS(L) step next to one momentum-SGD step (all through StepOn) on
/// the MNIST autoencoder of the K-BFGS paper, float32, rounds interleaved in one run; the
/// figures that matter are the ratios. `kbfgs-step [batch] [rounds]` (defaults 1000, 3).
module GroupedNewton.Benchmarks.KbfgsStep

open System
open System.Text.Json
open GroupedNewton

let run (args: string[]) =
    let batch = if args.Length > 0 then int args.[0] else 1000
    let rounds = if args.Length > 1 then int args.[1] else 3
    let model = Models.mnistAutoencoder (Init.reference 0)
    let x = Tensor.randOf Dtype.Float32 7 0.0 1.0 [| batch; 784 |]
    let loss = fun out -> Losses.bceWithLogits out x
    let sgd = Sgd.create { SgdOptions.Defaults with LearningRate = 1e-3; Momentum = 0.9 } model.Parameters
    let options = { KbfgsOptions.Mlp with LearningRate = 0.3; Lambda = 0.3 }
    let kbfgs = Kbfgs.create options model
    let limited = Kbfgs.createLimited options model
    let contenders: (string * Optimizer) list = [ "sgd", sgd; "kbfgs", kbfgs; "kbfgs-l", limited ]
    // the first K-BFGS step inverts A + √λI once per layer: time it apart
    let firstMs =
        contenders
        |> List.map (fun (name, o) ->
            let sw = Diagnostics.Stopwatch.StartNew()
            o.StepOn(model, x, loss) |> ignore
            name, sw.Elapsed.TotalMilliseconds)

    let times = contenders |> List.map (fun (name, _) -> name, Collections.Generic.List<float>()) |> dict

    for _ in 1..rounds do
        for name, o in contenders do
            times.[name].Add(Timing.medianMs 1 3 (fun () -> o.StepOn(model, x, loss) |> ignore))

    let ms name = Timing.median times.[name]
    printfn "MNIST autoencoder, batch %d, float32, %d cores" batch Environment.ProcessorCount

    for name, first in firstMs do
        printfn "%-8s step %8.1f ms (first step %8.1f ms), ratio to SGD %.2f" name (ms name) first (ms name / ms "sgd")

    printfn
        "%s"
        (JsonSerializer.Serialize {|
            bench = "kbfgs-step"
            batch = batch
            sgd_ms = ms "sgd"
            kbfgs_ms = ms "kbfgs"
            kbfgs_l_ms = ms "kbfgs-l"
            kbfgs_over_sgd = ms "kbfgs" / ms "sgd"
            kbfgs_l_over_sgd = ms "kbfgs-l" / ms "sgd"
        |})

    0
