namespace GroupedNewton.Data

open System
open GroupedNewton

/// A problem with a data file or a data set on disk (missing, wrong format, truncated,
/// inconsistent). The message names the file path(s) and the problem.
type DataException(message: string) =
    inherit Exception(message)

/// What a data set predicts: class labels in 0 .. classes-1, or real-valued targets of a
/// fixed per-sample shape (stored flat, sample after sample).
[<RequireQualifiedAccess>]
type Targets =
    /// One class label per sample, each in 0 .. classes-1.
    | Labels of labels: int[] * classes: int
    /// Real-valued targets, one block of `shape` values per sample.
    | Values of values: float32[] * shape: int[]

/// An in-memory data set: N samples of one per-sample shape stored as one flat float32
/// array, with their targets. Immutable: every function returns a new data set and the
/// accessors return copies.
type Dataset = internal {
    name: string
    samples: float32[]
    sampleShape: int[]
    sampleSize: int
    count: int
    targets: Targets
} with

    /// The data set's name (e.g. "fashion-mnist/train").
    member d.Name = d.name
    /// Number of samples.
    member d.Count = d.count
    /// Shape of one sample, e.g. [|1; 28; 28|] or [|3; 32; 32|] or [|d|].
    member d.SampleShape = Array.copy d.sampleShape
    /// Number of values in one sample.
    member d.SampleSize = d.sampleSize

    /// Number of classes, or 0 for a regression data set.
    member d.Classes =
        match d.targets with
        | Targets.Labels(_, c) -> c
        | Targets.Values _ -> 0

    /// True when the targets are class labels.
    member d.IsClassification =
        match d.targets with
        | Targets.Labels _ -> true
        | Targets.Values _ -> false

    /// Shape of one sample's target: [||] for a class label.
    member d.TargetShape =
        match d.targets with
        | Targets.Labels _ -> [||]
        | Targets.Values(_, s) -> Array.copy s

    /// A copy of the targets.
    member d.Targets =
        match d.targets with
        | Targets.Labels(l, c) -> Targets.Labels(Array.copy l, c)
        | Targets.Values(v, s) -> Targets.Values(Array.copy v, Array.copy s)

    /// A copy of all samples, flat (N × SampleSize values).
    member d.Samples = Array.copy d.samples

    override d.ToString() =
        let kind =
            match d.targets with
            | Targets.Labels(_, c) -> sprintf "%d classes" c
            | Targets.Values(_, s) -> sprintf "targets [%s]" (String.Join("; ", s))

        sprintf "Dataset %s: %d samples of [%s], %s" d.name d.count (String.Join("; ", d.sampleShape)) kind

