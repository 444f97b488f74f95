/// The K-BFGS authors' MNIST autoencoder demo (docs/kbfgs.md, "Defaults" and "The K-FAC baseline") run on Fashion-MNIST:
/// 784-1000-500-250-30-250-500-1000-784 (ReLU, linear code and output), sigmoid BCE summed
/// over the 784 outputs and averaged over the batch, batch 1000, seed 9999, K-FAC with the
/// authors' baseline settings at α = 1, λ = 3. Writes JSON lines: per-N-step training loss,
/// and per epoch the mean training loss over the epoch's steps (optionally the full-pass
/// train/test losses) and the epoch's wall time. Several optimizers run one after the
/// other on the same data order; their per-epoch time ratio to the first is reported.
module GroupedNewton.Benchmarks.AutoencoderDemo

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open GroupedNewton
open GroupedNewton.Data

/// The optimizers of the demo by name, with the authors' settings (K-FAC α 1, λ 3; K-BFGS
/// α 0.3, λ 0.3) unless overridden. The first is the reference of the time ratios.
let optimizers (kfacLr: float option) (kfacLambda: float option) (kbfgsLr: float option) : (string * (Model -> Optimizer)) list =
    let kbfgs = { KbfgsOptions.Mlp with LearningRate = defaultArg kbfgsLr 0.3; Lambda = 0.3 }

    [
        "kfac",
        fun m ->
            Kfac.create (Kfac.authorsBaseline (defaultArg kfacLr 1.0) (defaultArg kfacLambda 3.0) KfacSamplers.bernoulliLogits) m
            :> Optimizer
        "kbfgs", fun m -> Kbfgs.create kbfgs m :> Optimizer
        "kbfgs-l", fun m -> Kbfgs.createLimited kbfgs m :> Optimizer
    ]

type private Args = {
    Names: string[]
    Epochs: int
    MaxSteps: int
    Every: int
    Out: string option
    Threads: int
    Eval: bool
    Data: string option
    /// Overrides of K-FAC's α and λ (None: the demo's 1 and 3).
    Lr: float option
    Lambda: float option
    /// K-BFGS: average A over one pass of the training set before the first step (the authors do).
    WarmStart: bool
    /// Override of K-BFGS's and K-BFGS(L)'s α (None: the demo's 0.3).
    KbfgsLr: float option
}

let private parse (argv: string[]) =
    let mutable a = {
        Names = [| "kfac" |]
        Epochs = 1
        MaxSteps = Int32.MaxValue
        Every = 10
        Out = None
        Threads = 1
        Eval = false
        Data = None
        Lr = None
        Lambda = None
        WarmStart = false
        KbfgsLr = None
    }

    let mutable i = 0

    while i < argv.Length do
        let value () =
            if i + 1 >= argv.Length then
                invalidArg "argv" (sprintf "autoencoder-demo: %s needs a value" argv.[i])

            i <- i + 1
            argv.[i]

        match argv.[i] with
        | "--optimizers" -> a <- { a with Names = (value ()).Split(',', StringSplitOptions.RemoveEmptyEntries) }
        | "--epochs" -> a <- { a with Epochs = int (value ()) }
        | "--max-steps" -> a <- { a with MaxSteps = int (value ()) }
        | "--every" -> a <- { a with Every = int (value ()) }
        | "--out" -> a <- { a with Out = Some(value ()) }
        | "--threads" -> a <- { a with Threads = int (value ()) }
        | "--data" -> a <- { a with Data = Some(value ()) }
        | "--eval" -> a <- { a with Eval = true }
        | "--warm-start" -> a <- { a with WarmStart = true }
        | "--kbfgs-lr" -> a <- { a with KbfgsLr = Some(float (value ())) }
        | "--kfac-lr" -> a <- { a with Lr = Some(float (value ())) }
        | "--kfac-lambda" -> a <- { a with Lambda = Some(float (value ())) }
        | other ->
            invalidArg
                "argv"
                (sprintf
                    "autoencoder-demo: unknown argument '%s' (--optimizers, --epochs, --max-steps, --every, --out, --threads, --data, --eval, --warm-start, --kfac-lr, --kfac-lambda, --kbfgs-lr)"
                    other)

        i <- i + 1

    a

let private flat (x: Tensor) = Tensor.view [| x.Shape.[0]; 784 |] x
let private loss (x: Tensor) = fun (out: Tensor) -> Losses.bceWithLogits out x

/// Mean loss over a data set in batches of 1000 (forward passes only).
let private fullLoss (model: Model) (ps: Parameters) (data: Dataset) =
    let options = { Loader.defaults 1000 with Shuffle = false }
    let mutable total, count = 0.0, 0

    for b in Loader.batches options data 0 do
        let x = flat b.Inputs
        total <- total + Tensor.toScalar (loss x (model.Forward(ps, x))) * float b.Size
        count <- count + b.Size

    total / float count

