using CoreEvent = global::GroupedNewton.TrainingEvent;
using CoreMetrics = global::GroupedNewton.EpochMetrics;

namespace GroupedNewton.CSharp
{
    /// <summary>Settings of a training run.</summary>
    public sealed class TrainerOptions
    {
        static readonly global::GroupedNewton.TrainerOptions D = global::GroupedNewton.TrainerOptions.Defaults;

        /// <summary>Epochs per call of <see cref="Trainer.Train"/> (≥ 0, default 1).</summary>
        public int Epochs { get; set; } = D.Epochs;
        /// <summary>Training batch size (≥ 1, default 100).</summary>
        public int BatchSize { get; set; } = D.BatchSize;
        /// <summary>Seed of the batch order (epoch e uses a permutation derived from (Seed, e)).</summary>
        public int Seed { get; set; } = D.Seed;
        /// <summary>Dtype of the input batches (match the model's parameters; default Float32).</summary>
        public DType DType { get; set; } = DTypes.FromCore(D.Dtype);
        /// <summary>Batch size of the evaluation passes (≥ 1, default 1000).</summary>
        public int EvalBatchSize { get; set; } = D.EvalBatchSize;
        /// <summary>The loss (default classification).</summary>
        public Objective Objective { get; set; } = Objective.Classification;
        /// <summary>A JSON-lines file receiving one line of metrics per epoch, or null.</summary>
        public string? MetricsPath { get; set; }
        /// <summary>A folder receiving a checkpoint after every epoch, or null; created if missing (files such as
        /// <see cref="MetricsPath"/> must be in an existing folder).</summary>
        public string? CheckpointFolder { get; set; }
        /// <summary>The divergence guard: the run stops with an <see cref="InvalidOperationException"/> saying
        /// "diverged: …" when a step's loss is NaN or infinite, exceeds this factor times the first step's loss,
        /// or an evaluation gives a non-finite loss (default 1000; null turns the guard off).</summary>
        public double? DivergenceFactor { get; set; } = CoreOption.ToNullable(D.DivergenceFactor);
        /// <summary>At most this many steps per epoch (the first batches of the epoch's shuffled order), or null
        /// for every batch of the training set (default null; ≥ 1 when set).</summary>
        public int? MaxStepsPerEpoch { get; set; }
        /// <summary>Whether the training set is evaluated after every epoch (a full pass for its accuracy; default true).
        /// When false, <see cref="EpochMetrics.TrainAccuracy"/> is NaN; <see cref="EpochMetrics.TrainLoss"/> is the mean
        /// of the epoch's step losses either way.</summary>
        public bool EvaluateTrainingSet { get; set; } = D.EvaluateTrainingSet;
        /// <summary>A per-step learning-rate schedule applied before every step, or null to leave the rates alone
        /// (default null). Not for GroupedNewton, whose rates are computed at every step.</summary>
        public LearningRateSchedule? Schedule { get; set; }

        /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
        public void Validate()
        {
            if (DType == DType.Int32) throw new ArgumentOutOfRangeException(nameof(DType), DType, "inputs must be Float32 or Float64");
            if (!Enum.IsDefined(Objective)) throw new ArgumentOutOfRangeException(nameof(Objective), Objective, $"{Objective} is not an {nameof(CSharp.Objective)}");
            Guard.OutOfRange(() => global::GroupedNewton.Trainer.validateOptions(ToCore(Epochs, null, null)));
        }

        internal global::GroupedNewton.TrainerOptions ToCore(int epochs, global::GroupedNewton.CurvatureStream? curvature, double? referenceLoss) =>
            new(epochs: epochs, batchSize: BatchSize, seed: Seed, dtype: DType.ToCore(), evalBatchSize: EvalBatchSize,
                objective: Objective.ToCore(), metricsPath: CoreOption.Of(MetricsPath), checkpointFolder: CoreOption.Of(CheckpointFolder),
                divergenceFactor: CoreOption.OfValue(DivergenceFactor), referenceLoss: CoreOption.OfValue(referenceLoss),
                curvature: CoreOption.Of(curvature), runSettings: Microsoft.FSharp.Collections.FSharpList<Tuple<string, string>>.Empty,
                maxStepsPerEpoch: CoreOption.OfValue(MaxStepsPerEpoch), evaluateTrainingSet: EvaluateTrainingSet,
                schedule: CoreOption.Of(Schedule?.Core));
    }

