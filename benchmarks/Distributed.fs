/// Data-parallel speed (docs/distributed.md): Fashion-MNIST, the MLP 784-1024-200-100-10,
/// SGD with momentum and GroupedNewton-avg, steps per second at global batch 100 and 200 for
/// 1 rank × 1 thread, 1 rank × 2 threads and 2 ranks × 1 thread (under mpiexec.mpich), with
/// the time spent in all-reduce and the bytes each rank sends per step. The configurations
/// run in turn, round after round, each in a fresh process; the medians over the rounds are
/// reported beside the machine's load. `distributed-allreduce` measures the all-reduce
/// bandwidth of MPI's built-in sum on 1M float64 and 1M float32.
module GroupedNewton.Benchmarks.Distributed

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open GroupedNewton
open GroupedNewton.Data

let private optimizerOf (name: string) (model: Model) (train: Dataset) (batch: int) : Optimizer =
    let ps = model.Parameters

    match name with
    | "sgd-m" -> Sgd.create { SgdOptions.Defaults with LearningRate = 0.01; Momentum = 0.9 } ps :> Optimizer
    | "gn-avg" ->
        // the CLI's curvature stream: an unshuffled cycle over the training set, each rank
        // taking its rows of every curvature batch
        let loader = { BatchSize = batch; Shuffle = false; Seed = 0; DropLast = false; Dtype = Dtype.Float32 }
        let count = (train.Count + batch - 1) / batch
        let mutable k = 0

        let next () =
            let start = (k % count) * batch
            k <- k + 1
            let b = Loader.batch loader train (Array.init (min batch (train.Count - start)) (fun i -> start + i))
            let local, share = Distributed.shardBatch b
            fun (q: Parameters) -> share * Losses.crossEntropy (model.Forward(q, local.Inputs)) local.Labels.Value

        GroupedNewtonOptimizer.create GroupedNewtonOptions.Paper 0.9 (Partition.canonical ps) next ps :> Optimizer
    | other -> failwithf "distributed: unknown optimizer '%s' (sgd-m | gn-avg)" other

/// One configuration, in this process (started alone or by mpiexec): prints one JSON line
/// on rank 0.
let worker (args: string[]) =
    let name, batch, steps, threads = args.[0], int args.[1], int args.[2], int args.[3]
    Distributed.start ()
    BackendRegistry.setThreads threads
    let train, _ = Datasets.fashionMnist ()
    let model = Models.mlpOn [| 1; 28; 28 |] [ 784; 1024; 200; 100; 10 ] Activation.Tanh (Init.pytorch 0)
    let opt = optimizerOf name model train batch
    let loader = { BatchSize = batch; Shuffle = true; Seed = 0; DropLast = false; Dtype = Dtype.Float32 }
    let warm = 100
    use e = (Loader.batches loader train 0).GetEnumerator()

    let step () =
        e.MoveNext() |> ignore
        let input, loss = DataParallel.stepShard Objective.Classification e.Current
        opt.StepOn(model, input, loss) |> ignore

    for _ in 1..warm do
        step ()

    Distributed.barrier ()
    Distributed.resetStatistics ()
    let sw = Stopwatch.StartNew()

    for _ in 1..steps do
        step ()

    let seconds = sw.Elapsed.TotalSeconds
    let s = Distributed.statistics ()

    if Distributed.isRoot () then
        printfn
            "%s"
            (JsonSerializer.Serialize {|
                optimizer = name
                batch = batch
                ranks = Distributed.size ()
                threads = threads
                steps = steps
                steps_per_s = float steps / seconds
                allreduce_ms_per_step = 1000.0 * s.Seconds / float steps
                bytes_per_step = float s.Bytes / float steps
                calls_per_step = float s.Calls / float steps
            |})

    Distributed.finish ()
    0

/// All-reduce bandwidth: 1M float64 and 1M float32 summed `reps` times over the ranks.
let allReduceWorker (_: string[]) =
    Distributed.start ()

    for label, bytesPer, run in
        [
            "float64", 8, (fun (n: int) -> let a = Array.create n 1.0 in (fun () -> Distributed.allReduceSum a))
            "float32", 4, (fun (n: int) -> let a = Array.create n 1.0f in (fun () -> Distributed.allReduceSum32 a))
        ] do
        let n = 1 <<< 20
        let f = run n
        f ()
        Distributed.barrier ()
        let reps = 10
        let sw = Stopwatch.StartNew()

        for _ in 1..reps do
            f ()

        let s = sw.Elapsed.TotalSeconds

        if Distributed.isRoot () then
            printfn
                "all-reduce of 1M %s on %d ranks: %.2f ms each, %.0f MB/s of buffer summed"
                label
                (Distributed.size ())
                (1000.0 * s / float reps)
                (float (n * bytesPer) * float reps / s / 1e6)

    Distributed.finish ()
    0

