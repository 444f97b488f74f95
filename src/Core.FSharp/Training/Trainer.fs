namespace GroupedNewton

open System
open System.Diagnostics
open System.Threading
open GroupedNewton.Data

/// A training run stopped because its loss diverged: the message says where and why. The
/// checkpoints written before stay as they were; no checkpoint is written for the epoch in
/// which the divergence was found.
type DivergenceException(message: string, epoch: int, step: int, loss: float) =
    inherit Exception(message)
    /// The epoch (from 1) in which the loss diverged.
    member _.Epoch = epoch
    /// The step within the epoch (from 1), or 0 when an evaluation after the epoch found it.
    member _.Step = step
    /// The loss that tripped the guard.
    member _.Loss = loss

/// Settings of a training run.
type TrainerOptions = {
    Epochs: int
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
    CheckpointFolder: string option
    /// The divergence guard: Some f stops the run with DivergenceException when a step's
    /// loss is NaN or infinite, when it exceeds f times the reference loss (the run's first
    /// step's loss), or when an evaluation after an epoch gives a non-finite loss. None
    /// turns the guard off. Default Some 1000.
    DivergenceFactor: float option
    /// The loss the guard compares with; None: the first step's loss of this run (a resumed
    /// run takes the one its checkpoint recorded).
    ReferenceLoss: float option
    /// The curvature stream of the optimizer, if it has one: its position is recorded in
    /// every checkpoint and restored by `resume`, so a resumed run sees the same batches.
    Curvature: CurvatureStream option
    /// The run's configuration as name → value pairs, recorded in every checkpoint.
    RunSettings: (string * string) list
    /// Some n: an epoch ends after at most n steps (the first n batches of its shuffled
    /// order); None: every batch of the training set. Default None.
    MaxStepsPerEpoch: int option
    /// Whether the training set is evaluated after every epoch (a full pass for its
    /// accuracy). When false the epoch's `Train.Accuracy` is NaN; `Train.Loss` is the mean
    /// of the epoch's step losses either way. Default true.
    EvaluateTrainingSet: bool
    /// A per-step learning-rate schedule applied before every step (see
    /// LearningRateSchedule); None leaves the rates alone. Default None.
    Schedule: LearningRateSchedule option
} with

    static member Defaults = {
        Epochs = 1
        BatchSize = 100
        Seed = 0
        Dtype = Dtype.Float32
        EvalBatchSize = 1000
        Objective = Objective.Classification
        MetricsPath = None
        CheckpointFolder = None
        DivergenceFactor = Some 1000.0
        ReferenceLoss = None
        Curvature = None
        RunSettings = []
        MaxStepsPerEpoch = None
        EvaluateTrainingSet = true
        Schedule = None
    }

/// What a running training reports.
type TrainingEvent =
    | StepCompleted of epoch: int * step: int * loss: float
    | EpochCompleted of EpochMetrics
    | CheckpointWritten of path: string
    /// Something the user should know that does not stop the run.
    | Warning of message: string

/// Data sets of a run: validation and test are optional.
type TrainingData = { Train: Dataset; Validation: Dataset option; Test: Dataset option }

