/// What the commands run, as plain records built from the parsed command line, with every
/// value checked (errors name the option and the bad value).
module GroupedNewton.Cli.Settings

open System
open Argu
open GroupedNewton
open GroupedNewton.Cli.Arguments

/// Hyperparameters; None means the optimizer's own default.
type Hyper =
    { Lr: float option
      Momentum: float option
      Damping: float option
      LambdaInt: float option
      Period: int option
      Rho: float option
      Beta2: float option
      WeightDecay: float option }

    static member Defaults =
        { Lr = None; Momentum = None; Damping = None; LambdaInt = None; Period = None; Rho = None; Beta2 = None; WeightDecay = None }

/// The task: model, data and how it is cut into batches.
type TaskSettings =
    { Model: string
      /// None: Fashion-MNIST when installed, else synthetic.
      Dataset: string option
      Partition: string
      Hidden: int list
      Epochs: int
      BatchSize: int
      MaxSteps: int option
      Samples: int option
      Dtype: Dtype
      Threads: int option }

    static member Defaults =
        { Model = "mlp"; Dataset = None; Partition = "canonical"; Hidden = [ 1024; 200; 100 ]; Epochs = 2; BatchSize = 100
          MaxSteps = None; Samples = None; Dtype = Dtype.Float32; Threads = None }

type TrainSettings =
    { Task: TaskSettings
      Optimizer: string
      Hyper: Hyper
      Seed: int
      Out: string option
      Resume: bool }

type CompareSettings =
    { Task: TaskSettings
      Optimizers: string list
      Hyper: Hyper
      Seeds: int list
      Out: string }

type SummarySettings =
    { Task: TaskSettings
      Checkpoint: string option
      Seed: int
      Damping: float option
      LambdaInt: float option
      Out: string option }

let models = [ "mlp"; "lenet"; "vgg11"; "autoencoder" ]
let datasets = [ "fashion-mnist"; "mnist"; "cifar10"; "synthetic" ]

let private oneOf (option: string) (known: string list) (value: string) =
    let v = value.Trim().ToLowerInvariant()
    if List.contains v known then v
    else Fail.usage "%s: unknown value '%s' (expected one of: %s)" option value (String.Join(", ", known))

let private positive (option: string) (v: int) =
    if v < 1 then Fail.usage "%s must be at least 1, got %d" option v
    v

let private nonNegative (option: string) (v: float) =
    if not (Double.IsFinite v) || v < 0.0 then Fail.usage "%s must be a finite non-negative number, got %g" option v
    v