    /// <summary>What one epoch produced.</summary>
    public sealed class EpochMetrics
    {
        internal EpochMetrics(CoreMetrics m)
        {
            Epoch = m.Epoch;
            Steps = m.Steps;
            TrainLoss = m.Train.Loss;
            TrainAccuracy = m.Train.Accuracy;
            Validation = m.Validation is { } v ? new Evaluation(v.Value.Loss, v.Value.Accuracy) : null;
            Test = m.Test is { } t ? new Evaluation(t.Value.Loss, t.Value.Accuracy) : null;
            WallSeconds = m.WallSeconds;
            LearningRates = m.LearningRates.ToDictionary(p => p.Item1, p => p.Item2);
        }

        /// <summary>The epoch number, from 1.</summary>
        public int Epoch { get; }
        /// <summary>Optimizer steps in the epoch.</summary>
        public int Steps { get; }
        /// <summary>Mean training loss over the epoch's steps.</summary>
        public double TrainLoss { get; }
        /// <summary>Accuracy on the training set at the end of the epoch (NaN without labels, or when
        /// <see cref="TrainerOptions.EvaluateTrainingSet"/> is false).</summary>
        public double TrainAccuracy { get; }
        /// <summary>Loss and accuracy on the validation set, or null.</summary>
        public Evaluation? Validation { get; }
        /// <summary>Loss and accuracy on the test set, or null.</summary>
        public Evaluation? Test { get; }
        /// <summary>Seconds since the run started.</summary>
        public double WallSeconds { get; }
        /// <summary>The learning rate of each group (GroupedNewton: each subset) at the end of the epoch.</summary>
        public IReadOnlyDictionary<string, double> LearningRates { get; }
    }

    /// <summary>What a progress report is about.</summary>
    public enum TrainingProgressKind
    {
        /// <summary>An optimizer step finished.</summary>
        StepCompleted,
        /// <summary>An epoch finished and was evaluated.</summary>
        EpochCompleted,
        /// <summary>A checkpoint was written.</summary>
        CheckpointWritten,
        /// <summary>Something to know that does not stop the run (<see cref="TrainingProgress.Message"/> says what).</summary>
        Warning,
    }

    /// <summary>A progress report of a running training.</summary>
    public sealed class TrainingProgress
    {
        internal TrainingProgress(TrainingProgressKind kind, int epoch, int step, double loss, EpochMetrics? metrics, string? path)
        {
            Kind = kind; Epoch = epoch; Step = step; Loss = loss; Metrics = metrics; CheckpointPath = path;
        }

        /// <summary>What happened.</summary>
        public TrainingProgressKind Kind { get; }
        /// <summary>The epoch (from 1).</summary>
        public int Epoch { get; }
        /// <summary>The step within the epoch (from 1) for <see cref="TrainingProgressKind.StepCompleted"/>, else 0.</summary>
        public int Step { get; }
        /// <summary>The step's loss, or the epoch's mean training loss; NaN for a checkpoint.</summary>
        public double Loss { get; }
        /// <summary>The epoch's metrics for <see cref="TrainingProgressKind.EpochCompleted"/>, else null.</summary>
        public EpochMetrics? Metrics { get; }
        /// <summary>The file for <see cref="TrainingProgressKind.CheckpointWritten"/>, else null.</summary>
        public string? CheckpointPath { get; }
        /// <summary>The text of a <see cref="TrainingProgressKind.Warning"/>, else null.</summary>
        public string? Message { get; internal init; }
    }

