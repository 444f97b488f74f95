/// What the commands run, as plain records built from the parsed command line. Values that
/// belong to an optimizer are checked by the optimizer's own Validate() (OptimizerFactory);
/// the settings of the task (sizes, counts, names) are checked here, with errors naming
/// the option and the bad value.
module GroupedNewton.Cli.Settings

open System
open Argu
open GroupedNewton
open GroupedNewton.Cli.Arguments

/// Hyperparameters by the catalog's names; None means the optimizer's own default.
type Hyper = OptimizerOverrides

/// The task: model, data and how it is cut into batches.
type TaskSettings = {
    Model: string
    /// None: Fashion-MNIST when installed, else the bundled fashion-mnist-mini (else synthetic).
    Dataset: string option
    Partition: string
    Hidden: int list
    /// None: the model's usual activation (tanh for the MLP and LeNet-5, ELU for VGG-11,
    /// ReLU for the autoencoder).
    Activation: Activation option
    /// "reference" (N(0, 1/fan-in) weights, zero biases; VGG-11 σ_w = √2) or "pytorch".
    Init: string
    Epochs: int
    BatchSize: int
    MaxSteps: int option
    Samples: int option
    Dtype: Dtype
    Threads: int option
    /// The options given on the command line (for warnings about options that do not apply).
    Given: string list
} with

    static member Defaults = {
        Model = "mlp"
        Dataset = None
        Partition = "canonical"
        Hidden = [ 1024; 200; 100 ]
        Activation = None
        Init = "reference"
        Epochs = 2
        BatchSize = 100
        MaxSteps = None
        Samples = None
        Dtype = Dtype.Float32
        Threads = None
        Given = []
    }

/// How training runs are guarded and where they may write.
type RunPolicy = {
    /// Replace an earlier run in the output folder.
    Overwrite: bool
    /// The divergence guard's factor (None: off).
    DivergenceFactor: float option
} with

    static member Defaults = { Overwrite = false; DivergenceFactor = TrainerOptions.Defaults.DivergenceFactor }

type TrainSettings = {
    Task: TaskSettings
    Optimizer: string
    Hyper: Hyper
    Seed: int
    Out: string option
    Resume: bool
    Policy: RunPolicy
}

type CompareSettings = {
    Task: TaskSettings
    Optimizers: string list
    Hyper: Hyper
    Seeds: int list
    Out: string
    Policy: RunPolicy
}

type SummarySettings = {
    Task: TaskSettings
    Checkpoint: string option
    Seed: int
    Damping: float option
    LambdaInt: float option
    Out: string option
}

let models = [ "mlp"; "lenet"; "vgg11"; "autoencoder" ]
let datasets = [ "fashion-mnist"; "fashion-mnist-mini"; "mnist"; "cifar10"; "synthetic" ]
let activations = [ "tanh"; "relu"; "elu"; "sigmoid"; "softplus" ]
let inits = [ "reference"; "pytorch" ]

/// The most threads --threads accepts: four per core (more only slows the kernels down and
/// can exhaust the process's resources).
let maxThreads () = max 64 (4 * Environment.ProcessorCount)

let private oneOf (option: string) (known: string list) (value: string) =
    let v = value.Trim().ToLowerInvariant()

    if List.contains v known then
        v
    else
        Fail.usage "%s: unknown value '%s' (expected one of: %s)" option value (String.Join(", ", known))

let private positive (option: string) (v: int) =
    if v < 1 then
        Fail.usage "%s must be at least 1, got %d" option v

    v

/// A comma-separated list of integers, e.g. "1024,200,100"; an empty entry is refused.
let intList (option: string) (text: string) =
    let parts = text.Split(',', StringSplitOptions.TrimEntries)

    if text.Trim() = "" then
        Fail.usage "%s: expected a comma-separated list of integers, got '%s'" option text

    parts
    |> Array.map (fun p ->
        if p = "" then
            Fail.usage "%s: '%s' has an empty entry" option text

        match Int32.TryParse p with
        | true, v -> v
        | _ -> Fail.usage "%s: '%s' is not an integer (in '%s')" option p text)
    |> List.ofArray

