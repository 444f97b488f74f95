module GroupedNewton.Benchmarks.Program

let private usage () =
    eprintfn
        "usage: dotnet run -c Release --project benchmarks -- <gemm | tanh | hvp [threads,...] | sgd-step [threads,...] [models] | epoch [threads] | kbfgs-step [batch] [rounds] | anchor [--threads 1,2] [--models mlp,lenet] [--backends managed,torch] | optimizer-step [models] [threads] [reps] [block] [names] | train-loop [--models mlp,lenet] [--threads 1,2] [--algos sgd,gn-avg,kfac,kbfgs,sofim] [--hosts tuned,fsi,console] [--rounds 3] [--steps 100] [--warm 200] | autoencoder-demo [--optimizers kfac,kbfgs] [--epochs E] [--max-steps S] [--every N] [--out file] [--eval]>"

    2

[<EntryPoint>]
let main argv =
    match argv |> Array.tryHead with
    | Some "gemm" -> Gemm.run argv.[1..]
    | Some "tanh" -> TanhOp.run argv.[1..]
    | Some "hvp" -> Hvp.run argv.[1..]
    | Some "hvp-loop" -> Hvp.loop argv.[1..]
    | Some "sgd-step" -> SgdStep.run argv.[1..]
    | Some "sgd-loop" -> SgdStep.loop argv.[1..]
    | Some "sgd-parts" -> SgdStep.parts argv.[1..]
    | Some "sgd-pause" -> SgdStep.pause argv.[1..]
    | Some "epoch" -> Epoch.run argv.[1..]
    | Some "kbfgs-step" -> KbfgsStep.run argv.[1..]
    | Some "anchor" -> SummaryAnchor.run argv.[1..]
    | Some "summary-loop" -> SummaryAnchor.loop argv.[1..]
    | Some "optimizer-step" -> OptimizerStep.run argv.[1..]
    | Some "train-loop" -> TrainLoop.run argv.[1..]
    | Some "train-loop-child" -> TrainLoop.child argv.[1..]
    | Some "autoencoder-demo" -> AutoencoderDemo.run argv.[1..]
    | Some "distributed"
    | Some "distributed-worker"
    | Some "distributed-allreduce" -> Distributed.dispatch argv
    | _ -> usage ()
