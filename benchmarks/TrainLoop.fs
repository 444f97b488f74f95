/// The training loop a user runs, side by side with the same loop in PyTorch: Fashion-MNIST
/// (60k, float32, batch 100), the MLP 784-1024-200-100-10 (tanh) or LeNet-5 on 1×28×28,
/// through the core `Trainer` with a real `Loader`, for SGD-momentum and GroupedNewton-avg
/// (the paper's final-run procedure), optionally K-FAC, K-BFGS and SOFIM (ours only).
///
/// Every measurement is a fresh child process (ours: this program's `train-loop-child`;
/// PyTorch: anchors/train_loop_anchor.py), so each has its own page-fault count and peak
/// memory; rounds run the configurations interleaved. Both loops visit the batches in the
/// order of our loader's epoch-0 permutation. Our child runs under the repository's GC
/// settings ("tuned") and, with `--hosts tuned,fsi,console`, under the defaults of
/// `dotnet fsi` (server GC) and of a plain console app (workstation, concurrent), set
/// through the runtime's DOTNET_ environment variables, which take precedence over the
/// runtimeconfig.json written from Directory.Build.targets.
module GroupedNewton.Benchmarks.TrainLoop

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Threading
open GroupedNewton
open GroupedNewton.Data

/// Minor page faults of this process so far (field 10 of /proc/self/stat).
let minorFaults () =
    try
        let s = File.ReadAllText "/proc/self/stat"
        // the command name (field 2) is parenthesised and may hold spaces
        let rest = s.Substring(s.LastIndexOf ')' + 2).Split(' ')
        int64 rest.[7]
    with _ ->
        -1L

/// The peak resident set of this process in MiB (VmHWM).
let peakMib () =
    try
        File.ReadAllLines "/proc/self/status"
        |> Array.tryFind (fun l -> l.StartsWith "VmHWM:")
        |> Option.map (fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024.0)
        |> Option.defaultValue nan
    with _ ->
        nan

let private model (name: string) =
    match name with
    | "mlp" -> Models.mlpOn [| 1; 28; 28 |] [ 784; 1024; 200; 100; 10 ] Activation.Tanh (Init.pytorch 0)
    | "lenet" -> Models.lenet5 1 28 (Init.pytorch 0)
    | other -> invalidArg "model" (sprintf "unknown model '%s' (mlp, lenet)" other)

/// The curvature batches of GroupedNewton: an unshuffled cycle over the training set.
let private curvatureStream (m: Model) (data: Dataset) =
    let options = { Loader.defaults 100 with Shuffle = false }
    let count = (data.Count + 99) / 100
    let mutable k = 0

    fun () ->
        let start = (k % count) * 100
        k <- k + 1
        let b = Loader.batch options data (Array.init (min 100 (data.Count - start)) (fun i -> start + i))
        fun (ps: Parameters) -> Losses.crossEntropy (m.Forward(ps, b.Inputs)) b.Labels.Value

let private optimizer (algo: string) (m: Model) (data: Dataset) : Optimizer =
    let ps = m.Parameters

    match algo with
    | "sgd" -> Sgd.create { SgdOptions.Defaults with LearningRate = 0.01; Momentum = 0.9 } ps
    | "gn-avg" ->
        // the paper's MLP damping for both models: its CNN damping (.3) makes LeNet-5's loss
        // diverge within the first hundred Fashion-MNIST steps, here and in PyTorch alike
        let options = { GroupedNewtonOptions.Paper with Damping = 0.03 }
        GroupedNewtonOptimizer.create options 0.9 (Partition.canonical ps) (curvatureStream m data) ps
    | "kfac" -> Kfac.create KfacOptions.Defaults m
    | "kbfgs" -> Kbfgs.create (if m.Name.StartsWith "mlp" then KbfgsOptions.Mlp else KbfgsOptions.Cnn) m
    | "sofim" -> Sofim.create SofimOptions.Defaults ps
    | other -> invalidArg "algo" (sprintf "unknown algorithm '%s' (sgd, gn-avg, kfac, kbfgs, sofim)" other)