let private loadAverage () =
    try
        (File.ReadAllText "/proc/loadavg").Split(' ').[0]
    with _ ->
        "?"

let private launch (ranks: int) (args: string list) =
    let self = Reflection.Assembly.GetExecutingAssembly().Location

    let file, argv =
        if ranks = 1 then
            "dotnet", self :: args
        else
            "mpiexec.mpich", [ "-n"; string ranks; "dotnet"; self ] @ args

    let psi = ProcessStartInfo(file, argv, RedirectStandardOutput = true, UseShellExecute = false)

    use p =
        match Process.Start psi with
        | null -> failwithf "distributed: could not start %s" file
        | p -> p

    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()

    if p.ExitCode <> 0 then
        failwithf "distributed: %s %s exited with %d:\n%s" file (String.Join(" ", argv)) p.ExitCode out

    out

/// The driver: `distributed [rounds] [steps]`.
let run (args: string[]) =
    let rounds = if args.Length > 0 then int args.[0] else 3
    let steps = if args.Length > 1 then int args.[1] else 100

    if not (Datasets.isAvailable "fashion-mnist") then
        eprintfn "Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (or set GROUPEDNEWTON_DATA)"
        2
    else
        printfn "%s" (Anchor.blasNote ())
        printfn "load average before: %s (%d cores)" (loadAverage ()) Environment.ProcessorCount
        printf "%s" (launch 2 [ "distributed-allreduce" ])

        let configs = [
            for o in [ "sgd-m"; "gn-avg" ] do
                for b in [ 100; 200 ] do
                    for r, t in [ 1, 1; 1, 2; 2, 1 ] -> o, b, r, t
        ]

        let results = Collections.Generic.Dictionary<string * int * int * int, ResizeArray<JsonElement>>()
        let loads = ResizeArray<string>()

        for round in 1..rounds do
            for (o, b, r, t) as c in configs do
                let line = launch r [ "distributed-worker"; o; string b; string steps; string t ]
                let json = JsonDocument.Parse(line.Trim().Split('\n') |> Array.last).RootElement.Clone()

                if not (results.ContainsKey c) then
                    results.[c] <- ResizeArray()

                results.[c].Add json

            loads.Add(loadAverage ())
            printfn "round %d/%d done, load average %s" round rounds loads.[loads.Count - 1]

        let med (c: string * int * int * int) (field: string) =
            Timing.median (results.[c] |> Seq.map (fun j -> j.GetProperty(field).GetDouble()))

        printfn ""
        printfn "| optimizer | global batch | ranks × threads | steps/s | all-reduce ms/step | bytes sent/step/rank | collectives/step |"
        printfn "|---|---|---|---|---|---|---|"

        for (o, b, r, t) as c in configs do
            printfn
                "| %s | %d | %d × %d | %.2f | %.2f | %.0f | %.1f |"
                o
                b
                r
                t
                (med c "steps_per_s")
                (med c "allreduce_ms_per_step")
                (med c "bytes_per_step")
                (med c "calls_per_step")

        printfn ""

        for o in [ "sgd-m"; "gn-avg" ] do
            for b in [ 100; 200 ] do
                let one = med (o, b, 1, 1) "steps_per_s"
                let two = med (o, b, 2, 1) "steps_per_s"
                let threads = med (o, b, 1, 2) "steps_per_s"

                printfn
                    "%s batch %d: 2 ranks × 1 thread / (2 × 1 rank × 1 thread) = %.2f; 2 ranks / 1 rank × 2 threads = %.2f%s"
                    o
                    b
                    (two / (2.0 * one))
                    (two / threads)
                    (if b = 200 then
                         (if two / (2.0 * one) >= 0.8 then "  (goal >= 0.8: met)" else "  (goal >= 0.8: NOT met)")
                     else
                         "")

        printfn "load average after each round: %s" (String.Join(", ", loads))
        0

/// `distributed [rounds] [steps]`, and the two modes it starts.
let dispatch (argv: string[]) =
    match argv.[0] with
    | "distributed-worker" -> worker argv.[1..]
    | "distributed-allreduce" -> allReduceWorker argv.[1..]
    | _ -> run argv.[1..]