    /// <summary>
    /// Trains a model with an optimizer over a data set: shuffled mini-batches, evaluation after
    /// each epoch, optional metrics file and checkpoints, progress reports and cancellation.
    /// Each call of <see cref="Train"/> runs <see cref="TrainerOptions.Epochs"/> more epochs.
    /// </summary>
    /// <example><code>
    /// var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 3 });
    /// var history = await trainer.TrainAsync(train, test: test, progress: new Progress&lt;TrainingProgress&gt;(p => ...), cancellationToken: cts.Token);
    /// </code></example>
    public sealed class Trainer
    {
        readonly Model model;
        readonly Optimizer optimizer;
        readonly TrainerOptions options;
        int running;
        double? referenceLoss;

        /// <summary>A trainer for a model and an optimizer created on that model.</summary>
        /// <param name="model">The model.</param>
        /// <param name="optimizer">The optimizer, created with the model.</param>
        /// <param name="options">The settings (default: <c>new TrainerOptions()</c>); validated here.</param>
        /// <exception cref="ArgumentException">The optimizer was created for other parameters, or a setting is invalid.</exception>
        public Trainer(Model model, Optimizer optimizer, TrainerOptions? options = null)
        {
            this.model = Guard.NotNull(model, nameof(model));
            this.optimizer = Guard.NotNull(optimizer, nameof(optimizer));
            if (!ReferenceEquals(optimizer.Parameters, model.Parameters))
                throw new ArgumentException("the optimizer was created for another model's parameters", nameof(optimizer));
            this.options = options ?? new TrainerOptions();
            this.options.Validate();
        }

        /// <summary>The epochs completed so far (cancelled epochs do not count).</summary>
        public int CompletedEpochs { get; private set; }

