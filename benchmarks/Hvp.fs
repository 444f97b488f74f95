/// Hessian-vector product of the reference MLP (784-1024-200-100-10, tanh, batch 100,
/// log-softmax + NLL, float32) against the same product in PyTorch, measured in one run:
/// rounds alternate between this process and the PyTorch anchor so drift hits both.
module GroupedNewton.Benchmarks.Hvp

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open GroupedNewton

let sizes = [| 784; 1024; 200; 100; 10 |]

let build (dtype: Dtype) =
    let ps = [|
        for i in 0 .. sizes.Length - 2 do
            let a, b = sizes.[i], sizes.[i + 1]
            yield Tensor.randnOf dtype (10 + i) [| b; a |] / Math.Sqrt(float a)
            yield Tensor.zerosOf dtype [| b |]
    |]

    let x = Tensor.randnOf dtype 1 [| 100; sizes.[0] |]
    let rng = Random(2)
    let y = Tensor.ofInts (Array.init 100 (fun _ -> rng.Next(sizes.[sizes.Length - 1])))
    let v = ps |> Array.mapi (fun i p -> Tensor.randnOf dtype (100 + i) p.Shape)
    ps, x, y, v

let loss (x: Tensor) (y: Tensor) (ps: Tensor[]) =
    let n = ps.Length / 2
    let mutable h = x

    for i in 0 .. n - 1 do
        h <- Tensor.matmulT false true h ps.[2 * i] + ps.[2 * i + 1]

        if i < n - 1 then
            h <- Tensor.tanh h

    Tensor.nll (Tensor.logSoftmax 1 h) y

/// One Hessian-vector product by reverse over forward.
let hvp (x: Tensor) (y: Tensor) (ps: Tensor[]) (v: Tensor[]) = Ad.hvpMany (loss x y) ps v

let private pythonMs (script: string) (threads: int) (reps: int) =
    match Anchor.runPython script (sprintf "--threads %d --reps %d" threads reps) with
    | o :: _ ->
        o.GetProperty("hvp_ms").GetDouble(),
        (match o.GetProperty("torch").GetString() with
         | null -> "?"
         | v -> v)
    | [] -> failwith "the PyTorch HVP anchor printed nothing"

let run (args: string[]) =
    let threadCounts = if args.Length > 0 then args.[0].Split(',') |> Array.map int else [| 1 |]
    let rounds = 3
    let reps = 7
    let script = Path.Combine(AppContext.BaseDirectory, "anchors", "hvp_anchor.py")
    let ps, x, y, v = build Dtype.Float32

    printfn
        "HVP, MLP 784-1024-200-100-10 tanh, batch 100, float32; GEMM: %s; OPENBLAS_CORETYPE=%s"
        (Backends.GemmProvider.active ())
        (match Environment.GetEnvironmentVariable "OPENBLAS_CORETYPE" with
         | null -> "unset"
         | s -> s)
    // tiered JIT: let every method of the product reach optimised code before timing
    for _ in 1..40 do
        hvp x y ps v |> ignore

    for threads in threadCounts do
        BackendRegistry.setThreads threads
        let ours = ResizeArray()
        let theirs = ResizeArray()
        let mutable version = ""

        for _ in 1..rounds do
            ours.Add(Timing.medianMs 3 reps (fun () -> hvp x y ps v |> ignore))
            let ms, ver = pythonMs script threads reps
            theirs.Add ms
            version <- ver

        let o, t = Timing.median ours, Timing.median theirs
        printfn "threads %d: GroupedNewton %.2f ms, PyTorch %s %.2f ms, ratio %.2fx" threads o version t (o / t)

        printfn
            "%s"
            (JsonSerializer.Serialize {|
                bench = "hvp-mlp"
                threads = threads
                groupednewton_ms = o
                pytorch_ms = t
                ratio = o / t
                torch = version
                gemm = Backends.GemmProvider.active ()
            |})

    0

/// Runs only this side's product in a loop (for profilers): `hvp-loop [count]`.
let loop (args: string[]) =
    let count = if args.Length > 0 then int args.[0] else 200
    BackendRegistry.setThreads 1
    let ps, x, y, v = build Dtype.Float32

    for _ in 1..20 do
        hvp x y ps v |> ignore

    let sw = Stopwatch.StartNew()
    let pause0 = GC.GetTotalPauseDuration()
    let g2 = GC.CollectionCount 2

    for _ in 1..count do
        hvp x y ps v |> ignore

    printfn
        "hvp: %.2f ms each; GC pause %.2f ms each; %d gen2 collections"
        (sw.Elapsed.TotalMilliseconds / float count)
        ((GC.GetTotalPauseDuration() - pause0).TotalMilliseconds / float count)
        (GC.CollectionCount 2 - g2)

    0
