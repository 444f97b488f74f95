/// GpuRunner: `GpuRunner --device cpu|cuda:N --out DIR [--quick] [--python PY] [--script FILE]
/// [--models mlp,vgg11] [--reps N] [--mlp-batch N] [--vgg-batch N] [--skip-conformance]
/// [--skip-timing]`. Runs the torch backend's conformance cases on the device, times this
/// library and PyTorch side by side there, and writes DIR/report.json. Exit status: 0 when
/// every conformance case passed, 1 when one failed, 2 on bad arguments, 3 when the torch
/// backend (shim, libtorch or the device) is unavailable.
module GroupedNewton.GpuRunner.Program

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text.Json
open GroupedNewton
open GroupedNewton.Backends.Torch
open GroupedNewton.GpuRunner.Json

type Args = {
    Device: string
    Out: string
    Quick: bool
    Python: string
    Script: string
    Models: string[]
    Reps: int option
    MlpBatch: int option
    VggBatch: int option
    Conformance: bool
    Timing: bool
}

let private usage =
    "usage: GpuRunner --device cpu|cuda:N --out DIR [--quick] [--python PY] [--script pytorch_side.py] [--models mlp,vgg11] [--reps N] [--mlp-batch N] [--vgg-batch N] [--skip-conformance] [--skip-timing]"

let parse (argv: string[]) =
    let rec go (a: Args) (rest: string list) =
        match rest with
        | [] -> a
        | "--device" :: v :: r -> go { a with Device = v } r
        | "--out" :: v :: r -> go { a with Out = v } r
        | "--quick" :: r -> go { a with Quick = true } r
        | "--python" :: v :: r -> go { a with Python = v } r
        | "--script" :: v :: r -> go { a with Script = v } r
        | "--models" :: v :: r -> go { a with Models = v.Split(',', StringSplitOptions.RemoveEmptyEntries) } r
        | "--reps" :: v :: r -> go { a with Reps = Some(int v) } r
        | "--mlp-batch" :: v :: r -> go { a with MlpBatch = Some(int v) } r
        | "--vgg-batch" :: v :: r -> go { a with VggBatch = Some(int v) } r
        | "--skip-conformance" :: r -> go { a with Conformance = false } r
        | "--skip-timing" :: r -> go { a with Timing = false } r
        | x :: _ -> failwithf "unknown or incomplete option '%s'; %s" x usage

    go
        {
            Device = "cpu"
            Out = "gpu-report"
            Quick = false
            Python = "python3"
            Script = Path.Combine("benchmarks", "gpu", "pytorch_side.py")
            Models = [| "mlp"; "vgg11" |]
            Reps = None
            MlpBatch = None
            VggBatch = None
            Conformance = true
            Timing = true
        }
        (List.ofArray argv)

let private ratio (a: float) (b: float) = if b > 0.0 then Num(a / b) else Null

let private number (e: JsonElement) (name: string) =
    match e.TryGetProperty name with
    | true, v when v.ValueKind = JsonValueKind.Number -> v.GetDouble()
    | _ -> nan