        /// <summary>
        /// Trains for <see cref="TrainerOptions.Epochs"/> more epochs on the calling thread.
        /// Cancellation is honoured between steps: the step in progress completes, the model
        /// keeps the parameters of the last completed step, and
        /// <see cref="OperationCanceledException"/> is thrown.
        /// </summary>
        /// <param name="train">The training set.</param>
        /// <param name="validation">Evaluated after each epoch, or null.</param>
        /// <param name="test">Evaluated after each epoch, or null.</param>
        /// <param name="progress">Receives a report after every step, epoch and checkpoint, or null.</param>
        /// <param name="cancellationToken">Stops the run between two steps.</param>
        /// <returns>The metrics of the epochs run.</returns>
        /// <exception cref="InvalidOperationException">A step failed (e.g. the loss became non-finite), or the trainer is already running.</exception>
        public IReadOnlyList<EpochMetrics> Train(Dataset train, Dataset? validation = null, Dataset? test = null,
                                                 IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
        {
            Guard.NotNull(train, nameof(train));
            cancellationToken.ThrowIfCancellationRequested();
            if (Interlocked.Exchange(ref running, 1) == 1)
                throw new InvalidOperationException("this trainer is already running");
            try
            {
                var data = new global::GroupedNewton.TrainingData(train: train.Core, validation: CoreOption.Of(validation?.Core), test: CoreOption.Of(test?.Core));
                var start = CompletedEpochs;
                var coreOptions = options.ToCore(start + options.Epochs, optimizer.Curvature, referenceLoss);
                var onEvent = FuncConvert.FromAction<CoreEvent>(e =>
                {
                    optimizer.SyncOut();
                    if (e is CoreEvent.EpochCompleted) CompletedEpochs++;
                    if (progress is null) return;
                    var report = e switch
                    {
                        CoreEvent.StepCompleted s => new TrainingProgress(TrainingProgressKind.StepCompleted, s.epoch, s.step, s.loss, null, null),
                        CoreEvent.EpochCompleted m => new TrainingProgress(TrainingProgressKind.EpochCompleted, m.Item.Epoch, 0, m.Item.Train.Loss, new EpochMetrics(m.Item), null),
                        CoreEvent.CheckpointWritten c => new TrainingProgress(TrainingProgressKind.CheckpointWritten, CompletedEpochs, 0, double.NaN, null, c.path),
                        CoreEvent.Warning w => new TrainingProgress(TrainingProgressKind.Warning, CompletedEpochs, 0, double.NaN, null, null) { Message = Guard.Notation(w.message) },
                        _ => null,
                    };
                    if (report is not null) Guard.User(() => { progress.Report(report); return 0; });
                });
                optimizer.SyncIn();
                try
                {
                    var result = Guard.Run(() => global::GroupedNewton.Trainer.run(model.Core, optimizer.Core, coreOptions, data, start, onEvent, cancellationToken));
                    // a run cancelled after its last epoch finished is complete: no exception
                    if (CompletedEpochs < start + options.Epochs) cancellationToken.ThrowIfCancellationRequested();
                    return result.Select(m => new EpochMetrics(m)).ToArray();
                }
                finally
                {
                    optimizer.SyncOut();
                }
            }
            finally
            {
                Volatile.Write(ref running, 0);
            }
        }

        /// <summary>Writes a checkpoint (epochs completed, parameters, optimizer state) to a file, atomically.</summary>
        /// <param name="path">The file.</param>
        public void SaveCheckpoint(string path)
        {
            Guard.NotNull(path, nameof(path));
            optimizer.SyncIn();
            var run = new global::GroupedNewton.RunRecord(settings: Microsoft.FSharp.Collections.FSharpList<Tuple<string, string>>.Empty,
                curvaturePosition: CoreOption.OfValue(optimizer.Curvature?.Position), referenceLoss: CoreOption.OfValue(referenceLoss));
            Guard.Run(() => { global::GroupedNewton.Checkpoint.saveRun(path, CompletedEpochs, model.Core, optimizer.Core, run); return 0; });
        }

        /// <summary>Restores a checkpoint written by this trainer (or by <see cref="TrainerOptions.CheckpointFolder"/>)
        /// into the model and the optimizer; the next <see cref="Train"/> continues after its epoch,
        /// on the same batches an uninterrupted run would have seen. Validates the file before changing anything.</summary>
        /// <param name="path">The checkpoint file.</param>
        /// <returns>The number of epochs the checkpoint was written after.</returns>
        /// <exception cref="System.IO.FileNotFoundException">The file does not exist.</exception>
        /// <exception cref="System.IO.InvalidDataException">The file is corrupt or belongs to another model or optimizer.</exception>
        public int LoadCheckpoint(string path)
        {
            Guard.NotNull(path, nameof(path));
            optimizer.SyncIn();
            var info = Guard.Run(() => global::GroupedNewton.Checkpoint.restore(path, model.Core, optimizer.Core, CoreOption.Of(optimizer.Curvature)));
            optimizer.SyncOut();
            CompletedEpochs = info.Epoch;
            if (info.Run.ReferenceLoss is { } r) referenceLoss = r.Value;
            return info.Epoch;
        }

        /// <summary>The latest checkpoint file in a folder written by <see cref="TrainerOptions.CheckpointFolder"/>, or null.</summary>
        /// <param name="folder">The folder.</param>
        public static string? LatestCheckpoint(string folder)
        {
            Guard.NotNull(folder, nameof(folder));
            var latest = Guard.Run(() => global::GroupedNewton.Checkpoint.latest(folder));
            return latest is null ? null : latest.Value;
        }

        /// <summary>
        /// <see cref="Train"/> on a thread-pool thread. Cancellation stops the run between two
        /// steps; the task then ends as cancelled and the model keeps the parameters of the
        /// last completed step.
        /// </summary>
        /// <param name="train">The training set.</param>
        /// <param name="validation">Evaluated after each epoch, or null.</param>
        /// <param name="test">Evaluated after each epoch, or null.</param>
        /// <param name="progress">Receives a report after every step, epoch and checkpoint, or null.</param>
        /// <param name="cancellationToken">Stops the run between two steps.</param>
        /// <returns>The metrics of the epochs run.</returns>
        public Task<IReadOnlyList<EpochMetrics>> TrainAsync(Dataset train, Dataset? validation = null, Dataset? test = null,
                                                            IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
        {
            Guard.NotNull(train, nameof(train));
            return Task.Run(() => Train(train, validation, test, progress, cancellationToken), cancellationToken);
        }
    }
}
