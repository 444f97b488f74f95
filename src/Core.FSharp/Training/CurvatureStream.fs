namespace GroupedNewton

open System
open GroupedNewton.Data

/// The curvature batches of GroupedNewton: an endless, unshuffled cycle over a data set (as
/// the reference implementation), addressed by a position so that a checkpoint records where
/// the stream is and a resumed run continues it exactly. `Next` is the curvature closure that
/// `GroupedNewtonOptimizer.create` takes.
[<Sealed>]
type CurvatureStream(model: Model, objective: Objective, data: Dataset, batchSize: int, dtype: Dtype) =
    do
        OptionChecks.atLeastOne "CurvatureStream" "batchSize" batchSize

        if data.Count < 1 then
            invalidArg "data" (sprintf "CurvatureStream: data set '%s' is empty" data.Name)

    let options = { BatchSize = batchSize; Shuffle = false; Seed = 0; DropLast = false; Dtype = dtype }
    let batches = int ((int64 data.Count + int64 batchSize - 1L) / int64 batchSize)
    let mutable position = 0L

    /// Number of curvature batches handed out so far.
    member _.Position
        with get () = position
        and set (v: int64) =
            if v < 0L then
                invalidArg "value" (sprintf "CurvatureStream: the position must be non-negative, got %d" v)

            position <- v

    /// Batches in one pass over the data.
    member _.BatchesPerPass = batches

    /// The loss closure of the next curvature batch.
    member _.Next() : Parameters -> Tensor =
        let k = int (position % int64 batches)
        position <- position + 1L
        let start = int (int64 k * int64 batchSize)
        let len = min batchSize (data.Count - start)
        let b = Loader.batch options data (Array.init len (fun i -> start + i))

        if Distributed.isActive () then
            // data-parallel hook: this rank's rows, its loss scaled by their share of the batch
            let local, share = Distributed.shardBatch b
            fun (ps: Parameters) -> share * Objective.loss objective (model.Forward(ps, local.Inputs)) local
        else
            fun (ps: Parameters) -> Objective.loss objective (model.Forward(ps, b.Inputs)) b