/// Functions over data sets: construction, subsets, splits, per-channel normalisation.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Dataset =

    let private shapeStr (s: int[]) = "[" + String.Join("; ", s) + "]"

    let private check (name: string) (sampleShape: int[]) (samples: float32[]) (targets: Targets) =
        if isNull (box sampleShape) || sampleShape |> Array.exists (fun d -> d < 1) then
            invalidArg
                "sampleShape"
                (sprintf
                    "Dataset %s: sample shape %s must have positive dimensions"
                    name
                    (if isNull (box sampleShape) then "null" else shapeStr sampleShape))

        let size = Array.fold (*) 1 sampleShape

        if samples.Length % size <> 0 then
            invalidArg
                "samples"
                (sprintf
                    "Dataset %s: %d values are not a whole number of samples of shape %s (%d values each)"
                    name
                    samples.Length
                    (shapeStr sampleShape)
                    size)

        let n = samples.Length / size

        match targets with
        | Targets.Labels(labels, classes) ->
            if classes < 1 then
                invalidArg "targets" (sprintf "Dataset %s: number of classes must be >= 1, got %d" name classes)

            if labels.Length <> n then
                invalidArg "targets" (sprintf "Dataset %s: %d samples but %d labels" name n labels.Length)

            labels
            |> Array.iteri (fun i l ->
                if l < 0 || l >= classes then
                    invalidArg "targets" (sprintf "Dataset %s: label %d of sample %d is outside 0 .. %d" name l i (classes - 1)))
        | Targets.Values(values, shape) ->
            if shape |> Array.exists (fun d -> d < 1) then
                invalidArg "targets" (sprintf "Dataset %s: target shape %s must have positive dimensions" name (shapeStr shape))

            let tsize = Array.fold (*) 1 shape

            if values.Length <> n * tsize then
                invalidArg
                    "targets"
                    (sprintf
                        "Dataset %s: %d samples need %d target values of shape %s, got %d"
                        name
                        n
                        (n * tsize)
                        (shapeStr shape)
                        values.Length)

        size, n

    /// Builds a data set that takes ownership of the arrays (no copy). Internal: readers.
    let internal ofOwned (name: string) (sampleShape: int[]) (samples: float32[]) (targets: Targets) : Dataset =
        let size, n = check name sampleShape samples targets

        {
            name = name
            samples = samples
            sampleShape = Array.copy sampleShape
            sampleSize = size
            count = n
            targets = targets
        }

    /// Builds a data set from flat samples (N × prod(sampleShape) values) and targets.
    /// The arrays are copied. Raises ArgumentException when the sizes do not agree or a
    /// label is outside 0 .. classes-1.
    let create (name: string) (sampleShape: int[]) (samples: float32[]) (targets: Targets) : Dataset =
        let targets =
            match targets with
            | Targets.Labels(l, c) -> Targets.Labels(Array.copy l, c)
            | Targets.Values(v, s) -> Targets.Values(Array.copy v, Array.copy s)

        ofOwned name sampleShape (Array.copy samples) targets

    /// Number of samples.
    let count (d: Dataset) = d.count

    /// The data set's name.
    let name (d: Dataset) = d.name

    /// The same data under another name.
    let withName (name: string) (d: Dataset) = { d with name = name }

    /// A copy of sample i (SampleSize values).
    let sample (i: int) (d: Dataset) : float32[] =
        if i < 0 || i >= d.count then
            raise (ArgumentOutOfRangeException("i", sprintf "Dataset %s: sample index %d outside 0 .. %d" d.name i (d.count - 1)))

        Array.sub d.samples (i * d.sampleSize) d.sampleSize

    /// A copy of the class labels. Raises InvalidOperationException for a regression set.
    let labels (d: Dataset) : int[] =
        match d.targets with
        | Targets.Labels(l, _) -> Array.copy l
        | Targets.Values _ -> invalidOp (sprintf "Dataset %s has real-valued targets, not class labels" d.name)

    /// A copy of the real-valued targets, flat. Raises InvalidOperationException for a
    /// classification set.
    let targetValues (d: Dataset) : float32[] =
        match d.targets with
        | Targets.Values(v, _) -> Array.copy v
        | Targets.Labels _ -> invalidOp (sprintf "Dataset %s has class labels, not real-valued targets" d.name)

    /// The samples at the given indices, in that order (repeats allowed). Raises
    /// ArgumentException naming the first index outside 0 .. Count-1.
    let subset (indices: int[]) (d: Dataset) : Dataset =
        for i in indices do
            if i < 0 || i >= d.count then
                invalidArg "indices" (sprintf "Dataset %s: index %d outside 0 .. %d" d.name i (d.count - 1))

        let k = indices.Length
        let size = d.sampleSize
        let samples = Array.zeroCreate<float32>(k * size)

        for j in 0 .. k - 1 do
            Array.blit d.samples (indices.[j] * size) samples (j * size) size

        let targets =
            match d.targets with
            | Targets.Labels(l, c) -> Targets.Labels(Array.init k (fun j -> l.[indices.[j]]), c)
            | Targets.Values(v, s) ->
                let ts = Array.fold (*) 1 s
                let out = Array.zeroCreate<float32>(k * ts)

                for j in 0 .. k - 1 do
                    Array.blit v (indices.[j] * ts) out (j * ts) ts

                Targets.Values(out, Array.copy s)

        { d with samples = samples; count = k; targets = targets }

    /// Concatenates data sets with the same sample shape and target kind (and, for
    /// labels, the same number of classes).
    let concat (name: string) (parts: Dataset list) : Dataset =
        match parts with
        | [] -> invalidArg "parts" "Dataset.concat: no data sets given"
        | first :: _ ->
            for p in parts do
                if p.sampleShape <> first.sampleShape then
                    invalidArg
                        "parts"
                        (sprintf
                            "Dataset.concat %s: sample shape %s of %s differs from %s of %s"
                            name
                            (shapeStr p.sampleShape)
                            p.name
                            (shapeStr first.sampleShape)
                            first.name)

            let samples = parts |> List.map (fun p -> p.samples) |> Array.concat

            // Every part's targets as `pick` accepts them (the kind and size of the first
            // part's), concatenated; `like` says what the first part has, for the error.
            let gather (pick: Targets -> 'a[] option) (like: string) =
                parts
                |> List.map (fun p ->
                    match pick p.targets with
                    | Some t -> t
                    | None -> invalidArg "parts" (sprintf "Dataset.concat %s: %s does not have %s like %s" name p.name like first.name))
                |> Array.concat

            let targets =
                match first.targets with
                | Targets.Labels(_, c) ->
                    let ls =
                        gather
                            (function
                            | Targets.Labels(l, c2) when c2 = c -> Some l
                            | _ -> None)
                            (sprintf "%d-class labels" c)

                    Targets.Labels(ls, c)
                | Targets.Values(_, s) ->
                    let vs =
                        gather
                            (function
                            | Targets.Values(v, s2) when s2 = s -> Some v
                            | _ -> None)
                            (sprintf "targets of shape %s" (shapeStr s))

                    Targets.Values(vs, Array.copy s)

            ofOwned name first.sampleShape samples targets

    let private splitByOrder (order: int[]) (validationCount: int) (d: Dataset) =
        let nTrain = d.count - validationCount
        let train = subset order.[.. nTrain - 1] d |> withName (d.name + "/train")
        let valid = subset order.[nTrain..] d |> withName (d.name + "/validation")
        train, valid

    let private checkCount (what: string) (k: int) (d: Dataset) =
        if k < 0 || k > d.count then
            invalidArg "validationCount" (sprintf "Dataset.%s %s: validation count %d outside 0 .. %d" what d.name k d.count)

    /// Splits into (train, validation) with `validationCount` samples in validation,
    /// chosen by a permutation seeded with `seed` (same seed, same split).
    let splitCount (validationCount: int) (seed: int) (d: Dataset) : Dataset * Dataset =
        checkCount "splitCount" validationCount d
        splitByOrder (Seeds.permutation seed d.count) validationCount d

    /// Splits into (train, validation) with round(fraction × Count) samples in
    /// validation, chosen by a permutation seeded with `seed`. Fraction in [0, 1].
    let split (validationFraction: float) (seed: int) (d: Dataset) : Dataset * Dataset =
        if Double.IsNaN validationFraction || validationFraction < 0.0 || validationFraction > 1.0 then
            invalidArg "validationFraction" (sprintf "Dataset.split %s: validation fraction %g outside [0, 1]" d.name validationFraction)

        splitCount (int (Math.Round(validationFraction * float d.count))) seed d

    /// Fixed split without shuffling: the first Count − k samples for training, the last
    /// k for validation (e.g. MNIST's 54000 / 6000).
    let splitAt (validationCount: int) (d: Dataset) : Dataset * Dataset =
        checkCount "splitAt" validationCount d
        splitByOrder (Array.init d.count id) validationCount d

    /// Number of channels: the first dimension of a rank-3 sample shape, else 1.
    let channels (d: Dataset) = if d.sampleShape.Length = 3 then d.sampleShape.[0] else 1

    /// Per-channel mean and (population) standard deviation over all samples and all
    /// pixels of the channel, in float64. Channel = first dimension of a rank-3 sample
    /// shape; any other rank counts as a single channel.
    let channelStats (d: Dataset) : float[] * float[] =
        let c = channels d
        let per = d.sampleSize / c
        let sum = Array.zeroCreate<float> c
        let sumSq = Array.zeroCreate<float> c
        let s = d.samples

        for i in 0 .. d.count - 1 do
            for ch in 0 .. c - 1 do
                let off = i * d.sampleSize + ch * per
                let mutable a = 0.0
                let mutable b = 0.0

                for k in off .. off + per - 1 do
                    let v = float s.[k]
                    a <- a + v
                    b <- b + v * v

                sum.[ch] <- sum.[ch] + a
                sumSq.[ch] <- sumSq.[ch] + b

        let m = float d.count * float per

        if m = 0.0 then
            invalidOp (sprintf "Dataset.channelStats %s: the data set is empty" d.name)

        let mean = sum |> Array.map (fun x -> x / m)
        let std = Array.init c (fun ch -> Math.Sqrt(max 0.0 (sumSq.[ch] / m - mean.[ch] * mean.[ch])))
        mean, std

    /// Subtracts the per-channel mean and divides by the per-channel std:
    /// x ← (x − mean[c]) / std[c]. One value per channel (see `channels`); std > 0.
    let normalize (mean: float[], std: float[]) (d: Dataset) : Dataset =
        let c = channels d

        if mean.Length <> c || std.Length <> c then
            invalidArg "mean" (sprintf "Dataset.normalize %s: %d channels but %d means and %d stds" d.name c mean.Length std.Length)

        std
        |> Array.iteri (fun ch v ->
            if not (v > 0.0) || Double.IsInfinity v then
                invalidArg "std" (sprintf "Dataset.normalize %s: std of channel %d is %g, must be positive and finite" d.name ch v))

        let per = d.sampleSize / c
        let out = Array.zeroCreate<float32> d.samples.Length
        let src = d.samples

        for i in 0 .. d.count - 1 do
            for ch in 0 .. c - 1 do
                let m = mean.[ch]
                let inv = 1.0 / std.[ch]
                let off = i * d.sampleSize + ch * per

                for k in off .. off + per - 1 do
                    out.[k] <- float32 ((float src.[k] - m) * inv)

        { d with samples = out }

    /// Refuses a null array argument, naming it.
    let private notNull (name: string) (a: 'a[]) =
        if isNull (box a) then
            nullArg name

    /// A classification data set from your own arrays: `samples` holds N samples of
    /// `sampleShape` one after the other (N × prod(sampleShape) values), `labels` one class
    /// in 0 .. classes-1 per sample. The arrays are copied. Raises ArgumentException naming
    /// both numbers when the sizes disagree, or the first label out of range.
    let ofArrays (sampleShape: int[]) (samples: float32[]) (labels: int[]) (classes: int) : Dataset =
        notNull "samples" samples
        notNull "labels" labels
        create "arrays" sampleShape samples (Targets.Labels(labels, classes))

    /// `ofArrays` from float64 samples (stored as float32).
    let ofArrays64 (sampleShape: int[]) (samples: float[]) (labels: int[]) (classes: int) : Dataset =
        notNull "samples" samples
        notNull "labels" labels
        ofOwned "arrays" sampleShape (Array.map float32 samples) (Targets.Labels(Array.copy labels, classes))

    /// A regression data set from your own arrays: N samples of `sampleShape` and N targets
    /// of `targetShape`, each flat, sample after sample. The arrays are copied.
    let ofTargetArrays (sampleShape: int[]) (samples: float32[]) (targets: float32[]) (targetShape: int[]) : Dataset =
        notNull "samples" samples
        notNull "targets" targets
        notNull "targetShape" targetShape
        create "arrays" sampleShape samples (Targets.Values(targets, targetShape))

    /// `ofTargetArrays` from float64 samples and targets (stored as float32).
    let ofTargetArrays64 (sampleShape: int[]) (samples: float[]) (targets: float[]) (targetShape: int[]) : Dataset =
        notNull "samples" samples
        notNull "targets" targets
        notNull "targetShape" targetShape
        ofOwned "arrays" sampleShape (Array.map float32 samples) (Targets.Values(Array.map float32 targets, Array.copy targetShape))

    /// All samples as one tensor [N] @ sample shape of the given dtype (Float32 or Float64).
    let inputs (dtype: Dtype) (d: Dataset) : Tensor =
        let shape = Array.append [| d.count |] d.sampleShape

        match dtype with
        | Dtype.Float32 -> Tensor.ofArrayShape (Array.copy d.samples) shape
        | Dtype.Float64 -> Tensor.ofArrayShape (Array.map float d.samples) shape
        | other -> invalidArg "dtype" (sprintf "Dataset.inputs %s: inputs must be Float32 or Float64, got %O" d.name other)

    /// The first `count` samples, in order.
    let take (count: int) (d: Dataset) : Dataset =
        if count < 0 || count > d.count then
            invalidArg "count" (sprintf "Dataset.take %s: count %d outside 0 .. %d" d.name count d.count)

        subset (Array.init count id) d
