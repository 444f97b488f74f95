namespace GroupedNewton

open System.Threading
open GroupedNewton.Data

/// What the trainer does differently on several ranks (docs/distributed.md), kept apart from
/// the loop itself: each rank steps on its rows of every batch with its share of the loss,
/// evaluation is split and summed, the ranks agree on stopping, and the run is checked to
/// be the same run on every rank. With one rank every function here leaves things as they
/// are.
module internal DataParallel =
    /// This rank's inputs of a training batch and the loss closure of its rows, scaled by
    /// their share of the batch (the whole batch and its plain loss with one rank).
    let stepShard (objective: Objective) (b: Batch) : Tensor * (Tensor -> Tensor) =
        if not (Distributed.isActive ()) then
            b.Inputs, (fun out -> Objective.loss objective out b)
        else
            let local, share = Distributed.shardBatch b
            local.Inputs, (fun out -> share * Objective.loss objective out local)

    /// This rank's rows of an evaluation batch.
    let evaluationShard (b: Batch) = fst (Distributed.shardBatch b)

    /// Sums of (loss·rows, accuracy·rows, rows) over the ranks.
    let sumEvaluation (loss: float) (acc: float) (n: int) =
        if not (Distributed.isActive ()) then
            loss, acc, n
        else
            let sums = [|
                loss
                (if System.Double.IsNaN acc then 0.0 else acc)
                float n
                (if System.Double.IsNaN acc then 1.0 else 0.0)
            |]

            Distributed.allReduceSum sums
            sums.[0], (if sums.[3] > 0.0 then nan else sums.[1]), int sums.[2]

    /// Checks, on every rank at the start of a run, that the batches split over the ranks and
    /// that every rank runs the same configuration from the same parameters.
    let checkStart (model: Model) (optimizer: Optimizer) (batchSize: int) (trainCount: int) (startEpoch: int) (options: string) =
        if Distributed.isActive () then
            Distributed.checkBatches "the batch size" batchSize trainCount

            let shapes =
                optimizer.Parameters.ValueArray |> Array.map (fun v -> Shape.str v.Shape) |> String.concat ","

            Distributed.checkSame
                "run configuration (trainer options, model, optimizer, data size, start epoch)"
                (sprintf
                    "%s|%s|%s|%s|%d|%d|%A"
                    options
                    model.Name
                    optimizer.Name
                    shapes
                    trainCount
                    startEpoch
                    (optimizer.Groups |> Array.map (fun g -> g.Name, g.LearningRate)))

            Distributed.checkIdenticalParameters "at the start of the run" optimizer.Parameters

    /// With GROUPEDNEWTON_MPI_VERIFY=1: raises unless the parameters are bit-identical on
    /// every rank after the step.
    let afterStep (optimizer: Optimizer) =
        if Distributed.verifyEveryStep () then
            Distributed.checkIdenticalParameters (sprintf "after step %d" optimizer.StepCount) optimizer.Parameters

    /// Stopping agreed by every rank: a cancellation seen by any rank stops all of them after
    /// the same step.
    type StopAgreement(cancel: CancellationToken) =
        let mutable agreed = false

        /// Whether to stop now (a collective with several ranks: every rank calls it at the
        /// same point).
        member _.Check() =
            if Distributed.isActive () then
                agreed <- agreed || Distributed.anyRank cancel.IsCancellationRequested
                agreed
            else
                cancel.IsCancellationRequested

        /// The answer of the last Check (the token itself with one rank).
        member _.Stopped = if Distributed.isActive () then agreed else cancel.IsCancellationRequested