let dtypeOf (text: string) =
    match text.Trim().ToLowerInvariant() with
    | "float32"
    | "f32"
    | "single" -> Dtype.Float32
    | "float64"
    | "f64"
    | "double" -> Dtype.Float64
    | _ -> Fail.usage "--dtype: unknown value '%s' (expected float32 or float64)" text

let activationOf (text: string) =
    match oneOf "--activation" activations text with
    | "tanh" -> Activation.Tanh
    | "relu" -> Activation.Relu
    | "elu" -> Activation.Elu
    | "sigmoid" -> Activation.Sigmoid
    | _ -> Activation.Softplus

let private checkPartition (name: string) =
    try
        Partition.checkName name
    with :? PartitionException as e ->
        Fail.usage "--partition: %s" e.Message

let private finite (option: string) (v: float) =
    if not (Double.IsFinite v) then
        Fail.usage "%s must be a finite number, got %g" option v

    v

let private divergenceFactor (v: float) =
    if v = 0.0 then None
    elif Double.IsFinite v && v > 1.0 then Some v
    else Fail.usage "--divergence-factor must be 0 (off) or a finite number above 1, got %g" v

/// The settings that several commands share, as one update per recognised argument.
type private Shared =
    | SModel of string
    | SDataset of string
    | SPartition of string
    | SHidden of string
    | SEpochs of int
    | SBatch of int
    | SMaxSteps of int
    | SSamples of int
    | SThreads of int
    | SDtype of string
    | SLr of float
    | SMomentum of float
    | SDamping of float
    | SLambdaInt of float
    | SPeriod of int
    | SRho of float
    | SBeta2 of float
    | SWeightDecay of float
    | SActivation of string
    | SInit of string

let private applyShared (task: TaskSettings, hyper: Hyper) (s: Shared) =
    match s with
    | SModel m -> { task with Model = oneOf "--model" models m }, hyper
    | SDataset d ->
        {
            task with
                Dataset = Some(oneOf "--dataset" datasets (if d = "fashionmnist" then "fashion-mnist" else d))
        },
        hyper
    | SPartition p -> { task with Partition = checkPartition p; Given = "--partition" :: task.Given }, hyper
    | SHidden h ->
        {
            task with
                Hidden = intList "--hidden" h |> List.map (positive "--hidden")
                Given = "--hidden" :: task.Given
        },
        hyper
    | SEpochs e -> { task with Epochs = positive "--epochs" e }, hyper
    | SBatch b -> { task with BatchSize = positive "--batch-size" b }, hyper
    | SMaxSteps m -> { task with MaxSteps = Some(positive "--max-steps" m) }, hyper
    | SSamples n -> { task with Samples = Some(positive "--samples" n) }, hyper
    | SThreads t ->
        let t = positive "--threads" t

        if t > maxThreads () then
            Fail.usage
                "--threads must be at most %d (four per core on this machine's %d cores), got %d"
                (maxThreads ())
                Environment.ProcessorCount
                t

        { task with Threads = Some t }, hyper
    | SDtype d -> { task with Dtype = dtypeOf d }, hyper
    | SActivation a -> { task with Activation = Some(activationOf a) }, hyper
    | SInit i -> { task with Init = oneOf "--init" inits i }, hyper
    // optimizer values: only finiteness here, ranges are the optimizer's Validate()
    | SLr v -> task, { hyper with LearningRate = Some(finite "--lr" v) }
    | SMomentum v -> task, { hyper with Momentum = Some(finite "--momentum" v) }
    | SDamping v -> task, { hyper with Damping = Some(finite "--damping" v) }
    | SLambdaInt v -> task, { hyper with LambdaInt = Some(finite "--lambda-int" v) }
    | SPeriod v -> task, { hyper with Period = Some v }
    | SRho v -> task, { hyper with Rho = Some(finite "--rho" v) }
    | SBeta2 v -> task, { hyper with Beta2 = Some(finite "--beta2" v) }
    | SWeightDecay v -> task, { hyper with WeightDecay = Some(finite "--weight-decay" v) }

let private optimizerName (n: string) = n.Trim().ToLowerInvariant()

