/// One SGD training step (forward, backward, update) and one forward pass of the MLP
/// 784-1024-200-100-10 and of LeNet-5 on 3×32×32, batch 100, float32, next to the shared
/// PyTorch anchor (field sgd_step_ms), rounds interleaved in one run.
module GroupedNewton.Benchmarks.SgdStep

open System
open System.Text.Json
open GroupedNewton

let private setup (name: string) =
    let w = Workloads.create name
    let opt = Workloads.sgd w
    let step () = opt.Step w.Loss |> ignore
    let forward () = w.Model.Forward(opt.Parameters, w.Inputs) |> ignore
    forward, step

let run (args: string[]) =
    let threads = if args.Length > 0 then args.[0].Split(',') |> Array.map int else [| 1; 2 |]
    let models = if args.Length > 1 then args.[1].Split(',') else [| "mlp"; "lenet" |]
    let anchor = Anchor.locate "shared/bench/pytorch_anchor.py"
    printfn "SGD step, batch 100, float32; %s" (Anchor.blasNote ())

    for name in models do
        let forward, step = setup name
        // tiered JIT: reach optimised code before timing
        for _ in 1..40 do
            step ()

        for t in threads do
            BackendRegistry.setThreads t
            // warm up at this thread count: its code paths (sequential or on the worker team)
            // must reach optimised code before they are timed
            for _ in 1..30 do
                step ()
                forward ()

            let ours = ResizeArray()
            let ourFwd = ResizeArray()
            let theirs = ResizeArray()
            let theirFwd = ResizeArray()

            for _ in 1..3 do
                ourFwd.Add(Timing.medianMs 2 7 forward)
                ours.Add(Timing.medianMs 2 7 step)

                match anchor with
                | Some script ->
                    for o in Anchor.runPython script (sprintf "--threads %d --reps 7 --models %s" t name) do
                        match o.TryGetProperty "sgd_step_ms" with
                        | true, v ->
                            theirs.Add(v.GetDouble())
                            theirFwd.Add(o.GetProperty("forward_ms").GetDouble())
                        | _ -> ()
                | None -> ()

            let o, f = Timing.median ours, Timing.median ourFwd

            if theirs.Count > 0 then
                let p, pf = Timing.median theirs, Timing.median theirFwd

                printfn
                    "%-6s threads %d: step %.2f ms vs PyTorch %.2f ms (ratio %.2f); forward %.2f vs %.2f ms (ratio %.2f)"
                    name
                    t
                    o
                    p
                    (o / p)
                    f
                    pf
                    (f / pf)

                printfn
                    "%s"
                    (JsonSerializer.Serialize {|
                        bench = "sgd-step"
                        model = name
                        threads = t
                        sgd_step_ms = o
                        pytorch_sgd_step_ms = p
                        ratio = o / p
                        forward_ms = f
                        pytorch_forward_ms = pf
                    |})
            else
                printfn
                    "%-6s threads %d: step %.2f ms, forward %.2f ms (PyTorch anchor not found: ../shared/bench/pytorch_anchor.py)"
                    name
                    t
                    o
                    f

    0

/// Runs only this side's step in a loop (for profilers): `sgd-loop model [count] [threads,...]`;
/// several thread counts run one after another in the same process.
let loop (args: string[]) =
    let name = if args.Length > 0 then args.[0] else "mlp"
    let count = if args.Length > 1 then int args.[1] else 200
    let threads = if args.Length > 2 then args.[2].Split(',') |> Array.map int else [| 1 |]
    let forward, step = setup name

    for t in threads do
        BackendRegistry.setThreads t

        for _ in 1..40 do
            step ()

        let stepMs = Timing.perCallWithGc (sprintf "%s step, %d threads" name t) count step
        let sw = Diagnostics.Stopwatch.StartNew()

        for _ in 1..count do
            forward ()

        let forwardMs = sw.Elapsed.TotalMilliseconds / float count
        printfn "%s, %d threads: step %.2f ms, forward %.2f ms" name t stepMs forwardMs

    0

/// The parts of one step, interleaved in one process: `sgd-parts model [threads]` prints the
/// medians of the forward pass, loss and gradient, the momentum update alone and the step.
let parts (args: string[]) =
    let name = if args.Length > 0 then args.[0] else "mlp"
    BackendRegistry.setThreads (if args.Length > 1 then int args.[1] else 1)
    let w = Workloads.create name
    let opt = Workloads.sgd w
    let ps = opt.Parameters
    let forward () = w.Model.Forward(ps, w.Inputs) |> ignore
    let gradient () = Ad.valueAndGradMany (fun vs -> w.Loss(ps.WithValues vs)) ps.Values |> ignore
    let g = ps.Values |> Array.map Tensor.onesLike

    let update () =
        for i in 0 .. g.Length - 1 do
            Tensor.addScaled -0.001 ps.Values.[i] (Tensor.addScaled 0.9 g.[i] ps.Values.[i]) |> ignore

    let step () = opt.Step w.Loss |> ignore
    // the first layer's pieces (the MLP's first weight is [1024, 784], the input [100, 784])
    let w0, b0 = ps.Values.[0], ps.Values.[1]
    let x = if w.Inputs.Rank = 2 then w.Inputs else Tensor.flatten w.Inputs
    let product () = Tensor.matmulT false true x w0 |> ignore
    let z = Tensor.matmulT false true x w0
    let bias () = (z + b0) |> ignore
    let act () = Tensor.tanh z |> ignore
    let names = [| "forward"; "loss and gradient"; "update"; "step"; "first product"; "first bias"; "first tanh" |]
    let fs = [| forward; gradient; update; step; product; bias; act |]

    for _ in 1..30 do
        for f in fs do
            f ()

    let ts = Array.init fs.Length (fun _ -> ResizeArray<float>())

    for _ in 1..15 do
        for i in 0 .. fs.Length - 1 do
            ts.[i].Add(Timing.medianMs 1 5 fs.[i])

    for i in 0 .. fs.Length - 1 do
        printfn "%s %s: %.2f ms" name names.[i] (Timing.median ts.[i])

    0

/// How the step time measured right after an idle or busy pause compares with the steady
/// state (the side-by-side runs time a few steps right after the PyTorch process):
/// `sgd-pause model threads`.
let pause (args: string[]) =
    let name = if args.Length > 0 then args.[0] else "mlp"
    BackendRegistry.setThreads (if args.Length > 1 then int args.[1] else 1)
    let _, step = setup name

    for _ in 1..40 do
        step ()

    let busy () =
        let psi =
            Diagnostics.ProcessStartInfo("/usr/bin/python3", "-c \"import time\nt=time.time()\nwhile time.time()-t<4: pass\"")

        match Diagnostics.Process.Start psi with
        | null -> failwith "could not start /usr/bin/python3"
        | p ->
            p.WaitForExit()
            p.Dispose()

    for label, before in
        [
            "steady", ignore
            "after 4 s idle", (fun () -> Threading.Thread.Sleep 4000)
            "after a 4 s busy process", busy
            "steady", ignore
        ] do
        before ()
        printfn "%s %s: %.2f ms (median of 7 after 2)" name label (Timing.medianMs 2 7 step)

    0