let timing (a: Args) (backend: TorchBackend) =
    // --quick: a smoke run of the whole pipeline (few calls, a short GroupedNewton-avg
    // period, a small VGG batch), its figures not comparable with a full run's
    let plan: Timings.Plan =
        if a.Quick then
            { Reps = defaultArg a.Reps 1; Warm = 0; GnPeriod = 5; GnWarmup = 1 }
        else
            { Reps = defaultArg a.Reps 7; Warm = 2; GnPeriod = 10; GnWarmup = 3 }

    let mlpBatch = defaultArg a.MlpBatch 100
    let vggBatch = defaultArg a.VggBatch (if a.Quick then 2 else 128)
    let batchOf m = if m = "mlp" then mlpBatch else vggBatch
    let threads = TorchBackend.Threads

    let ours = [
        for m in a.Models do
            let sw = Stopwatch.StartNew()
            let r = Timings.measure backend m (batchOf m) plan

            eprintfn
                "ours   %-6s batch %3d: summary %9.2f ms (%d passes), SGD step %8.2f ms, GN-avg step %8.2f ms (%.0f s)"
                m
                r.Batch
                r.SummaryMs
                r.ReversePasses
                r.SgdStepMs
                r.GnAvgStepMs
                sw.Elapsed.TotalSeconds

            yield r
    ]

    let device =
        match backend.Device with
        | TorchDevice.Cpu -> "cpu"
        | TorchDevice.Cuda i -> sprintf "cuda:%d" i

    let pyArgs =
        sprintf
            "--device %s --models %s --reps %d --warm %d --mlp-batch %d --vgg-batch %d --gn-period %d --gn-warmup %d --threads %d"
            device
            (String.Join(",", a.Models))
            plan.Reps
            plan.Warm
            mlpBatch
            vggBatch
            plan.GnPeriod
            plan.GnWarmup
            threads

    let sw = Stopwatch.StartNew()
    let py = PyTorchSide.run a.Python a.Script pyArgs threads
    eprintfn "PyTorch side: %.0f s" sw.Elapsed.TotalSeconds

    let pyModels, pyEnv, pyError =
        match py with
        | Ok lines ->
            let env =
                lines
                |> List.tryPick (fun e ->
                    match e.TryGetProperty "environment" with
                    | true, v -> Some(ofElement v)
                    | _ -> None)

            let models = lines |> List.filter (fun e -> fst (e.TryGetProperty "model"))
            models, defaultArg env Null, Null
        | Error why ->
            eprintfn "PyTorch side unavailable: %s" why
            [], Null, Str why

    let rows = [
        for r in ours do
            let p = pyModels |> List.tryFind (fun e -> e.GetProperty("model").GetString() = r.Model)

            let pt name =
                match p with
                | Some e -> number e name
                | None -> nan

            if p.IsSome then
                eprintfn
                    "ratio  %-6s: summary %.2f, SGD step %.2f, GN-avg step %.2f (ours / PyTorch)"
                    r.Model
                    (r.SummaryMs / pt "summary_ms")
                    (r.SgdStepMs / pt "sgd_step_ms")
                    (r.GnAvgStepMs / pt "gn_avg_step_ms")

            yield
                Obj [
                    "model", Str r.Model
                    "batch", Int(int64 r.Batch)
                    "S", Int(int64 r.S)
                    "ours",
                    Obj [
                        "summary_ms", Num r.SummaryMs
                        "reverse_passes", Int(int64 r.ReversePasses)
                        "sgd_step_ms", Num r.SgdStepMs
                        "gn_avg_step_ms", Num r.GnAvgStepMs
                        "gn_avg_error",
                        (match r.GnAvgError with
                         | Some e -> Str e
                         | None -> Null)
                    ]
                    "pytorch",
                    (match p with
                     | Some e -> ofElement e
                     | None -> Null)
                    "ratio_ours_over_pytorch",
                    (match p with
                     | Some _ ->
                         Obj [
                             "summary", ratio r.SummaryMs (pt "summary_ms")
                             "sgd_step", ratio r.SgdStepMs (pt "sgd_step_ms")
                             "gn_avg_step", ratio r.GnAvgStepMs (pt "gn_avg_step_ms")
                         ]
                     | None -> Null)
                ]
    ]

    Obj [
        "plan",
        Obj [
            "reps", Int(int64 plan.Reps)
            "warm", Int(int64 plan.Warm)
            "gn_period", Int(int64 plan.GnPeriod)
            "gn_warmup", Int(int64 plan.GnWarmup)
            "dtype", Str "float32"
            "threads", Int(int64 threads)
        ]
        "pytorch_environment", pyEnv
        "pytorch_error", pyError
        "models", Arr rows
    ]

let write (dir: string) (report: Json) =
    Directory.CreateDirectory dir |> ignore
    let path = Path.Combine(dir, "report.json")
    File.WriteAllText(path, render report)
    eprintfn "wrote %s" path

[<EntryPoint>]
let main argv =
    let total = Stopwatch.StartNew()

    match
        (try
            Ok(parse argv)
         with e ->
             Error e.Message)
    with
    | Error msg ->
        eprintfn "%s" msg
        2
    | Ok a ->
        let header = [
            "device", Str a.Device
            "quick", Bool a.Quick
            "runner",
            Obj [
                "dotnet", Str RuntimeInformation.FrameworkDescription
                "os", Str RuntimeInformation.OSDescription
                "processors", Int(int64 Environment.ProcessorCount)
                "started_utc", Str(DateTime.UtcNow.ToString("o"))
            ]
        ]

        let backend =
            try
                Ok(TorchBackend.Get a.Device)
            with e ->
                Error e.Message

        match backend with
        | Error why ->
            eprintfn "torch backend unavailable on %s: %s" a.Device why
            write a.Out (Obj(header @ [ "unavailable", Str why ]))
            3
        | Ok backend ->
            eprintfn "backend %s, libtorch %s, %d thread(s)" backend.Name TorchBackend.TorchVersion TorchBackend.Threads

            let outcomes =
                if a.Conformance then
                    let sw = Stopwatch.StartNew()
                    let o = ConformanceRun.run backend (eprintfn "%s")

                    eprintfn
                        "conformance on %s: %d of %d cases passed (%.0f s)"
                        backend.Name
                        (o |> List.filter (fun x -> x.Passed) |> List.length)
                        o.Length
                        sw.Elapsed.TotalSeconds

                    Some o
                else
                    None

            let timings = if a.Timing then timing a backend else Null

            let failed =
                match outcomes with
                | Some o -> o |> List.exists (fun x -> not x.Passed)
                | None -> false

            write
                a.Out
                (Obj(
                    header
                    @ [
                        "backend", Str backend.Name
                        "libtorch", Str TorchBackend.TorchVersion
                        "conformance",
                        (match outcomes with
                         | Some o -> ConformanceRun.toJson o
                         | None -> Null)
                        "timing", timings
                        "seconds", Num total.Elapsed.TotalSeconds
                    ]
                ))

            if failed then 1 else 0
