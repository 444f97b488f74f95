namespace GroupedNewton

open System
open System.Diagnostics
open System.Threading
open GroupedNewton.Data

/// Settings of a training run.
type TrainerOptions =
    { Epochs: int
      BatchSize: int
      /// Seeds the order of the training batches (epoch e uses a permutation derived from
      /// (Seed, e), so a resumed run sees the same batches as an uninterrupted one).
      Seed: int
      Dtype: Dtype
      /// Batch size for evaluation passes.
      EvalBatchSize: int
      Objective: Objective
      /// JSON-lines metrics file, appended once per epoch.
      MetricsPath: string option
      /// Folder receiving a checkpoint after every epoch.
      CheckpointFolder: string option }

    static member Defaults =
        { Epochs = 1; BatchSize = 100; Seed = 0; Dtype = Dtype.Float32; EvalBatchSize = 1000
          Objective = Objective.Classification; MetricsPath = None; CheckpointFolder = None }

/// What a running training reports.
type TrainingEvent =
    | StepCompleted of epoch: int * step: int * loss: float
    | EpochCompleted of EpochMetrics
    | CheckpointWritten of path: string

/// Data sets of a run: validation and test are optional.
type TrainingData =
    { Train: Dataset
      Validation: Dataset option
      Test: Dataset option }

module Trainer =
    /// Loss and accuracy of parameters ps on a data set (batch-size-weighted means).
    let evaluate (model: Model) (ps: Parameters) (objective: Objective) (batchSize: int) (dtype: Dtype) (data: Dataset) : Evaluation =
        let opts = { BatchSize = batchSize; Shuffle = false; Seed = 0; DropLast = false; Dtype = dtype }
        let mutable loss = 0.0
        let mutable acc = 0.0
        let mutable n = 0
        for b in Loader.batches opts data 0 do
            let b = DataParallel.evaluationShard b  // data-parallel hook: this rank's rows
            if b.Size > 0 then
                let out = model.Forward(ps, b.Inputs)
                loss <- loss + Tensor.toScalar (Objective.loss objective out b) * float b.Size
                acc <- acc + Objective.accuracy objective out b * float b.Size
                n <- n + b.Size
        let loss, acc, n = DataParallel.sumEvaluation loss acc n  // data-parallel hook: sums over the ranks
        if n = 0 then { Loss = nan; Accuracy = nan }
        else { Loss = loss / float n; Accuracy = acc / float n }

    let private validate (o: TrainerOptions) =
        if o.Epochs < 0 then invalidArg "Epochs" (sprintf "Trainer: Epochs must be non-negative, got %d" o.Epochs)
        if o.BatchSize < 1 then invalidArg "BatchSize" (sprintf "Trainer: BatchSize must be at least 1, got %d" o.BatchSize)
        if o.EvalBatchSize < 1 then invalidArg "EvalBatchSize" (sprintf "Trainer: EvalBatchSize must be at least 1, got %d" o.EvalBatchSize)

    /// Trains from `startEpoch` (0 for a new run) to `options.Epochs`. Each epoch runs the
    /// optimizer over shuffled batches, evaluates, writes metrics and a checkpoint, and
    /// reports events. Cancellation is honoured between steps: the run stops after a whole
    /// step, leaving a usable model. Returns the metrics of the epochs it ran.
    let run (model: Model) (optimizer: Optimizer) (options: TrainerOptions) (data: TrainingData)
            (startEpoch: int) (onEvent: TrainingEvent -> unit) (cancel: CancellationToken) : EpochMetrics list =
        validate options
        DataParallel.checkStart model optimizer options.BatchSize data.Train.Count startEpoch (sprintf "%A" options)  // data-parallel hook
        let clock = Stopwatch.StartNew()
        let loaderOptions = { BatchSize = options.BatchSize; Shuffle = true; Seed = options.Seed; DropLast = false; Dtype = options.Dtype }
        let results = ResizeArray<EpochMetrics>()
        let mutable epoch = startEpoch
        let stop = DataParallel.StopAgreement cancel  // data-parallel hook: every rank agrees on stopping
        while epoch < options.Epochs && not (stop.Check()) do
            let mutable steps = 0
            let mutable lossSum = 0.0
            let mutable seen = 0
            use e = (Loader.batches loaderOptions data.Train epoch).GetEnumerator()
            while not (stop.Check()) && e.MoveNext() do
                let b = e.Current
                let input, batchLoss = DataParallel.stepShard options.Objective b  // data-parallel hook: this rank's rows
                let loss = optimizer.StepOn(model, input, batchLoss)
                DataParallel.afterStep optimizer  // data-parallel hook: optional bit-identity check
                steps <- steps + 1
                lossSum <- lossSum + loss * float b.Size
                seen <- seen + b.Size
                onEvent (StepCompleted(epoch + 1, steps, loss))
            if not stop.Stopped then
                epoch <- epoch + 1
                let ps = optimizer.Parameters
                let ev d = Some (evaluate model ps options.Objective options.EvalBatchSize options.Dtype d)
                let trainAcc =
                    if options.Objective = Objective.Classification then (evaluate model ps options.Objective options.EvalBatchSize options.Dtype data.Train).Accuracy
                    else nan
                let m =
                    { Epoch = epoch
                      Steps = steps
                      Train = { Loss = (if seen = 0 then nan else lossSum / float seen); Accuracy = trainAcc }
                      Validation = data.Validation |> Option.bind ev
                      Test = data.Test |> Option.bind ev
                      WallSeconds = clock.Elapsed.TotalSeconds
                      LearningRates = optimizer.Groups |> Array.map (fun g -> g.Name, g.LearningRate) }
                if Distributed.isRoot () then options.MetricsPath |> Option.iter (fun p -> Metrics.append p m)  // data-parallel hook: rank 0 writes
                match options.CheckpointFolder with
                | Some folder when Distributed.isRoot () ->  // data-parallel hook: rank 0 writes
                    let path = Checkpoint.fileFor folder epoch
                    Checkpoint.save path epoch model optimizer
                    onEvent (CheckpointWritten path)
                | _ -> ()
                results.Add m
                onEvent (EpochCompleted m)
        List.ofSeq results

    /// A new run from epoch 0.
    let fit model optimizer options data onEvent = run model optimizer options data 0 onEvent CancellationToken.None

    /// Continues a run from a checkpoint file: restores parameters and optimizer state and
    /// trains the remaining epochs.
    let resume (checkpoint: string) model (optimizer: Optimizer) options data onEvent cancel =
        let epoch = Checkpoint.load checkpoint model optimizer
        run model optimizer options data epoch onEvent cancel
