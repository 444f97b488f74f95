/// Building the task of a run: the data (loaded once, shared by every run of a compare) and
/// a model initialised from a seed.
module GroupedNewton.Cli.Tasks

open System
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Settings

/// The data of a task, ready for the trainer.
type TaskData = {
    /// The data set name as resolved ("fashion-mnist-mini" or "synthetic" when the default fell back).
    Dataset: string
    Data: TrainingData
    Objective: Objective
    /// Per-sample input shape.
    SampleShape: int[]
    Classes: int
    /// A line telling where the data came from (and how to get the real one).
    Note: string
}

/// Seed of the synthetic teacher task (fixed: runs with different seeds share the data).
[<Literal>]
let SyntheticDataSeed = 1

/// Default number of synthetic training samples (train + validation).
[<Literal>]
let SyntheticDefaultSamples = 5000

/// The data set actually used: the requested one; else Fashion-MNIST when it is found (in
/// GROUPEDNEWTON_DATA when set, else where the Debian package puts it) or only partly there (then
/// the loader refuses it, naming what is missing); else the bundled fashion-mnist-mini subset
/// when it is found; else the synthetic task.
let resolveDataset (task: TaskSettings) =
    let explicitFolder = Environment.GetEnvironmentVariable Datasets.EnvironmentVariable
    let fromEnv = not (String.IsNullOrWhiteSpace explicitFolder)

    let install =
        sprintf
            "To train on the whole of Fashion-MNIST, run `apt-get install dataset-fashion-mnist` or set %s to a folder holding its IDX files."
            Datasets.EnvironmentVariable

    let where =
        if fromEnv then sprintf "in %s (%s)" explicitFolder Datasets.EnvironmentVariable else "installed"

    match task.Dataset with
    | Some d -> d, None
    | None when Datasets.isAvailable "fashion-mnist" ->
        let from = Datasets.locate "fashion-mnist"

        "fashion-mnist",
        Some(
            if fromEnv then
                sprintf "no --dataset given: using Fashion-MNIST from %s (%s)" from Datasets.EnvironmentVariable
            else
                sprintf "no --dataset given: using Fashion-MNIST from %s" from
        )
    | None when Datasets.isPartlyPresent "fashion-mnist" ->
        // a partial copy is an error to report (Datasets.locate names what is missing), not a reason to switch
        "fashion-mnist", None
    | None when Datasets.isAvailable Datasets.FashionMnistMini ->
        Datasets.FashionMnistMini,
        Some(
            sprintf
                "no --dataset given and Fashion-MNIST is not %s: using fashion-mnist-mini, the class-balanced subset of it that ships with the tool, from %s. %s"
                where
                (Datasets.locate Datasets.FashionMnistMini)
                install
        )
    | None ->
        "synthetic",
        Some(
            sprintf
                "no --dataset given, Fashion-MNIST is not %s and fashion-mnist-mini is not found: using the synthetic teacher task. %s"
                where
                install
        )

let private syntheticShape (model: string) =
    match model with
    | "vgg11" -> [| 3; 32; 32 |]
    | _ -> [| 1; 28; 28 |]

let private take (n: int64) (d: Dataset) = if int64 d.Count <= n then d else Dataset.subset (Array.init (int n) id) d

/// Bytes of memory this process may use (the GC's view of the machine or container).
let private availableBytes () = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes

let private gb (bytes: int64) = float bytes / 1e9

/// Refuses a size that cannot be allocated: more elements than an array holds, or more
/// bytes than the machine has. The message names the option.
let checkSize (option: string) (value: int64) (elements: int64) (bytesPerElement: int64) =
    let bytes = elements * bytesPerElement

    if elements > int64 Int32.MaxValue || elements < 0L then
        Fail.usage "%s %d is too large: it needs %d elements in one array (at most %d)" option value elements Int32.MaxValue

    if bytes > availableBytes () then
        Fail.usage "%s %d is too large: it needs %.1f GB, and %.1f GB are available" option value (gb bytes) (gb (availableBytes ()))

