namespace GroupedNewton

open System
open GroupedNewton.Autodiff

type PartitionSummary = { Gradient: float[]; Hessian: float[,]; ThirdDiagonal: float[]; Loss: float; ReversePasses: int }

type SummaryOptions = {
    ThirdOrder: bool
    DiagonalOnly: bool
} with

    static member Defaults = { ThirdOrder = true; DiagonalOnly = false }

module Summary =
    /// Refuses a non-finite entry: `cell` names it by subset indices (e.g. "H̄[0, 2]"), `subsets`
    /// by the subsets' names.
    let private checkFinite (cell: string) (subsets: string) (v: float) =
        if not (Double.IsFinite v) then
            raise (
                OptimizationException(
                    sprintf
                        "summary: %s of %s is %s (the loss or the direction is not finite here)"
                        cell
                        subsets
                        (v.ToString(Globalization.CultureInfo.InvariantCulture))
                )
            )


    /// The values of one-element tensors in one device read: on a GPU every read waits
    /// for the kernels queued before it, so a summary reads its scalars in two batches
    /// (loss and ḡ; then H̄ and D̄) rather than one by one between its passes.
    let private readScalars (xs: Tensor[]) : float[] =
        if xs.Length = 0 then
            [||]
        else
            Tensor.toArray (Tensor.cat 0 [ for x in xs -> Tensor.view [| 1 |] x ])

    /// The restricted function on nesting-level values of η (one scalar per subset).
    let private phi (loss: Parameters -> Tensor) (ps: Parameters) (subsetOf: int[]) (negU: Tensor[]) (etas: Dual[]) : Dual =
        let values = ps.ValueArray |> Array.mapi (fun i p -> Directional.shifted etas.[subsetOf.[i]] p negU.[i])

        (loss (ps.WithValues values)).Node

    let private prepare (ps: Parameters) (partition: Partition) (u: Parameters) =
        let dirs = Parameters.align ps u |> Array.map (fun d -> Tensor.detach (-d))

        ps.ValueArray
        |> Array.iteri (fun i p ->
            if dirs.[i].Dtype <> p.Dtype then
                raise (
                    DtypeMismatchException(
                        sprintf "summary: the direction of '%s' is %O, the parameter is %O" ps.KeyArray.[i].Name dirs.[i].Dtype p.Dtype
                    )
                ))

        let subsetOf = ps.KeyArray |> Array.map partition.SubsetOf
        let dtype = if ps.Count = 0 then Dtype.Float64 else ps.ValueArray.[0].Dtype
        let zero = (Tensor.cast dtype (Tensor.scalar 0.0)).Node
        let one = (Tensor.cast dtype (Tensor.scalar 1.0)).Node
        dirs, subsetOf, zero, one

    let computeWith
        (options: SummaryOptions)
        (loss: Parameters -> Tensor)
        (ps: Parameters)
        (partition: Partition)
        (u: Parameters)
        : PartitionSummary =
        let dirs, subsetOf, zero, one = prepare ps partition u
        let S = partition.Count
        let f = phi loss ps subsetOf dirs
        // Every pass evaluates the loss at η = 0 under its own derivative levels, and at the
        // bottom of each level tower runs the same constant ops on the same raw values (a
        // direction at η = 0 leaves a tensor as it is). Recording one plain evaluation lets
        // the passes find that primal instead of recomputing it 1 + S times.
        Directional.withSharedPrimal dirs (fun () -> f (Array.create S zero) |> ignore) (fun shared ->
            // ḡ: one reverse pass over all η_s
            let (value, grads), firstSweeps =
                Directional.pass shared (fun () -> Directional.valueAndGradient f (Array.create S zero) one)

            let sweeps = [| firstSweeps |]
            let first = readScalars (Array.append [| Tensor value |] (grads |> Array.map Tensor))
            let lossValue = first.[0]
            let g = Array.init S (fun s -> -first.[s + 1])
            let named (s: int) = sprintf "subset %d ('%s')" s partition.Names.[s]

            if not (Double.IsFinite lossValue) then
                raise (
                    OptimizationException(
                        sprintf "summary: the loss at θ is %s" (lossValue.ToString(Globalization.CultureInfo.InvariantCulture))
                    )
                )

            g |> Array.iteri (fun s v -> checkFinite (sprintf "ḡ[%d]" s) (named s) v)
            // H̄_ts (s ≥ t) and D̄_ttt as one-element tensors, read together after the passes
            let hCells: Tensor[,] = Array2D.zeroCreate S S
            let d3Cells: Tensor[] = Array.zeroCreate S

            let rowPass (t: int) =
                // H̄_ts for s ≥ t (only η_t when the diagonal suffices): reverse over those η_s of
                // the directional derivative Dφ[e_t]; with the third order an outer forward along
                // e_t differentiates the row once more, giving D̄_tts
                let first = t
                let last = if options.DiagonalOnly then t else S - 1

                let row (etaT: Dual) =
                    Directional.valueAndGradient
                        (fun rs ->
                            let all = Array.init S (fun s -> if s >= first && s <= last then rs.[s - first] else zero)
                            Directional.derivative f all t one)
                        (Array.init (last - first + 1) (fun i -> if first + i = t then etaT else zero))
                        one
                    |> snd

                if options.ThirdOrder then
                    let r = Directional.valuesAndDerivatives row zero one

                    for s in first..last do
                        let p, tg = r.[s - first]
                        hCells.[t, s] <- Tensor p

                        if s = t then
                            d3Cells.[t] <- Tensor tg
                else
                    let r = row zero

                    for s in first..last do
                        hCells.[t, s] <- Tensor r.[s - first]
            // The row passes are independent: on a backend with ConcurrentPasses (the managed one)
            // they run side by side on the worker team (each pass's own kernels then run on its
            // thread alone), each with its own pass memo over the shared, now read-only, primal
            // table. Pass t writes only the cells (t, s) and (s, t), s ≥ t, so no two passes
            // write one cell.
            let sideBySide = ps.Count > 0 && ps.ValueArray.[0].Backend.ConcurrentPasses

            let runPass (t: int) =
                let (), passSweeps = Directional.forkedPass shared (fun () -> rowPass t)
                System.Threading.Interlocked.Add(&sweeps.[0], passSweeps) |> ignore

            if sideBySide then
                BackendRegistry.forParts S runPass
            else
                for t in 0 .. S - 1 do
                    runPass t

            let cells = [|
                for t in 0 .. S - 1 do
                    for s in t .. S - 1 do
                        if not (isNull (box hCells.[t, s])) then
                            yield (t, s)
            |]

            let values =
                readScalars (
                    Array.append (cells |> Array.map (fun (t, s) -> hCells.[t, s])) (if options.ThirdOrder then d3Cells else [||])
                )

            let hs = Array2D.zeroCreate S S

            cells
            |> Array.iteri (fun k (t, s) ->
                hs.[t, s] <- values.[k]
                hs.[s, t] <- values.[k])

            let d3 = Array2D.zeroCreate S S

            if options.ThirdOrder then
                for s in 0 .. S - 1 do
                    d3.[s, s] <- -values.[cells.Length + s]

            // every computed entry of H̄, not only its diagonal: an infinite H̄_ts beside finite
            // H̄_tt and H̄_ss is as unusable to the solver
            for t, s in cells do
                let subsets =
                    if s = t then
                        named t
                    else
                        sprintf "subsets %d and %d ('%s', '%s')" t s partition.Names.[t] partition.Names.[s]

                checkFinite (sprintf "H̄[%d, %d]" t s) subsets hs.[t, s]

            if options.ThirdOrder then
                for s in 0 .. S - 1 do
                    checkFinite (sprintf "D̄[%d]" s) (named s) d3.[s, s]

            {
                Gradient = g
                Hessian = hs
                ThirdDiagonal = (if options.ThirdOrder then Array.init S (fun s -> d3.[s, s]) else [||])
                Loss = lossValue
                ReversePasses = sweeps.[0]
            })

    let compute loss ps partition u = computeWith SummaryOptions.Defaults loss ps partition u

    let tensor (order: int) (loss: Parameters -> Tensor) (ps: Parameters) (partition: Partition) (u: Parameters) : float[] =
        if order < 1 then
            invalidArg "order" (sprintf "summary tensor: the order must be at least 1, got %d" order)

        let dirs, subsetOf, zero, _ = prepare ps partition u
        let S = partition.Count

        let f (eta: Tensor) =
            Tensor(phi loss ps subsetOf dirs (Array.init S (fun s -> (Tensor.narrow 0 s 1 eta |> Tensor.view [||]).Node)))

        let eta0 = Tensor.cast zero.Dtype (Tensor.zeros [| S |])
        let sign = if order % 2 = 0 then 1.0 else -1.0
        Tensor.toArray (Directional.derivativeTensor order f eta0) |> Array.map (fun v -> sign * v)