/// `train-loop-child model algo threads warm steps`: runs warm + steps steps of the core
/// Trainer and prints one JSON line with the per-step times of the last `steps`.
let child (args: string[]) =
    let name, algo, threads, warm, steps = args.[0], args.[1], int args.[2], int args.[3], int args.[4]
    BackendRegistry.setThreads threads
    let train, _ = Datasets.fashionMnist ()
    let m = model name
    let opt = optimizer algo m train
    let total = warm + steps

    if total > Loader.batchCount (Loader.defaults 100) train then
        invalidArg "steps" (sprintf "train-loop: %d warm-up and %d timed steps exceed one epoch" warm steps)

    let stamps = Array.zeroCreate<int64>(total + 1)
    let losses = ResizeArray<float>()
    let mutable faults0 = 0L
    let mutable gcs0 = [||]
    let mutable pause0 = TimeSpan.Zero
    let mutable alloc0 = 0L
    let mutable cpu0 = TimeSpan.Zero
    let mutable pool0 = Backends.Managed.StoragePool.statistics ()
    use cancel = new CancellationTokenSource()
    let options = { TrainerOptions.Defaults with Epochs = 1; BatchSize = 100; Seed = 0 }
    let data = { Train = train; Validation = None; Test = None }

    let onEvent ev =
        match ev with
        | StepCompleted(_, k, loss) ->
            stamps.[k] <- Stopwatch.GetTimestamp()

            if k > warm then
                losses.Add loss

            if k = warm then
                faults0 <- minorFaults ()
                gcs0 <- Array.init 3 GC.CollectionCount
                pause0 <- GC.GetTotalPauseDuration()
                alloc0 <- GC.GetTotalAllocatedBytes false
                cpu0 <- Process.GetCurrentProcess().TotalProcessorTime
                pool0 <- Backends.Managed.StoragePool.statistics ()

            if k = total then
                cancel.Cancel()
        | _ -> ()

    stamps.[0] <- Stopwatch.GetTimestamp()
    Trainer.run m opt options data 0 onEvent cancel.Token |> ignore
    let faults = minorFaults ()
    let cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0
    let pool = Backends.Managed.StoragePool.statistics ()

    let ms =
        Array.init steps (fun i -> float (stamps.[warm + i + 1] - stamps.[warm + i]) * 1000.0 / float Stopwatch.Frequency)

    let gcs = Array.init 3 (fun g -> GC.CollectionCount g - gcs0.[g])
    // where a 100 KB array lands tells whether the LOH threshold is the default one
    let probe = Array.zeroCreate<float32> 25_000

    let host = {|
        server = Runtime.GCSettings.IsServerGC
        concurrent = Runtime.GCSettings.LatencyMode <> Runtime.GCLatencyMode.Batch
        probe_100k_generation = GC.GetGeneration probe
    |}

    printfn
        "%s"
        (JsonSerializer.Serialize {|
            side = "ours"
            model = name
            algo = algo
            threads = threads
            steps_ms = ms
            warm_ms_per_step = float (stamps.[warm] - stamps.[0]) * 1000.0 / float Stopwatch.Frequency / float (max 1 warm)
            cpu_ms_per_step = cpu.TotalMilliseconds / float steps
            minflt_per_step = float (faults - faults0) / float steps
            peak_mib = peakMib ()
            gc_per_step = {|
                gen0 = float gcs.[0] / float steps
                gen1 = float gcs.[1] / float steps
                gen2 = float gcs.[2] / float steps
                pause_ms = (GC.GetTotalPauseDuration() - pause0).TotalMilliseconds / float steps
                alloc_mb = float (GC.GetTotalAllocatedBytes false - alloc0) / 1e6 / float steps
            |}
            pool_per_step = {|
                recycled = float (pool.Recycled - pool0.Recycled) / float steps
                fresh = float (pool.Fresh - pool0.Fresh) / float steps
                collections = float (pool.Collections - pool0.Collections) / float steps
                collection_ms = (pool.CollectionMs - pool0.CollectionMs) / float steps
            |}
            host = host
            mean_loss = Seq.average losses
            blas = Anchor.blasNote ()
        |})

    0

/// Environment of our child per host: the runtime reads these before runtimeconfig.json.
let private hostEnvironment (host: string) =
    let defaults = [
        "DOTNET_GCgen0size", "0"
        "DOTNET_GCLOHThreshold", "14C08"
        "DOTNET_GCRetainVM", "0"
        "DOTNET_GCConserveMemory", "0"
    ]

    match host with
    | "tuned" -> []
    | "fsi" -> ("DOTNET_gcServer", "1") :: ("DOTNET_gcConcurrent", "1") :: defaults
    | "console" -> ("DOTNET_gcServer", "0") :: ("DOTNET_gcConcurrent", "1") :: defaults
    | other -> invalidArg "hosts" (sprintf "unknown host '%s' (tuned, fsi, console)" other)

