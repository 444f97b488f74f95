/// The shared anchor's measurements on this library: forward, SGD step and one GroupedNewton
/// summary (ḡ, H̄, diag D̄, canonical partition, random u) of the MLP and LeNet-5, batch 100,
/// float32; printed with the same JSON fields as ../shared/bench/pytorch_anchor.py, next to
/// the anchor's own figures measured in the same run. `--backends managed,torch` times the
/// same workloads on each backend, interleaved with each other and with the anchor.
module GroupedNewton.Benchmarks.SummaryAnchor

open System
open System.Text.Json
open GroupedNewton

let private setup (name: string) =
    let w = Workloads.create name
    let ps = w.Model.Parameters

    let u =
        ps.WithValues(ps.Values |> Array.mapi (fun i p -> Tensor.randnOf Dtype.Float32 (50 + i) p.Shape))

    let partition = Partition.canonical ps
    let opt = Workloads.sgd w
    let forward () = w.Model.Forward(ps, w.Inputs) |> ignore
    let step () = opt.Step w.Loss |> ignore
    let summary () = Summary.compute w.Loss ps partition u |> ignore
    partition.Count, forward, step, summary

let run (args: string[]) =
    let option name =
        match Array.tryFindIndex ((=) name) args with
        | Some i when i + 1 < args.Length -> Some(args.[i + 1].Split(','))
        | _ -> None

    let threads = option "--threads" |> Option.map (Array.map int) |> Option.defaultValue [| 1; 2 |]
    let models = option "--models" |> Option.defaultValue [| "mlp"; "lenet" |]

    let backends =
        option "--backends"
        |> Option.defaultValue [| (BackendRegistry.defaultBackend ()).Name |]
        |> Array.map BackendRegistry.get

    let anchor = Anchor.locate "shared/bench/pytorch_anchor.py"
    eprintfn "%s" (Anchor.blasNote ())
    let previous = BackendRegistry.defaultBackend ()

    let on (b: Backend) f =
        BackendRegistry.setDefault b

        try
            f ()
        finally
            BackendRegistry.setDefault previous

    for name in models do
        let runs =
            backends
            |> Array.map (fun b ->
                on b (fun () ->
                    let S, forward, step, summary = setup name

                    for _ in 1..5 do
                        summary ()

                    for _ in 1..30 do
                        step ()

                    b, S, forward, step, summary))

        for t in threads do
            BackendRegistry.setThreads t
            // warm up at this thread count: its code paths (sequential or on the worker team)
            // must reach optimised code before they are timed
            for b, _, forward, step, summary in runs do
                on b (fun () ->
                    for _ in 1..2 do
                        summary ()

                    for _ in 1..30 do
                        step ()
                        forward ())

            let times = runs |> Array.map (fun _ -> ResizeArray(), ResizeArray(), ResizeArray())
            let pf, pst, psu = ResizeArray(), ResizeArray(), ResizeArray()

            for _ in 1..3 do
                for i in 0 .. runs.Length - 1 do
                    let b, _, forward, step, summary = runs.[i]
                    let f, st, su = times.[i]

                    on b (fun () ->
                        f.Add(Timing.medianMs 2 7 forward)
                        st.Add(Timing.medianMs 2 7 step)
                        su.Add(Timing.medianMs 1 5 summary))

                match anchor with
                | Some script ->
                    for o in Anchor.runPython script (sprintf "--threads %d --reps 5 --models %s" t name) do
                        match o.TryGetProperty "summary_ms" with
                        | true, v ->
                            psu.Add(v.GetDouble())
                            pf.Add(o.GetProperty("forward_ms").GetDouble())
                            pst.Add(o.GetProperty("sgd_step_ms").GetDouble())
                        | _ -> ()
                | None -> ()

            for i in 0 .. runs.Length - 1 do
                let b, S, _, _, _ = runs.[i]
                let f, st, su = times.[i]
                let fm, sm, um = Timing.median f, Timing.median st, Timing.median su

                printfn
                    "%s"
                    (JsonSerializer.Serialize {|
                        model = name
                        backend = b.Name
                        threads = t
                        S = S
                        batch = 100
                        forward_ms = fm
                        sgd_step_ms = sm
                        summary_ms = um
                        summary_over_step = um / sm
                    |})

                if psu.Count > 0 then
                    let pu, ps, pfm = Timing.median psu, Timing.median pst, Timing.median pf

                    eprintfn
                        "%-6s %-8s threads %d: summary %.1f ms vs PyTorch %.1f ms (ratio %.2f); SGD step %.1f vs %.1f (ratio %.2f); forward %.1f vs %.1f (ratio %.2f)"
                        name
                        b.Name
                        t
                        um
                        pu
                        (um / pu)
                        sm
                        ps
                        (sm / ps)
                        fm
                        pfm
                        (fm / pfm)

    0

/// Runs only this side's summary and SGD step in a loop (for profilers):
/// `summary-loop model [count] [threads]`.
let loop (args: string[]) =
    let name = if args.Length > 0 then args.[0] else "mlp"
    let count = if args.Length > 1 then int args.[1] else 50
    BackendRegistry.setThreads (if args.Length > 2 then int args.[2] else 1)
    let _, _, step, summary = setup name

    for _ in 1..10 do
        summary ()
        step ()

    let summaryMs = Timing.perCallWithGc (sprintf "%s summary" name) count summary
    let sw = Diagnostics.Stopwatch.StartNew()

    for _ in 1 .. 4 * count do
        step ()

    let stepMs = sw.Elapsed.TotalMilliseconds / float (4 * count)
    printfn "%s: summary %.2f ms, step %.2f ms, summary_over_step %.2f" name summaryMs stepMs (summaryMs / stepMs)
    0
