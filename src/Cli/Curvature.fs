/// The curvature batches of GroupedNewton: an endless, unshuffled cycle over the training
/// set (as the reference), addressed by a position so that a checkpoint can record where
/// the stream is and a resumed run continues it exactly.
namespace GroupedNewton.Cli

open GroupedNewton
open GroupedNewton.Data

type CurvatureSource(model: Model, objective: Objective, data: Dataset, batchSize: int, dtype: Dtype) =
    let options = { BatchSize = batchSize; Shuffle = false; Seed = 0; DropLast = false; Dtype = dtype }
    let batches = max 1 ((data.Count + batchSize - 1) / batchSize)
    let mutable position = 0L

    /// Number of curvature batches handed out so far.
    member _.Position
        with get () = position
        and set (v: int64) =
            if v < 0L then invalidArg "value" (sprintf "curvature position must be non-negative, got %d" v)
            position <- v

    /// The loss closure of the next curvature batch.
    member _.Next() : Parameters -> Tensor =
        let k = int (position % int64 batches)
        position <- position + 1L
        let start = k * batchSize
        let len = min batchSize (data.Count - start)
        let b = Loader.batch options data (Array.init len (fun i -> start + i))
        if Distributed.isActive () then
            // data-parallel hook: this rank's rows, its loss scaled by their share of the batch
            let local, share = Distributed.shardBatch b
            fun (ps: Parameters) -> share * Objective.loss objective (model.Forward(ps, local.Inputs)) local
        else
        fun (ps: Parameters) -> Objective.loss objective (model.Forward(ps, b.Inputs)) b
