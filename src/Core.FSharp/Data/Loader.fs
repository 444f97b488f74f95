namespace GroupedNewton.Data

open System
open GroupedNewton

/// How a loader cuts a data set into mini-batches.
type LoaderOptions = {
    /// Samples per batch (≥ 1).
    BatchSize: int
    /// Visit the samples in a seeded random order (a new permutation each epoch).
    Shuffle: bool
    /// Seed of the permutations; the order of epoch e depends only on (Seed, e).
    Seed: int
    /// Drop the last batch of an epoch when it is smaller than BatchSize.
    DropLast: bool
    /// Dtype of the input tensors: Float32 or Float64.
    Dtype: Dtype
}

/// One mini-batch.
type Batch = {
    /// Inputs, shape [B] @ sample shape, dtype from the options.
    Inputs: Tensor
    /// Class labels, Int32 [B]; None for a regression data set.
    Labels: Tensor option
    /// Real-valued targets, [B] @ target shape, dtype from the options; None for a
    /// classification data set.
    Targets: Tensor option
    /// The data-set indices of the batch's samples, in batch order.
    Indices: int[]
} with

    /// Number of samples in the batch.
    member b.Size = b.Indices.Length

/// Seeded, deterministic mini-batch streams over an in-memory data set.
[<RequireQualifiedAccess>]
module Loader =

    /// Salt that separates the curvature stream (`infinite`) from the epoch stream.
    let private infiniteSalt = 0x1F2E3D4C

    /// Options with the given batch size, Shuffle = true, Seed = 0, DropLast = false,
    /// Dtype = Float32.
    let defaults (batchSize: int) : LoaderOptions = {
        BatchSize = batchSize
        Shuffle = true
        Seed = 0
        DropLast = false
        Dtype = Dtype.Float32
    }

    /// Raises ArgumentException naming the bad value when BatchSize < 1 or Dtype is not a
    /// float dtype.
    let validate (options: LoaderOptions) : unit =
        if options.BatchSize < 1 then
            invalidArg "BatchSize" (sprintf "Loader: BatchSize must be >= 1, got %d" options.BatchSize)

        if not options.Dtype.IsFloat then
            invalidArg "Dtype" (sprintf "Loader: Dtype must be Float32 or Float64, got %O" options.Dtype)

    /// The visiting order of epoch `epoch`: 0 .. N-1 when Shuffle = false, else a
    /// permutation that depends only on (Seed, epoch).
    let order (options: LoaderOptions) (dataset: Dataset) (epoch: int) : int[] =
        if options.Shuffle then
            Seeds.permutation (Seeds.mix options.Seed epoch) dataset.count
        else
            Array.init dataset.count id

    /// Number of batches in one epoch.
    let batchCount (options: LoaderOptions) (dataset: Dataset) : int =
        validate options

        if options.DropLast then
            dataset.count / options.BatchSize
        else
            (dataset.count + options.BatchSize - 1) / options.BatchSize

    /// Rows `indices` (each `size` values long) of `src`, one after the other, as a tensor
    /// of `shape` in the dtype asked for (float64 converts, float32 copies), gathered straight
    /// into the tensor's storage (Tensor.filled): a training loop builds a batch of the same
    /// shape every step, and on the managed backend it then allocates nothing for it.
    let private gatherRows (dtype: Dtype) (src: float32[]) (indices: int[]) (size: int) (shape: int[]) : Tensor =
        let b = indices.Length

        match dtype with
        | Dtype.Float64 ->
            Tensor.filled<float> shape (fun xs ->
                for j in 0 .. b - 1 do
                    let s = indices.[j] * size
                    let o = j * size

                    for k in 0 .. size - 1 do
                        xs.[o + k] <- float src.[s + k])
        | _ ->
            Tensor.filled<float32> shape (fun xs ->
                for j in 0 .. b - 1 do
                    Array.blit src (indices.[j] * size) xs (j * size) size)

    /// The batch made of the given data-set indices, in that order.
    let batch (options: LoaderOptions) (dataset: Dataset) (indices: int[]) : Batch =
        validate options
        let n = dataset.count

        for i in indices do
            if i < 0 || i >= n then
                invalidArg "indices" (sprintf "Loader.batch %s: index %d outside 0 .. %d" dataset.name i (n - 1))

        let b = indices.Length
        let size = dataset.sampleSize
        let shape = Array.append [| b |] dataset.sampleShape

        let inputs = gatherRows options.Dtype dataset.samples indices size shape

        let labels, targets =
            match dataset.targets with
            | Targets.Labels(l, _) -> Some(Tensor.ofArrayShape (Array.init b (fun j -> l.[indices.[j]])) [| b |]), None
            | Targets.Values(v, tshape) ->
                let ts = Array.fold (*) 1 tshape
                None, Some(gatherRows options.Dtype v indices ts (Array.append [| b |] tshape))

        { Inputs = inputs; Labels = labels; Targets = targets; Indices = Array.copy indices }

    let private epochBatches (options: LoaderOptions) (dataset: Dataset) (ord: int[]) : seq<Batch> =
        let bs = options.BatchSize
        let n = ord.Length
        let full = n / bs
        let count = if options.DropLast || n % bs = 0 then full else full + 1

        seq {
            for k in 0 .. count - 1 do
                let start = k * bs
                let len = min bs (n - start)
                yield batch options dataset (Array.sub ord start len)
        }

    /// The batches of epoch `epoch`, in the order given by `order` (deterministic in
    /// (Seed, epoch), independent of what was consumed from other epochs). The last batch
    /// is smaller when N is not a multiple of BatchSize, unless DropLast. Options are
    /// validated immediately; batches are built lazily as the sequence is read.
    let batches (options: LoaderOptions) (dataset: Dataset) (epoch: int) : seq<Batch> =
        validate options
        epochBatches options dataset (order options dataset epoch)

    /// An endless stream of batches cycling over the data set, independent of `batches`
    /// (e.g. the curvature batches of a second-order method). Without Shuffle every pass
    /// is 0 .. N-1; with Shuffle pass p uses its own permutation, seeded from (Seed, p)
    /// through a different salt than `batches`, so the stream differs from the epoch
    /// stream even with the same Seed. Raises ArgumentException when the data set would
    /// yield no batch (empty, or DropLast with N < BatchSize).
    let infinite (options: LoaderOptions) (dataset: Dataset) : seq<Batch> =
        validate options

        if batchCount options dataset = 0 then
            invalidArg
                "dataset"
                (sprintf
                    "Loader.infinite %s: %d samples give no batch of size %d (DropLast = %b)"
                    dataset.name
                    dataset.count
                    options.BatchSize
                    options.DropLast)

        let passOptions = { options with Seed = Seeds.mix options.Seed infiniteSalt }

        seq {
            let mutable pass = 0

            while true do
                yield! epochBatches options dataset (order passOptions dataset pass)
                pass <- pass + 1
        }