/// An output folder: not empty, not an existing file, not below a file.
let checkOut (path: string) =
    if String.IsNullOrWhiteSpace path then
        Fail.usage "--out: the folder name is empty"

    if path.IndexOfAny(IO.Path.GetInvalidPathChars()) >= 0 then
        Fail.usage "--out: '%s' holds a character that cannot be in a path" path

    let full = IO.Path.GetFullPath path

    if IO.File.Exists full then
        Fail.usage "--out: '%s' is a file, not a folder" path

    let rec firstFileAbove (p: string | null) =
        match p with
        | null -> None
        | p when IO.File.Exists p -> Some p
        | p when IO.Directory.Exists p -> None
        | p -> firstFileAbove (IO.Path.GetDirectoryName p)

    match firstFileAbove (IO.Path.GetDirectoryName full) with
    | Some f -> Fail.usage "--out: '%s' is below '%s', which is a file, not a folder" path f
    | None -> path

let ofTrain (r: ParseResults<TrainArgs>) : TrainSettings =
    let mutable acc = TaskSettings.Defaults, OptimizerOverrides.None
    let mutable optimizer = "grouped-newton"
    let mutable seed = 0
    let mutable out = None
    let mutable resume = false
    let mutable policy = RunPolicy.Defaults

    for a in r.GetAllResults() do
        let shared =
            match a with
            | TrainArgs.Model m -> Some(SModel m)
            | TrainArgs.Dataset d -> Some(SDataset d)
            | TrainArgs.Partition p -> Some(SPartition p)
            | TrainArgs.Hidden h -> Some(SHidden h)
            | TrainArgs.Epochs e -> Some(SEpochs e)
            | TrainArgs.Batch_Size b -> Some(SBatch b)
            | TrainArgs.Max_Steps m -> Some(SMaxSteps m)
            | TrainArgs.Samples n -> Some(SSamples n)
            | TrainArgs.Threads t -> Some(SThreads t)
            | TrainArgs.Dtype d -> Some(SDtype d)
            | TrainArgs.Lr v -> Some(SLr v)
            | TrainArgs.Momentum v -> Some(SMomentum v)
            | TrainArgs.Damping v -> Some(SDamping v)
            | TrainArgs.Lambda_Int v -> Some(SLambdaInt v)
            | TrainArgs.Period v -> Some(SPeriod v)
            | TrainArgs.Rho v -> Some(SRho v)
            | TrainArgs.Beta2 v -> Some(SBeta2 v)
            | TrainArgs.Weight_Decay v -> Some(SWeightDecay v)
            | TrainArgs.Activation v -> Some(SActivation v)
            | TrainArgs.Init v -> Some(SInit v)
            | TrainArgs.Optimizer o ->
                optimizer <- optimizerName o
                None
            | TrainArgs.Seed s ->
                seed <- s
                None
            | TrainArgs.Out o ->
                out <- Some(checkOut o)
                None
            | TrainArgs.Resume ->
                resume <- true
                None
            | TrainArgs.Overwrite ->
                policy <- { policy with Overwrite = true }
                None
            | TrainArgs.Divergence_Factor f ->
                policy <- { policy with DivergenceFactor = divergenceFactor f }
                None

        shared |> Option.iter (fun s -> acc <- applyShared acc s)

    let task, hyper = acc

    if resume && policy.Overwrite then
        Fail.usage "--resume and --overwrite exclude each other: continue the run in --out, or replace it"

    {
        Task = task
        Optimizer = optimizer
        Hyper = hyper
        Seed = seed
        Out = out
        Resume = resume
        Policy = policy
    }