/// A comma-separated list of integers, e.g. "1024,200,100".
let intList (option: string) (text: string) =
    let parts = text.Split([| ',' |], StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
    if parts.Length = 0 then Fail.usage "%s: expected a comma-separated list of integers, got '%s'" option text
    parts
    |> Array.map (fun p ->
        match Int32.TryParse p with
        | true, v -> v
        | _ -> Fail.usage "%s: '%s' is not an integer (in '%s')" option p text)
    |> List.ofArray

let dtypeOf (text: string) =
    match text.Trim().ToLowerInvariant() with
    | "float32" | "f32" | "single" -> Dtype.Float32
    | "float64" | "f64" | "double" -> Dtype.Float64
    | _ -> Fail.usage "--dtype: unknown value '%s' (expected float32 or float64)" text

let private checkPartition (name: string) =
    let n = name.Trim().ToLowerInvariant()
    let numbered (prefix: string) = n.StartsWith prefix && fst (Int32.TryParse(n.Substring prefix.Length))
    if List.contains n [ "canonical"; "trivial"; "weights-biases"; "wb"; "per-layer"; "layers" ] || numbered "blocks-" || numbered "alternate-" then n
    else Fail.usage "--partition: unknown value '%s' (expected canonical, trivial, weights-biases, per-layer, blocks-N or alternate-N)" name

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

let private applyShared (task: TaskSettings, hyper: Hyper) (s: Shared) =
    match s with
    | SModel m -> { task with Model = oneOf "--model" models m }, hyper
    | SDataset d -> { task with Dataset = Some(oneOf "--dataset" datasets (if d = "fashionmnist" then "fashion-mnist" else d)) }, hyper
    | SPartition p -> { task with Partition = checkPartition p }, hyper
    | SHidden h -> { task with Hidden = intList "--hidden" h |> List.map (positive "--hidden") }, hyper
    | SEpochs e -> { task with Epochs = positive "--epochs" e }, hyper
    | SBatch b -> { task with BatchSize = positive "--batch-size" b }, hyper
    | SMaxSteps m -> { task with MaxSteps = Some(positive "--max-steps" m) }, hyper
    | SSamples n -> { task with Samples = Some(positive "--samples" n) }, hyper
    | SThreads t -> { task with Threads = Some(positive "--threads" t) }, hyper
    | SDtype d -> { task with Dtype = dtypeOf d }, hyper
    | SLr v -> task, { hyper with Lr = Some(nonNegative "--lr" v) }
    | SMomentum v ->
        if not (v >= 0.0 && v < 1.0) then Fail.usage "--momentum must be in [0, 1), got %g" v
        task, { hyper with Momentum = Some v }
    | SDamping v -> task, { hyper with Damping = Some(nonNegative "--damping" v) }
    | SLambdaInt v -> task, { hyper with LambdaInt = Some(nonNegative "--lambda-int" v) }
    | SPeriod v -> task, { hyper with Period = Some(positive "--period" v) }
    | SRho v ->
        if not (v > 0.0 && Double.IsFinite v) then Fail.usage "--rho must be positive, got %g" v
        task, { hyper with Rho = Some v }
    | SBeta2 v ->
        if not (v >= 0.0 && v < 1.0) then Fail.usage "--beta2 must be in [0, 1), got %g" v
        task, { hyper with Beta2 = Some v }
    | SWeightDecay v -> task, { hyper with WeightDecay = Some(nonNegative "--weight-decay" v) }

let private optimizerName (n: string) = n.Trim().ToLowerInvariant()

let ofTrain (r: ParseResults<TrainArgs>) : TrainSettings =
    let mutable acc = TaskSettings.Defaults, Hyper.Defaults
    let mutable optimizer = "grouped-newton"
    let mutable seed = 0
    let mutable out = None
    let mutable resume = false
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
            | TrainArgs.Optimizer o -> optimizer <- optimizerName o; None
            | TrainArgs.Seed s -> seed <- s; None
            | TrainArgs.Out o -> out <- Some o; None
            | TrainArgs.Resume -> resume <- true; None
        shared |> Option.iter (fun s -> acc <- applyShared acc s)
    let task, hyper = acc
    { Task = task; Optimizer = optimizer; Hyper = hyper; Seed = seed; Out = out; Resume = resume }

let ofCompare (r: ParseResults<CompareArgs>) : CompareSettings =
    let mutable acc = TaskSettings.Defaults, Hyper.Defaults
    let mutable optimizers = [ "sgd"; "adam"; "grouped-newton" ]
    let mutable seeds = [ 0; 1 ]
    let mutable out = "runs/compare"
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
            | CompareArgs.Optimizers o ->
                let names = o.Split([| ',' |], StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> Array.map optimizerName |> List.ofArray
                if names.IsEmpty then Fail.usage "--optimizers: expected a comma-separated list of optimizers, got '%s'" o
                if (List.distinct names).Length <> names.Length then Fail.usage "--optimizers: '%s' names an optimizer twice" o
                optimizers <- names
                None
            | CompareArgs.Seeds s ->
                let xs = intList "--seeds" s
                if (List.distinct xs).Length <> xs.Length then Fail.usage "--seeds: '%s' names a seed twice" s
                seeds <- xs
                None
            | CompareArgs.Out o -> out <- o; None
        shared |> Option.iter (fun s -> acc <- applyShared acc s)
    let task, hyper = acc
    { Task = task; Optimizers = optimizers; Hyper = hyper; Seeds = seeds; Out = out }

let ofSummary (r: ParseResults<SummaryArgs>) : SummarySettings =
    let mutable acc = TaskSettings.Defaults, Hyper.Defaults
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
            | SummaryArgs.Checkpoint c -> checkpoint <- Some c; None
            | SummaryArgs.Seed s -> seed <- s; None
            | SummaryArgs.Out o -> out <- Some o; None
        shared |> Option.iter (fun s -> acc <- applyShared acc s)
    let task, hyper = acc
    { Task = task; Checkpoint = checkpoint; Seed = seed; Damping = hyper.Damping; LambdaInt = hyper.LambdaInt; Out = out }