/// `autoencoder-demo [--optimizers kfac,…] [--epochs E] [--max-steps S] [--every N] [--out file.jsonl] [--threads T] [--data folder] [--eval]`
let run (argv: string[]) =
    let a = parse argv
    BackendRegistry.setThreads a.Threads

    let train, test =
        match a.Data with
        | Some folder -> Datasets.fashionMnistFrom folder
        | None -> Datasets.fashionMnist ()

    let writer = a.Out |> Option.map (fun p -> new StreamWriter(p, false))
    // NaN marks a value not measured (full-pass losses without --eval)
    let json =
        JsonSerializerOptions(NumberHandling = Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals)

    let emit (o: obj) =
        let line = JsonSerializer.Serialize(o, json)
        printfn "%s" line

        writer
        |> Option.iter (fun w ->
            w.WriteLine line
            w.Flush())

    let loaderOptions = { Loader.defaults 1000 with Seed = 9999 }
    let epochTimes = Collections.Generic.Dictionary<string, float[]>()

    for name in a.Names do
        let create =
            let known = optimizers a.Lr a.Lambda a.KbfgsLr

            match known |> List.tryFind (fun (n, _) -> n = name) with
            | Some(_, c) -> c
            | None ->
                invalidArg
                    "optimizers"
                    (sprintf "autoencoder-demo: unknown optimizer '%s' (known: %s)" name (String.Join(", ", known |> List.map fst)))

        let model = Models.mnistAutoencoder { Init.pytorch 9999 with Seed = 9999 }
        let opt = create model
        opt.Warning.Add(fun w -> eprintfn "warning: %s" w)

        match opt with
        | :? KbfgsOptimizer as k when a.WarmStart ->
            let sw = Stopwatch.StartNew()
            k.WarmStart(model, Loader.batches loaderOptions train 0 |> Seq.map (fun b -> flat b.Inputs))
            emit {| kind = "warm-start"; optimizer = name; seconds = sw.Elapsed.TotalSeconds |}
        | _ -> ()

        let times = ResizeArray<float>()
        let mutable step = 0
        let mutable epoch = 0
        let mutable diverged = false
        let total = Stopwatch.StartNew()

        while epoch < a.Epochs && step < a.MaxSteps && not diverged do
            epoch <- epoch + 1
            let sw = Stopwatch.StartNew()
            let mutable sum, count = 0.0, 0
            use batches = (Loader.batches loaderOptions train (epoch - 1)).GetEnumerator()

            while step < a.MaxSteps && not diverged && batches.MoveNext() do
                let b = batches.Current
                let x = flat b.Inputs

                try
                    let l = opt.StepOn(model, x, loss x)
                    step <- step + 1
                    sum <- sum + l
                    count <- count + 1

                    if a.Every > 0 && step % a.Every = 0 then
                        emit {|
                            kind = "step"
                            optimizer = name
                            epoch = epoch
                            step = step
                            train_loss = l
                            elapsed_s = total.Elapsed.TotalSeconds
                        |}
                with :? OptimizationException as e ->
                    // a diverged run is a result too: record it and stop this optimizer
                    emit {| kind = "diverged"; optimizer = name; epoch = epoch; step = step + 1; message = e.Message |}
                    diverged <- true

            let seconds = sw.Elapsed.TotalSeconds
            let complete = count = Loader.batchCount loaderOptions train
            times.Add seconds

            let trainFull, testFull =
                if a.Eval then fullLoss model opt.Parameters train, fullLoss model opt.Parameters test else nan, nan

            emit {|
                kind = "epoch"
                optimizer = name
                epoch = epoch
                steps = count
                complete_epoch = complete
                mean_train_loss = sum / float count
                train_loss = trainFull
                test_loss = testFull
                epoch_time_s = seconds
                step_time_s = seconds / float count
            |}

        epochTimes.[name] <- times.ToArray()

        match opt with
        | :? KfacOptimizer as k ->
            let d = k.Diagnostics

            emit {|
                kind = "diagnostics"
                optimizer = name
                steps = d.Steps
                inversions = d.Inversions
                inversion_retries = d.InversionRetries
                failed_inversions = d.FailedInversions
                fallback_parameters = d.FallbackParameters.Length
            |}
        | _ -> ()
    // per-epoch time of each optimizer relative to the first
    match a.Names |> Array.tryHead with
    | Some first when a.Names.Length > 1 ->
        let reference = Timing.median epochTimes.[first]

        for name in a.Names.[1..] do
            let t = Timing.median epochTimes.[name]

            emit {|
                kind = "ratio"
                optimizer = name
                reference = first
                median_epoch_time_s = t
                reference_median_epoch_time_s = reference
                ratio = t / reference
            |}
    | _ -> ()

    writer |> Option.iter (fun w -> w.Dispose())
    0