/// Checks, before any work, that the sizes the task asks for can be allocated.
let checkSizes (task: TaskSettings) =
    let sample = if task.Model = "vgg11" then 3L * 32L * 32L else 784L
    let width = if task.Dtype = Dtype.Float64 then 8L else 4L

    match task.Samples with
    | Some n -> checkSize "--samples" (int64 n) ((int64 n + max 100L (int64 n / 5L)) * sample) 4L
    | None -> ()

    if task.Model = "mlp" then
        let sizes = sample :: (task.Hidden |> List.map int64) @ [ 10L ]
        let weights = List.pairwise sizes |> List.map (fun (a, b) -> a * b)
        let largest = List.max weights
        let hidden = String.Join(",", task.Hidden)

        if largest > int64 Int32.MaxValue then
            Fail.usage
                "--hidden %s is too large: a weight matrix of %d elements does not fit one array (at most %d)"
                hidden
                largest
                Int32.MaxValue
        // parameters, gradient, momentum and an update: four copies
        let bytes = 4L * (List.sum weights + List.sum (List.tail sizes)) * width

        if bytes > availableBytes () then
            Fail.usage
                "--hidden %s is too large: the model needs %.1f GB, and %.1f GB are available"
                hidden
                (gb bytes)
                (gb (availableBytes ()))
        // one batch of activations of the widest layer
        checkSize "--batch-size" (int64 task.BatchSize) (int64 task.BatchSize * List.max sizes) width

let private flattenTo784 (d: Dataset) =
    if d.SampleSize <> 784 then
        Fail.usage
            "--model autoencoder needs 784 input features (28×28 images); %s has samples of shape [%s]"
            d.Name
            (String.Join("; ", d.SampleShape))

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
            | Some n -> take (int64 n) train, take (int64 (max 100 (n / 5))) test
            | None -> train, test

    let train, test =
        if task.Model = "autoencoder" then
            let f d = if name = "synthetic" then squash (flattenTo784 d) else flattenTo784 d
            f train, f test
        else
            train, test

    let objective =
        if task.Model = "autoencoder" then Objective.Reconstruction else Objective.Classification

    let train, test =
        // real images are standardised with the training set's per-channel statistics
        if objective = Objective.Classification && name <> "synthetic" then
            let stats = Dataset.channelStats train
            Dataset.normalize stats train, Dataset.normalize stats test
        else
            train, test

    let nValidation = max 1 (train.Count / 10)

    if train.Count < 2 then
        Fail.usage "--samples: %d training samples are too few for a train/validation split" train.Count

    let train, validation = Dataset.splitAt nValidation train

    let train =
        match task.MaxSteps with
        | Some m -> take (int64 m * int64 task.BatchSize) train
        | None -> train
    // the test set must fit the model the training set defines
    if test.SampleShape <> train.SampleShape then
        raise (
            DataException(
                sprintf
                    "%s: the test samples have shape [%s] but the training samples [%s]"
                    test.Name
                    (String.Join("; ", test.SampleShape))
                    (String.Join("; ", train.SampleShape))
            )
        )

    let classes = train.Classes

    let source =
        match name with
        | "synthetic" -> sprintf "synthetic teacher task (seed %d)" SyntheticDataSeed
        | n -> n

    {
        Dataset = name
        Data = { Train = train; Validation = Some validation; Test = Some test }
        Objective = objective
        SampleShape = train.SampleShape
        Classes = classes
        Note =
            (match note with
             | Some n -> n + "\n"
             | None -> "")
            + sprintf
                "data: %s, %d train / %d validation / %d test samples of shape [%s]"
                source
                train.Count
                validation.Count
                test.Count
                (String.Join("; ", train.SampleShape))
    }

/// The model of a task, initialised from `seed` in the task's dtype.
let model (task: TaskSettings) (data: TaskData) (seed: int) : Model =
    let pytorch = task.Init = "pytorch"
    let init = { (if pytorch then Init.pytorch seed else Init.reference seed) with Dtype = task.Dtype }
    let act usual = defaultArg task.Activation usual
    let shape = data.SampleShape

    match task.Model with
    | "mlp" ->
        let d = Array.fold (*) 1 shape
        Models.mlpOn shape (d :: task.Hidden @ [ max 2 data.Classes ]) (act Activation.Tanh) init
    | "lenet" ->
        match shape with
        | [| c; p; q |] when p = q && (p = 28 || p = 32) -> Models.lenet5With (act Activation.Tanh) c p init
        | _ ->
            Fail.usage "--model lenet needs images of 28×28 or 32×32 pixels; the data has samples of shape [%s]" (String.Join("; ", shape))
    | "vgg11" ->
        if shape <> [| 3; 32; 32 |] then
            Fail.usage
                "--model vgg11 needs 3×32×32 images (cifar10 or synthetic); the data has samples of shape [%s]"
                (String.Join("; ", shape))

        Models.vgg11With (act Activation.Elu) (if pytorch then init else { init with Scheme = InitScheme.ScaledNormal(Math.Sqrt 2.0, 0.0) })
    | "autoencoder" -> Models.mnistAutoencoderWith (act Activation.Relu) init
    | other -> Fail.usage "--model: unknown value '%s'" other

/// A short description of a model: name, parameter count, layers.
let describe (m: Model) = sprintf "model %s: %d parameters in %d tensors" m.Name m.Parameters.NumelTotal m.Parameters.Count