let private runChild (file: string) (args: string) (env: (string * string) list) (threads: int) : JsonElement =
    let psi = ProcessStartInfo(file, args)

    for k, v in env do
        psi.Environment.[k] <- v

    for var in [ "OPENBLAS_NUM_THREADS"; "OMP_NUM_THREADS"; "MKL_NUM_THREADS" ] do
        if String.IsNullOrEmpty(Environment.GetEnvironmentVariable var) then
            psi.Environment.[var] <- string threads

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true

    use p =
        match Process.Start psi with
        | null -> failwithf "could not start %s" file
        | p -> p

    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()

    if p.ExitCode <> 0 then
        failwithf "%s %s failed (exit %d): %s" file args p.ExitCode err.Result

    let line = out.Split('\n') |> Array.findBack (fun l -> l.StartsWith "{")
    JsonDocument.Parse(line).RootElement.Clone()

/// Mean of the per-step times (whole GroupedNewton periods: one summary per 10 steps).
let private meanStep (o: JsonElement) = o.GetProperty("steps_ms").EnumerateArray() |> Seq.map (fun v -> v.GetDouble()) |> Seq.average

let private allSteps (os: JsonElement seq) =
    os
    |> Seq.collect (fun o -> o.GetProperty("steps_ms").EnumerateArray() |> Seq.map (fun v -> v.GetDouble()))

let private field (name: string) (os: JsonElement seq) = os |> Seq.map (fun o -> o.GetProperty(name).GetDouble()) |> Timing.median

/// NaN (no PyTorch figure for an algorithm) is written as "NaN".
let private json =
    JsonSerializerOptions(NumberHandling = Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals)

let private load () =
    try
        File.ReadAllText("/proc/loadavg").Split(' ').[0] |> float
    with _ ->
        nan