module Trainer =
    /// Loss and accuracy of parameters ps on a data set (batch-size-weighted means).
    let evaluate (model: Model) (ps: Parameters) (objective: Objective) (batchSize: int) (dtype: Dtype) (data: Dataset) : Evaluation =
        let opts = { BatchSize = batchSize; Shuffle = false; Seed = 0; DropLast = false; Dtype = dtype }
        let mutable loss = 0.0
        let mutable acc = 0.0
        let mutable n = 0

        for b in Loader.batches opts data 0 do
            let b = DataParallel.evaluationShard b // data-parallel hook: this rank's rows

            if b.Size > 0 then
                let out = model.Forward(ps, b.Inputs)
                loss <- loss + Tensor.toScalar (Objective.loss objective out b) * float b.Size
                acc <- acc + Objective.accuracy objective out b * float b.Size
                n <- n + b.Size

        let loss, acc, n = DataParallel.sumEvaluation loss acc n // data-parallel hook: sums over the ranks

        if n = 0 then
            { Loss = nan; Accuracy = nan }
        else
            { Loss = loss / float n; Accuracy = acc / float n }

    let private validate (o: TrainerOptions) =
        OptionChecks.nonNegativeCount "Trainer" "Epochs" o.Epochs

        OptionChecks.atLeastOne "Trainer" "BatchSize" o.BatchSize

        OptionChecks.atLeastOne "Trainer" "EvalBatchSize" o.EvalBatchSize

        match o.DivergenceFactor with
        | Some f when not (Double.IsFinite f && f > 1.0) ->
            invalidArg "DivergenceFactor" (sprintf "Trainer: DivergenceFactor must be a finite number above 1, got %g" f)
        | _ -> ()

        match o.MaxStepsPerEpoch with
        | Some n when n < 1 -> invalidArg "MaxStepsPerEpoch" (sprintf "Trainer: MaxStepsPerEpoch must be at least 1, got %d" n)
        | _ -> ()

        o.Schedule |> Option.iter LearningRateSchedule.validate

    /// Raises ShapeMismatchException, before any step, when a data set's samples do not have
    /// the model's input shape (naming the data set and both shapes), or when a
    /// classification set has more classes than the model has outputs.
    let checkData (model: Model) (objective: Objective) (data: TrainingData) =
        let sets = [ "training", Some data.Train; "validation", data.Validation; "test", data.Test ]

        for role, set in sets do
            match set with
            | Some d when d.SampleShape <> model.InputShape ->
                raise (
                    ShapeMismatchException(
                        sprintf
                            "Trainer: model '%s' takes samples of shape %s, but the %s set %s has samples of shape %s"
                            model.Name
                            (Shape.str model.InputShape)
                            role
                            d.Name
                            (Shape.str d.SampleShape)
                    )
                )
            | Some d when
                objective = Objective.Classification
                && d.IsClassification
                && model.OutputShape.Length = 1
                && d.Classes > model.OutputShape.[0]
                ->
                raise (
                    ShapeMismatchException(
                        sprintf
                            "Trainer: model '%s' has outputs of shape %s, too few for the %d classes of the %s set %s"
                            model.Name
                            (Shape.str model.OutputShape)
                            d.Classes
                            role
                            d.Name
                    )
                )
            | _ -> ()

    /// Validates the options (ArgumentException naming the field).
    let validateOptions (o: TrainerOptions) = validate o

    /// Whether an optimizer's failure message is about a non-finite value.
    let private nonFinite (message: string) =
        message.Contains "NaN"
        || message.Contains "not finite"
        || message.Contains "infinite"
        || message.Contains "non-finite"

    /// What the divergence guard says about a loss: None when it is fine, else the reason.
    let divergence (factor: float option) (reference: float option) (loss: float) : string option =
        match factor with
        | None -> None
        | Some f ->
            if Double.IsNaN loss then
                Some "the loss is NaN"
            elif Double.IsInfinity loss then
                Some(sprintf "the loss is %s" (if loss > 0.0 then "infinite" else "-infinite"))
            else
                match reference with
                | Some r when r > 0.0 && loss > f * r -> Some(sprintf "the loss %g is more than %g times the first step's loss %g" loss f r)
                | _ -> None

    /// Trains from `startEpoch` (0 for a new run) to `options.Epochs`. Each epoch runs the
    /// optimizer over shuffled batches (at most MaxStepsPerEpoch of them), evaluates, writes
    /// metrics and a checkpoint, and reports events. Before the first step the data sets'
    /// sample shapes are checked against the model (ShapeMismatchException naming both).
    /// Cancellation is honoured between steps: the run stops after a whole step, leaving a
    /// usable model. Returns the metrics of the epochs it ran.
    let run
        (model: Model)
        (optimizer: Optimizer)
        (options: TrainerOptions)
        (data: TrainingData)
        (startEpoch: int)
        (onEvent: TrainingEvent -> unit)
        (cancel: CancellationToken)
        : EpochMetrics list =
        validate options
        checkData model options.Objective data
        options.Schedule |> Option.iter (fun s -> LearningRateSchedule.checkOptimizer s optimizer)

        DataParallel.checkStart
            model
            optimizer
            options.BatchSize
            data.Train.Count
            startEpoch
            (sprintf "%A" { options with Curvature = None }) // data-parallel hook

        let clock = Stopwatch.StartNew()

        let loaderOptions = {
            BatchSize = options.BatchSize
            Shuffle = true
            Seed = options.Seed
            DropLast = false
            Dtype = options.Dtype
        }

        let results = ResizeArray<EpochMetrics>()
        let mutable reference = options.ReferenceLoss

        let diverged (epoch: int) (step: int) (loss: float) (where: string) (reason: string) =
            raise (
                DivergenceException(
                    sprintf
                        "diverged: %s %s (divergence guard, factor %g); no checkpoint is written for epoch %d, the earlier ones stay"
                        where
                        reason
                        (defaultArg options.DivergenceFactor 0.0)
                        epoch,
                    epoch,
                    step,
                    loss
                )
            )

        let mutable epoch = startEpoch
        let stop = DataParallel.StopAgreement cancel // data-parallel hook: every rank agrees on stopping

        while epoch < options.Epochs && not (stop.Check()) do
            let mutable steps = 0
            let mutable lossSum = 0.0
            let mutable seen = 0
            let mutable everyRateZero = true
            use e = (Loader.batches loaderOptions data.Train epoch).GetEnumerator()

            let capped () =
                match options.MaxStepsPerEpoch with
                | Some n -> steps >= n
                | None -> false

            while not (capped ()) && not (stop.Check()) && e.MoveNext() do
                let b = e.Current
                let input, batchLoss = DataParallel.stepShard options.Objective b // data-parallel hook: this rank's rows
                options.Schedule |> Option.iter (fun s -> LearningRateSchedule.apply s optimizer)

                let loss =
                    try
                        optimizer.StepOn(model, input, batchLoss)
                    with :? OptimizationException as ex when options.DivergenceFactor.IsSome && nonFinite ex.Message ->
                        // a step refused because its loss or update is not finite: the run diverged
                        diverged
                            (epoch + 1)
                            (steps + 1)
                            nan
                            (sprintf "at epoch %d step %d" (epoch + 1) (steps + 1))
                            ("the step failed: " + ex.Message)

                DataParallel.afterStep optimizer // data-parallel hook: optional bit-identity check
                steps <- steps + 1

                if reference.IsNone && Double.IsFinite loss then
                    reference <- Some(abs loss)

                divergence options.DivergenceFactor reference loss
                |> Option.iter (diverged (epoch + 1) steps loss (sprintf "at epoch %d step %d" (epoch + 1) steps))

                lossSum <- lossSum + loss * float b.Size
                seen <- seen + b.Size

                if everyRateZero && optimizer.Groups |> Array.exists (fun g -> g.LearningRate <> 0.0) then
                    everyRateZero <- false

                onEvent (StepCompleted(epoch + 1, steps, loss))

            if not stop.Stopped then
                epoch <- epoch + 1
                let ps = optimizer.Parameters
                let ev d = Some(evaluate model ps options.Objective options.EvalBatchSize options.Dtype d)

                let trainAcc =
                    if options.Objective = Objective.Classification && options.EvaluateTrainingSet then
                        (evaluate model ps options.Objective options.EvalBatchSize options.Dtype data.Train).Accuracy
                    else
                        nan

                let m = {
                    Epoch = epoch
                    Steps = steps
                    Train = { Loss = (if seen = 0 then nan else lossSum / float seen); Accuracy = trainAcc }
                    Validation = data.Validation |> Option.bind ev
                    Test = data.Test |> Option.bind ev
                    WallSeconds = clock.Elapsed.TotalSeconds
                    LearningRates = optimizer.Groups |> Array.map (fun g -> g.Name, g.LearningRate)
                }

                if Distributed.isRoot () then
                    options.MetricsPath |> Option.iter (fun p -> Metrics.append p m) // data-parallel hook: rank 0 writes

                results.Add m
                onEvent (EpochCompleted m)

                if steps > 0 && everyRateZero then
                    onEvent (
                        Warning(
                            sprintf
                                "epoch %d: the parameters did not move: every learning rate of %s was 0 for the whole epoch (%s)"
                                epoch
                                optimizer.Name
                                (if optimizer :? GroupedNewtonOptimizer then
                                     "GroupedNewton: the damping is 0, or every curvature update failed or gave no positive rate, or the warm-up is not over; see the optimizer's history"
                                 else
                                     "the learning rate is 0")
                        )
                    )
                // a non-finite evaluation means the parameters themselves diverged
                for name, ev in [ "training", Some m.Train; "validation", m.Validation; "test", m.Test ] do
                    match ev with
                    | Some v when options.DivergenceFactor.IsSome && not (Double.IsFinite v.Loss) && seen > 0 ->
                        diverged
                            epoch
                            0
                            v.Loss
                            (sprintf "after epoch %d, the %s loss is %g:" epoch name v.Loss)
                            "the parameters are no longer finite"
                    | _ -> ()

                match options.CheckpointFolder with
                | Some folder when Distributed.isRoot () -> // data-parallel hook: rank 0 writes
                    // a checkpoint folder you name is created; files elsewhere need an existing folder
                    IO.Directory.CreateDirectory folder |> ignore
                    let path = Checkpoint.fileFor folder epoch

                    let run = {
                        Settings = options.RunSettings
                        CurvaturePosition = options.Curvature |> Option.map (fun c -> c.Position)
                        ReferenceLoss = reference
                    }

                    Checkpoint.saveRun path epoch model optimizer run
                    onEvent (CheckpointWritten path)
                | _ -> ()

        List.ofSeq results

    /// A new run from epoch 0.
    let fit model optimizer options data onEvent = run model optimizer options data 0 onEvent CancellationToken.None

    /// Continues a run from a checkpoint file: restores parameters, optimizer state, the
    /// curvature stream's position (when options.Curvature is set) and the guard's reference
    /// loss, and trains the remaining epochs.
    let resume (checkpoint: string) model (optimizer: Optimizer) (options: TrainerOptions) data onEvent cancel =
        let info = Checkpoint.restore checkpoint model optimizer options.Curvature

        let options = {
            options with
                ReferenceLoss =
                    (match options.ReferenceLoss with
                     | Some r -> Some r
                     | None -> info.Run.ReferenceLoss)
        }

        run model optimizer options data info.Epoch onEvent cancel
