/// The shared anchor's measurements on this library: forward, SGD step and one GroupedNewton
/// summary (ḡ, H̄, diag D̄, canonical partition, random u) of the MLP and LeNet-5, batch 100,
/// float32; printed with the same JSON fields as ../shared/bench/pytorch_anchor.py, next to
/// the anchor's own figures measured in the same run.
module GroupedNewton.Benchmarks.SummaryAnchor

open System
open System.Text.Json
open GroupedNewton

let private setup (name: string) =
    let w = Workloads.create name
    let ps = w.Model.Parameters
    let u = ps.WithValues(ps.Values |> Array.mapi (fun i p -> Tensor.randnOf Dtype.Float32 (50 + i) p.Shape))
    let partition = Partition.canonical ps
    let opt = Workloads.sgd w
    let forward () = w.Model.Forward(ps, w.Inputs) |> ignore
    let step () = opt.Step w.Loss |> ignore
    let summary () = Summary.compute w.Loss ps partition u |> ignore
    partition.Count, forward, step, summary

let run (args: string[]) =
    let threads =
        match Array.tryFindIndex ((=) "--threads") args with
        | Some i when i + 1 < args.Length -> args.[i + 1].Split(',') |> Array.map int
        | _ -> [| 1; 2 |]
    let models =
        match Array.tryFindIndex ((=) "--models") args with
        | Some i when i + 1 < args.Length -> args.[i + 1].Split(',')
        | _ -> [| "mlp"; "lenet" |]
    let anchor = Anchor.locate "shared/bench/pytorch_anchor.py"
    eprintfn "%s" (Anchor.blasNote ())
    for name in models do
        let S, forward, step, summary = setup name
        for _ in 1 .. 5 do summary ()
        for _ in 1 .. 30 do step ()
        for t in threads do
            BackendRegistry.setThreads t
            let f, st, su = ResizeArray(), ResizeArray(), ResizeArray()
            let pf, pst, psu = ResizeArray(), ResizeArray(), ResizeArray()
            for _ in 1 .. 3 do
                f.Add(Timing.medianMs 2 7 forward)
                st.Add(Timing.medianMs 2 7 step)
                su.Add(Timing.medianMs 1 5 summary)
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
            let fm, sm, um = Timing.median f, Timing.median st, Timing.median su
            printfn "%s" (JsonSerializer.Serialize {| model = name; threads = t; S = S; batch = 100; forward_ms = fm; sgd_step_ms = sm; summary_ms = um; summary_over_step = um / sm |})
            if psu.Count > 0 then
                let pu, ps = Timing.median psu, Timing.median pst
                eprintfn "%-6s threads %d: summary %.1f ms vs PyTorch %.1f ms (ratio %.2f); summary/step %.1f vs %.1f"
                    name t um pu (um / pu) (um / sm) (pu / ps)
    0