let run (args: string[]) =
    let option name (fallback: string) =
        match Array.tryFindIndex ((=) name) args with
        | Some i when i + 1 < args.Length -> args.[i + 1].Split(',')
        | _ -> fallback.Split(',')

    let models = option "--models" "mlp,lenet"
    let threads = option "--threads" "1,2" |> Array.map int
    let algos = option "--algos" "sgd,gn-avg"
    let hosts = option "--hosts" "tuned"
    let rounds = option "--rounds" "3" |> Array.head |> int
    let steps = option "--steps" "100" |> Array.head |> int
    // the managed code reaches its steady speed only after the runtime has recompiled the hot
    // methods (tiered compilation; later with two threads): about 150 steps here
    let warm = option "--warm" "200" |> Array.head |> int

    if not (Datasets.isAvailable "fashion-mnist") then
        eprintfn "Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (or set GROUPEDNEWTON_DATA)"
        2
    else
        let folder = Datasets.locate "fashion-mnist"
        let train, _ = Datasets.fashionMnist ()
        // the batch order of our Trainer's first epoch, for the PyTorch loop
        let orderFile =
            Path.Combine(Path.GetTempPath(), sprintf "train-loop-order-%d.bin" Environment.ProcessId)

        let order = Loader.order { Loader.defaults 100 with Seed = 0 } train 0
        File.WriteAllBytes(orderFile, order |> Array.collect BitConverter.GetBytes)
        let script = Path.Combine(AppContext.BaseDirectory, "anchors", "train_loop_anchor.py")
        let self = Environment.ProcessPath |> Option.ofObj |> Option.defaultValue "dotnet"

        let selfArgs =
            if self.EndsWith "dotnet" then
                sprintf "\"%s\" " (Reflection.Assembly.GetExecutingAssembly().Location)
            else
                ""

        let hasTorch = File.Exists "/usr/bin/python3" && File.Exists script

        printfn
            "train-loop: Fashion-MNIST, batch 100, float32; %s; %d rounds of %d steps after %d warm-up steps"
            (Anchor.blasNote ())
            rounds
            steps
            warm

        let configs = [
            for m in models do
                for a in algos do
                    for t in threads -> m, a, t
        ]

        let ours = Collections.Generic.Dictionary<string, ResizeArray<JsonElement>>()

        let add key o =
            (match ours.TryGetValue key with
             | true, l -> l
             | _ ->
                 (let l = ResizeArray() in
                  ours.[key] <- l
                  l))
                .Add
                o

        let loads = ResizeArray<float>()

        try
            for r in 1..rounds do
                for m, a, t in configs do
                    loads.Add(load ())

                    for h in hosts do
                        add
                            (sprintf "%s|%s|%d|%s" m a t h)
                            (runChild self (sprintf "%strain-loop-child %s %s %d %d %d" selfArgs m a t warm steps) (hostEnvironment h) t)

                    if hasTorch && (a = "sgd" || a = "gn-avg") then
                        add
                            (sprintf "%s|%s|%d|pytorch" m a t)
                            (runChild
                                "/usr/bin/python3"
                                (sprintf
                                    "\"%s\" --model %s --algo %s --threads %d --warm %d --steps %d --data \"%s\" --order \"%s\""
                                    script
                                    m
                                    a
                                    t
                                    warm
                                    steps
                                    folder
                                    orderFile)
                                []
                                t)

                eprintfn "round %d of %d done (load %.2f)" r rounds (load ())
        finally
            File.Delete orderFile

        let summary (os: ResizeArray<JsonElement>) =
            let means = os |> Seq.map meanStep |> Timing.median
            means, Timing.median (allSteps os), field "minflt_per_step" os, field "peak_mib" os

        let cpu (os: ResizeArray<JsonElement> option) = os |> Option.map (field "cpu_ms_per_step") |> Option.defaultValue nan

        let find key =
            match ours.TryGetValue key with
            | true, l -> Some l
            | _ -> None

        for m, a, t in configs do
            let key h = sprintf "%s|%s|%d|%s" m a t h

            let theirs =
                match ours.TryGetValue(key "pytorch") with
                | true, l -> Some(summary l)
                | _ -> None

            let sgdTuned =
                match ours.TryGetValue(sprintf "%s|sgd|%d|tuned" m t) with
                | true, l -> Some(summary l)
                | _ -> None

            for h in hosts do
                let mean, med, faults, peak = summary ours.[key h]
                let tuned, _, _, _ = summary ours.[key "tuned"]
                let pm, pmed, pf, pp = defaultArg theirs (nan, nan, nan, nan)
                let sgdMean = sgdTuned |> Option.map (fun (x, _, _, _) -> x) |> Option.defaultValue nan
                let oc, pc = cpu (find (key h)), cpu (find (key "pytorch"))
                let warmMs = field "warm_ms_per_step" ours.[key h]

                printfn
                    "%-5s %-6s %d thr %-7s: step %.2f ms (median %.2f) vs PyTorch %.2f ms (median %.2f): ratio %.2f; vs our SGD %.2f; vs tuned %.2f; CPU %.2f vs %.2f ms/step (ratio %.2f); minflt/step %.0f vs %.0f; peak %.0f vs %.0f MiB; our warm-up steps %.1f ms"
                    m
                    a
                    t
                    h
                    mean
                    med
                    pm
                    pmed
                    (mean / pm)
                    (mean / sgdMean)
                    (mean / tuned)
                    oc
                    pc
                    (oc / pc)
                    faults
                    pf
                    peak
                    pp
                    warmMs

                printfn
                    "%s"
                    (JsonSerializer.Serialize(
                        {|
                            bench = "train-loop"
                            model = m
                            algo = a
                            threads = t
                            host = h
                            step_ms = mean
                            median_step_ms = med
                            pytorch_step_ms = pm
                            pytorch_median_step_ms = pmed
                            ratio = mean / pm
                            over_our_sgd = mean / sgdMean
                            over_tuned = mean / tuned
                            cpu_ms_per_step = oc
                            pytorch_cpu_ms_per_step = pc
                            cpu_ratio = oc / pc
                            minflt_per_step = faults
                            pytorch_minflt_per_step = pf
                            peak_mib = peak
                            pytorch_peak_mib = pp
                            warm_ms_per_step = warmMs
                            rounds = rounds
                            steps = steps
                            load = Timing.median loads
                        |},
                        json
                    ))
        // 2 threads against 1, per model and algorithm, from the tuned figures
        for m in models do
            for a in algos do
                match ours.TryGetValue(sprintf "%s|%s|1|tuned" m a), ours.TryGetValue(sprintf "%s|%s|2|tuned" m a) with
                | (true, one), (true, two) ->
                    let s1, _, _, _ = summary one
                    let s2, _, _, _ = summary two

                    printfn
                        "%s"
                        (JsonSerializer.Serialize({| bench = "train-loop-scaling"; model = m; algo = a; speedup_2_over_1 = s1 / s2 |}, json))
                | _ -> ()

        0
