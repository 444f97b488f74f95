/// Building the task of a run: the data (loaded once, shared by every run of a compare) and
/// a model initialised from a seed.
module GroupedNewton.Cli.Tasks

open System
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Settings

/// The data of a task, ready for the trainer.
type TaskData =
    { /// The data set name as resolved ("synthetic" when the default fell back).
      Dataset: string
      Data: TrainingData
      Objective: Objective
      /// Per-sample input shape.
      SampleShape: int[]
      Classes: int
      /// A line telling where the data came from (and how to get the real one).
      Note: string }

/// Seed of the synthetic teacher task (fixed: runs with different seeds share the data).
[<Literal>]
let SyntheticDataSeed = 1

/// Default number of synthetic training samples (train + validation).
[<Literal>]
let SyntheticDefaultSamples = 5000

/// The data set actually used: the requested one, or Fashion-MNIST when installed, else
/// the synthetic task.
let resolveDataset (task: TaskSettings) =
    match task.Dataset with
    | Some d -> d, None
    | None when Datasets.isAvailable "fashion-mnist" ->
        "fashion-mnist", Some(sprintf "no --dataset given: using Fashion-MNIST from %s" (Datasets.locate "fashion-mnist"))
    | None ->
        "synthetic",
        Some(sprintf "no --dataset given and Fashion-MNIST is not installed: using the synthetic teacher task. To train on Fashion-MNIST, run `apt-get install dataset-fashion-mnist` or set %s to a folder holding its IDX files."
                 Datasets.EnvironmentVariable)

let private syntheticShape (model: string) =
    match model with
    | "vgg11" -> [| 3; 32; 32 |]
    | _ -> [| 1; 28; 28 |]

let private take (n: int) (d: Dataset) = if d.Count <= n then d else Dataset.subset (Array.init n id) d

let private flattenTo784 (d: Dataset) =
    if d.SampleSize <> 784 then
        Fail.usage "--model autoencoder needs 784 input features (28×28 images); %s has samples of shape [%s]" d.Name (String.Join("; ", d.SampleShape))
    Dataset.create d.Name [| 784 |] d.Samples d.Targets

/// Squashes synthetic N(0, 1) inputs into (0, 1) so they can be reconstruction targets.
let private squash (d: Dataset) =
    Dataset.create d.Name d.SampleShape (d.Samples |> Array.map (fun v -> float32 (1.0 / (1.0 + Math.Exp(-float v))))) d.Targets

/// Loads (or generates) the data of a task: train, validation (the last tenth of the
/// training samples, a fixed split) and test.
let load (task: TaskSettings) : TaskData =
    let name, note = resolveDataset task
    let train, test =
        match name with
        | "synthetic" ->
            let n = defaultArg task.Samples SyntheticDefaultSamples
            let nTest = max 100 (n / 5)
            let all = Synthetic.teacherClassification SyntheticDataSeed (n + nTest) (syntheticShape task.Model) 10
            Dataset.splitAt nTest all
        | other ->
            let train, test = Datasets.load other
            match task.Samples with
            | Some n -> take n train, take (max 100 (n / 5)) test
            | None -> train, test
    let train, test =
        if task.Model = "autoencoder" then
            let f d = if name = "synthetic" then squash (flattenTo784 d) else flattenTo784 d
            f train, f test
        else train, test
    let objective = if task.Model = "autoencoder" then Objective.Reconstruction else Objective.Classification
    let train, test =
        // real images are standardised with the training set's per-channel statistics
        if objective = Objective.Classification && name <> "synthetic" then
            let stats = Dataset.channelStats train
            Dataset.normalize stats train, Dataset.normalize stats test
        else train, test
    let nValidation = max 1 (train.Count / 10)
    if train.Count < 2 then Fail.usage "--samples: %d training samples are too few for a train/validation split" train.Count
    let train, validation = Dataset.splitAt nValidation train
    let train =
        match task.MaxSteps with
        | Some m -> take (m * task.BatchSize) train
        | None -> train
    let classes = train.Classes
    let source = match name with "synthetic" -> sprintf "synthetic teacher task (seed %d)" SyntheticDataSeed | n -> n
    { Dataset = name
      Data = { Train = train; Validation = Some validation; Test = Some test }
      Objective = objective
      SampleShape = train.SampleShape
      Classes = classes
      Note =
        (match note with Some n -> n + "\n" | None -> "")
        + sprintf "data: %s, %d train / %d validation / %d test samples of shape [%s]"
              source train.Count validation.Count test.Count (String.Join("; ", train.SampleShape)) }

/// The model of a task, initialised from `seed` in the task's dtype.
let model (task: TaskSettings) (data: TaskData) (seed: int) : Model =
    let init = { Init.reference seed with Dtype = task.Dtype }
    let shape = data.SampleShape
    match task.Model with
    | "mlp" ->
        let d = Array.fold (*) 1 shape
        Models.mlpOn shape (d :: task.Hidden @ [ max 2 data.Classes ]) Activation.Tanh init
    | "lenet" ->
        match shape with
        | [| c; p; q |] when p = q && (p = 28 || p = 32) -> Models.lenet5 c p init
        | _ -> Fail.usage "--model lenet needs images of 28×28 or 32×32 pixels; the data has samples of shape [%s]" (String.Join("; ", shape))
    | "vgg11" ->
        if shape <> [| 3; 32; 32 |] then
            Fail.usage "--model vgg11 needs 3×32×32 images (cifar10 or synthetic); the data has samples of shape [%s]" (String.Join("; ", shape))
        Models.vgg11 { init with Scheme = InitScheme.ScaledNormal(Math.Sqrt 2.0, 0.0) }
    | "autoencoder" -> Models.mnistAutoencoder init
    | other -> Fail.usage "--model: unknown value '%s'" other

/// A short description of a model: name, parameter count, layers.
let describe (m: Model) =
    sprintf "model %s: %d parameters in %d tensors" m.Name m.Parameters.NumelTotal m.Parameters.Count
