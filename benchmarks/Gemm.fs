/// GEMM throughput: the managed packed kernel against OpenBLAS, side by side in one process.
/// dotnet run -c Release --project benchmarks -- gemm [--quick] [--dtype f32|f64|both] [--threads 1,2]
///                                   [--shapes 512,128x784x512,...] [--trans NN,NT,TN,TT] [--rounds N]
///                                   [--kernel avx512|avx2|scalar] (the managed micro-kernel; default: detected)
/// A shape is m×k·k×n written "MxKxN" (or one number for a cube); --trans picks op(A)/op(B)
/// (N = as stored, T = transposed; default NN only).
module GroupedNewton.Benchmarks.Gemm

open System
open System.Threading
open GroupedNewton.Backends.Managed
open GroupedNewton.Backends.Blas

type private Row = {
    Dtype: string
    Trans: string
    M: int
    K: int
    N: int
    Threads: int
    Managed: float
    OpenBlas: float option
    MaxRelDiff: float option
}

let private parseShape (s: string) =
    match s.Split('x') |> Array.map int with
    | [| c |] -> c, c, c
    | [| m; k; n |] -> m, k, n
    | _ -> failwithf "bad shape '%s' (expected N or MxKxN)" s

let private argValue (args: string[]) (name: string) =
    args
    |> Array.tryFindIndex ((=) name)
    |> Option.bind (fun i -> if i + 1 < args.Length then Some args.[i + 1] else None)

/// Runs one variant long enough to settle; returns a rough per-call time in ms.
let private warmUp (f: unit -> unit) =
    f ()
    let sw = Diagnostics.Stopwatch.StartNew()
    let mutable calls = 0

    while sw.Elapsed.TotalMilliseconds < 300.0 || calls < 3 do
        f ()
        calls <- calls + 1

    sw.Elapsed.TotalMilliseconds / float calls

/// Times `managed` and `blas` in alternating rounds (so drift and thermal state hit both
/// alike); the result is the median over rounds of each round's median.
let private sideBySide (rounds: int) (threads: int) (managed: unit -> unit) (blas: (unit -> unit) option) =
    // OpenBLAS worker threads spin for a while after a multi-threaded call, and the .NET
    // pool threads after Parallel.For: pause when switching so neither run pays for the other.
    let settle () =
        if threads > 1 then
            Thread.Sleep 150

    let tm = warmUp managed
    settle ()

    let tb =
        blas
        |> Option.map (fun f ->
            let t = warmUp f in
            settle ()
            t)

    let repsFor t = max 3 (min 200 (int (60.0 / max t 1e-3)))
    let mTimes = ResizeArray()
    let bTimes = ResizeArray()

    for _ in 1..rounds do
        mTimes.Add(Timing.medianMs 1 (repsFor tm) managed)
        settle ()

        match blas, tb with
        | Some f, Some t ->
            bTimes.Add(Timing.medianMs 1 (repsFor t) f)
            settle ()
        | _ -> ()

    Timing.median mTimes, (if bTimes.Count > 0 then Some(Timing.median bTimes) else None)

let private relDiff (x: float[]) (y: float[]) =
    let mutable worst = 0.0
    let scale = x |> Array.fold (fun s v -> max s (abs v)) 1e-30

    for i in 0 .. x.Length - 1 do
        worst <- max worst (abs (x.[i] - y.[i]) / scale)

    worst

let private benchF32 rounds blasOk (ta, tb) (m, k, n) threads =
    let rng = Random(42)
    let a = Array.init (m * k) (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0))
    let b = Array.init (k * n) (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0))
    let cm = Array.zeroCreate<float32>(m * n)
    let cb = Array.zeroCreate<float32>(m * n)
    let lda, ldb = (if ta then m else k), (if tb then k else n)
    let managed () = Gemm.run (GemmCall.ofArgs (ta, tb, m, n, k, a, 0, lda, b, 0, ldb, cm, 0, n)) threads
    let blas () = OpenBlas.gemm (GemmCall.ofArgs (ta, tb, m, n, k, a, 0, lda, b, 0, ldb, cb, 0, n)) threads
    let tm, tb = sideBySide rounds threads managed (if blasOk then Some blas else None)
    let diff = if blasOk then Some(relDiff (Array.map float cm) (Array.map float cb)) else None
    tm, tb, diff

let private benchF64 rounds blasOk (ta, tb) (m, k, n) threads =
    let rng = Random(42)
    let a = Array.init (m * k) (fun _ -> rng.NextDouble() * 2.0 - 1.0)
    let b = Array.init (k * n) (fun _ -> rng.NextDouble() * 2.0 - 1.0)
    let cm = Array.zeroCreate<float>(m * n)
    let cb = Array.zeroCreate<float>(m * n)
    let lda, ldb = (if ta then m else k), (if tb then k else n)
    let managed () = Gemm.run (GemmCall.ofArgs (ta, tb, m, n, k, a, 0, lda, b, 0, ldb, cm, 0, n)) threads
    let blas () = OpenBlas.gemm (GemmCall.ofArgs (ta, tb, m, n, k, a, 0, lda, b, 0, ldb, cb, 0, n)) threads
    let tm, tb = sideBySide rounds threads managed (if blasOk then Some blas else None)
    let diff = if blasOk then Some(relDiff cm cb) else None
    tm, tb, diff