let ofCompare (r: ParseResults<CompareArgs>) : CompareSettings =
    let mutable acc = TaskSettings.Defaults, OptimizerOverrides.None
    let mutable optimizers = [ "sgd"; "adam"; "grouped-newton" ]
    let mutable seeds = [ 0; 1 ]
    let mutable out = "runs/compare"
    let mutable policy = RunPolicy.Defaults

    for a in r.GetAllResults() do
        let shared =
            match a with
            | CompareArgs.Model m -> Some(SModel m)
            | CompareArgs.Dataset d -> Some(SDataset d)
            | CompareArgs.Partition p -> Some(SPartition p)
            | CompareArgs.Hidden h -> Some(SHidden h)
            | CompareArgs.Epochs e -> Some(SEpochs e)
            | CompareArgs.Batch_Size b -> Some(SBatch b)
            | CompareArgs.Max_Steps m -> Some(SMaxSteps m)
            | CompareArgs.Samples n -> Some(SSamples n)
            | CompareArgs.Threads t -> Some(SThreads t)
            | CompareArgs.Dtype d -> Some(SDtype d)
            | CompareArgs.Lr v -> Some(SLr v)
            | CompareArgs.Momentum v -> Some(SMomentum v)
            | CompareArgs.Damping v -> Some(SDamping v)
            | CompareArgs.Lambda_Int v -> Some(SLambdaInt v)
            | CompareArgs.Period v -> Some(SPeriod v)
            | CompareArgs.Rho v -> Some(SRho v)
            | CompareArgs.Beta2 v -> Some(SBeta2 v)
            | CompareArgs.Weight_Decay v -> Some(SWeightDecay v)
            | CompareArgs.Activation v -> Some(SActivation v)
            | CompareArgs.Init v -> Some(SInit v)
            | CompareArgs.Overwrite ->
                policy <- { policy with Overwrite = true }
                None
            | CompareArgs.Divergence_Factor f ->
                policy <- { policy with DivergenceFactor = divergenceFactor f }
                None
            | CompareArgs.Optimizers o ->
                let names =
                    o.Split([| ',' |], StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
                    |> Array.map optimizerName
                    |> List.ofArray

                if names.IsEmpty then
                    Fail.usage "--optimizers: expected a comma-separated list of optimizers, got '%s'" o

                if (List.distinct names).Length <> names.Length then
                    Fail.usage "--optimizers: '%s' names an optimizer twice" o

                optimizers <- names
                None
            | CompareArgs.Seeds s ->
                let xs = intList "--seeds" s

                if (List.distinct xs).Length <> xs.Length then
                    Fail.usage "--seeds: '%s' names a seed twice" s

                seeds <- xs
                None
            | CompareArgs.Out o ->
                out <- checkOut o
                None

        shared |> Option.iter (fun s -> acc <- applyShared acc s)

    let task, hyper = acc
    { Task = task; Optimizers = optimizers; Hyper = hyper; Seeds = seeds; Out = out; Policy = policy }

let ofSummary (r: ParseResults<SummaryArgs>) : SummarySettings =
    let mutable acc = TaskSettings.Defaults, OptimizerOverrides.None
    let mutable checkpoint = None
    let mutable seed = 0
    let mutable out = None

    for a in r.GetAllResults() do
        let shared =
            match a with
            | SummaryArgs.Model m -> Some(SModel m)
            | SummaryArgs.Dataset d -> Some(SDataset d)
            | SummaryArgs.Partition p -> Some(SPartition p)
            | SummaryArgs.Hidden h -> Some(SHidden h)
            | SummaryArgs.Batch_Size b -> Some(SBatch b)
            | SummaryArgs.Samples n -> Some(SSamples n)
            | SummaryArgs.Threads t -> Some(SThreads t)
            | SummaryArgs.Dtype d -> Some(SDtype d)
            | SummaryArgs.Damping v -> Some(SDamping v)
            | SummaryArgs.Lambda_Int v -> Some(SLambdaInt v)
            | SummaryArgs.Activation v -> Some(SActivation v)
            | SummaryArgs.Init v -> Some(SInit v)
            | SummaryArgs.Checkpoint c ->
                checkpoint <- Some c
                None
            | SummaryArgs.Seed s ->
                seed <- s
                None
            | SummaryArgs.Out o ->
                out <- Some(checkOut o)
                None

        shared |> Option.iter (fun s -> acc <- applyShared acc s)

    let task, hyper = acc

    {
        Task = task
        Checkpoint = checkpoint
        Seed = seed
        Damping = hyper.Damping
        LambdaInt = hyper.LambdaInt
        Out = out
    }
