/// `summary`: for a model at initialisation or from a checkpoint, the derivatives of the
/// loss of one batch according to a partition along the gradient (ḡ, H̄, diag D̄), the
/// per-subset learning rates GroupedNewton would take from them, and suggested per-layer
/// SGD learning rates (the same cubic-regularised step on the per-layer partition).
module GroupedNewton.Cli.SummaryCommand

open System
open System.Globalization
open System.IO
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Settings
open GroupedNewton.Cli.Report

let private e (v: float) = v.ToString("0.0000e+00", CultureInfo.InvariantCulture).PadLeft(12)

/// η from a summary: the cubic-regularised step GroupedNewton takes.
let private solve (s: PartitionSummary) (lambda: float) = RateSuggestion.solve lambda s

let run (s: SummarySettings) (out: TextWriter) : int =
    s.Task.Threads |> Option.iter BackendRegistry.setThreads
    let data = Tasks.load s.Task
    out.WriteLine data.Note
    let model = Tasks.model s.Task data s.Seed

    let ps, origin =
        match s.Checkpoint with
        | Some path -> Checkpoint.loadParameters path model, "parameters from " + path
        | None -> model.Parameters, sprintf "parameters at initialisation (seed %d)" s.Seed

    let train = data.Data.Train
    let n = min s.Task.BatchSize train.Count

    let batch =
        Loader.batch { Loader.defaults n with Shuffle = false; Dtype = s.Task.Dtype } train (Array.init n id)

    let loss (p: Parameters) = Objective.loss data.Objective (model.Forward(p, batch.Inputs)) batch
    let u = ps.WithValues(Ad.gradMany (fun vs -> loss (ps.WithValues vs)) ps.Values)
    let partition = Partition.parse ps s.Task.Partition
    let S = partition.Count
    let summary = Summary.compute loss ps partition u
    let lambda = defaultArg s.LambdaInt 1.0
    let damping = defaultArg s.Damping (OptimizerCatalog.defaultDamping (ModelFamily.OfName model.Name))
    let names = partition.Names
    out.WriteLine(Tasks.describe model + ", " + origin)

    out.WriteLine(
        sprintf
            "batch: the first %d training samples; direction u = the gradient; loss %.6g; %d reverse passes"
            n
            summary.Loss
            summary.ReversePasses
    )

    out.WriteLine(sprintf "partition %s (S = %d): %s" s.Task.Partition S (String.Join(", ", names)))
    out.WriteLine(sprintf "ḡ (S = %d):" S)

    for i in 0 .. S - 1 do
        out.WriteLine(sprintf "  %-20s %s" names.[i] (e summary.Gradient.[i]))

    out.WriteLine(sprintf "H̄ (%d×%d):" S S)

    for i in 0 .. S - 1 do
        out.WriteLine("  " + String.Join(" ", Array.init S (fun j -> e summary.Hessian.[i, j])))

    out.WriteLine(sprintf "D̄ diagonal (S = %d):" S)

    for i in 0 .. S - 1 do
        out.WriteLine(sprintf "  %-20s %s" names.[i] (e summary.ThirdDiagonal.[i]))

    let sol = solve summary lambda

    let gnRows =
        if sol.Converged then
            out.WriteLine(
                sprintf "GroupedNewton learning rates (λ_int %g, damping %g; solver path %A, r = %.4g):" lambda damping sol.Path sol.Radius
            )

            out.WriteLine(sprintf "  %-20s %12s %12s" "subset" "η" "damping·η")

            [
                for i in 0 .. S - 1 do
                    let lr = damping * max 0.0 sol.Eta.[i]
                    out.WriteLine(sprintf "  %-20s %s %s" names.[i] (e sol.Eta.[i]) (e lr))
                    yield [ names.[i]; sol.Eta.[i].ToString("G6"); lr.ToString("G6") ]
            ]
        else
            out.WriteLine(
                sprintf "GroupedNewton: the cubic model has no minimiser here (%s); the optimizer would keep its previous rates" sol.Message
            )

            []
    // per-layer SGD learning rates: the same step along the gradient, one rate per layer
    let layers = Partition.perLayer ps

    let layerSummary =
        if s.Task.Partition = "per-layer" || s.Task.Partition = "layers" then
            summary
        else
            Summary.compute loss ps layers u

    let layerSol = solve layerSummary lambda

    let sgdRows =
        if layerSol.Converged then
            out.WriteLine "suggested per-layer SGD learning rates (cubic-regularised step along the gradient, per-layer partition):"

            [
                for i in 0 .. layers.Count - 1 do
                    let lr = max 0.0 layerSol.Eta.[i]
                    out.WriteLine(sprintf "  %-20s %s" layers.Names.[i] (e lr))
                    yield [ layers.Names.[i]; lr.ToString("G6") ]
            ]
        else
            out.WriteLine(sprintf "suggested per-layer SGD learning rates: none (%s)" layerSol.Message)
            []

    match s.Out with
    | Some folder ->
        Directory.CreateDirectory folder |> ignore
        let path = Path.Combine(folder, "summary.html")

        let gTable =
            Html.table [ "subset"; "ḡ"; "D̄ (diagonal)" ] [
                for i in 0 .. S - 1 -> [ names.[i]; summary.Gradient.[i].ToString("G6"); summary.ThirdDiagonal.[i].ToString("G6") ]
            ]

        let page =
            Html.page (sprintf "Partition summary: %s" model.Name) [
                "Setting",
                Html.paragraph (
                    sprintf
                        "%s; %s; batch of %d; partition %s (S = %d); loss %.6g"
                        (Tasks.describe model)
                        origin
                        n
                        s.Task.Partition
                        S
                        summary.Loss
                )
                "ḡ and D̄", gTable
                "H̄", Svg.heatMap "H̄ scaled to H̄_st / √|H̄_ss H̄_tt| (tooltips: raw values)" names summary.Hessian
                "GroupedNewton learning rates", Html.table [ "subset"; "η"; "damping·η" ] gnRows
                "Suggested per-layer SGD learning rates", Html.table [ "layer"; "learning rate" ] sgdRows
            ]

        File.WriteAllText(path, page)
        out.WriteLine(sprintf "report: %s" path)
    | None -> ()

    ExitCode.Ok