let run (args: string[]) : int =
    let quick = args |> Array.contains "--quick"
    let rounds = argValue args "--rounds" |> Option.map int |> Option.defaultValue (if quick then 3 else 7)

    let dtypes =
        match argValue args "--dtype" with
        | Some "f32"
        | Some "float32" -> [ "float32" ]
        | Some "f64"
        | Some "float64" -> [ "float64" ]
        | _ -> [ "float32"; "float64" ]

    let threadCounts =
        argValue args "--threads"
        |> Option.map (fun s -> s.Split(',') |> Array.map int |> List.ofArray)
        |> Option.defaultValue [ 1; 2 ]

    let shapes =
        match argValue args "--shapes" with
        | Some s -> s.Split(',') |> Array.map parseShape |> List.ofArray
        | None when quick -> [ 512, 512, 512; 128, 784, 512 ]
        | None -> [ 256, 256, 256; 512, 512, 512; 128, 784, 512; 1024, 1024, 1024 ]

    let transes =
        match argValue args "--trans" with
        | Some s -> s.Split(',') |> Array.map (fun t -> t.ToUpperInvariant()) |> List.ofArray
        | None -> [ "NN" ]

    argValue args "--kernel" |> Option.iter Gemm.setKernel
    let blasOk = OpenBlas.isAvailable ()

    let coreType =
        match Environment.GetEnvironmentVariable "OPENBLAS_CORETYPE" with
        | null
        | "" -> sprintf "unset (auto-detect: %s)" (if blasOk then OpenBlas.coreName () else "OpenBLAS not loaded")
        | v -> sprintf "%s (corename reported: %s)" v (if blasOk then OpenBlas.coreName () else "OpenBLAS not loaded")

    printfn "GEMM benchmark: C = op(A)·op(B), row-major; GFLOP/s = 2·m·n·k / median time"
    printfn "managed kernel    : %s (Vector512 accelerated: %b)" (Gemm.kernel ()) Runtime.Intrinsics.Vector512.IsHardwareAccelerated
    printfn "OpenBLAS          : %s" (if blasOk then sprintf "%s, %s" (OpenBlas.libraryName ()) (OpenBlas.config ()) else "not available")
    printfn "OPENBLAS_CORETYPE : %s" coreType

    printfn
        "processors        : %d, rounds: %d (median of per-round medians, managed/OpenBLAS interleaved)"
        Environment.ProcessorCount
        rounds

    printfn ""

    printfn
        "%-8s %-5s %-22s %7s %13s %13s %7s %10s"
        "dtype"
        "op"
        "m x k . k x n"
        "threads"
        "managed GF/s"
        "OpenBLAS GF/s"
        "ratio"
        "max rel d"

    let rows = ResizeArray<Row>()

    for dtype in dtypes do
        for trans in transes do
            let ops = (trans.Length = 2 && trans.[0] = 'T'), (trans.Length = 2 && trans.[1] = 'T')

            for (m, k, n) in shapes do
                for threads in threadCounts do
                    let tm, tb, diff =
                        if dtype = "float32" then
                            benchF32 rounds blasOk ops (m, k, n) threads
                        else
                            benchF64 rounds blasOk ops (m, k, n) threads

                    let gf t = 2.0 * float m * float n * float k / (t * 1e6)

                    let row = {
                        Dtype = dtype
                        Trans = trans
                        M = m
                        K = k
                        N = n
                        Threads = threads
                        Managed = gf tm
                        OpenBlas = tb |> Option.map gf
                        MaxRelDiff = diff
                    }

                    rows.Add row
                    let shape = sprintf "%dx%d . %dx%d" m k k n

                    match row.OpenBlas with
                    | Some ob ->
                        printfn
                            "%-8s %-5s %-22s %7d %13.1f %13.1f %7.2f %10.1e"
                            dtype
                            trans
                            shape
                            threads
                            row.Managed
                            ob
                            (row.Managed / ob)
                            (defaultArg diff nan)
                    | None -> printfn "%-8s %-5s %-22s %7d %13.1f %13s %7s %10s" dtype trans shape threads row.Managed "-" "-" "-"

    printfn ""
    let ct = (coreType.Replace("\\", "\\\\").Replace("\"", "\\\""))

    for r in rows do
        let opt (v: float option) =
            match v with
            | Some x -> sprintf "%.2f" x
            | None -> "null"

        printfn
            "{\"bench\":\"gemm\",\"dtype\":\"%s\",\"op\":\"%s\",\"m\":%d,\"k\":%d,\"n\":%d,\"threads\":%d,\"managed_gflops\":%.2f,\"openblas_gflops\":%s,\"ratio\":%s,\"managed_kernel\":\"%s\",\"openblas_coretype\":\"%s\"}"
            r.Dtype
            r.Trans
            r.M
            r.K
            r.N
            r.Threads
            r.Managed
            (opt r.OpenBlas)
            (opt (r.OpenBlas |> Option.map (fun ob -> r.Managed / ob)))
            (Gemm.kernel ())
            ct

    0
