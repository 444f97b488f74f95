namespace GroupedNewton.Data

open System.IO

/// Reader for the CIFAR-10 binary format: each record is 1 label byte (0..9) followed by
/// 3072 pixel bytes, channel-major 3 × 32 × 32 (all red, then green, then blue). The
/// standard files are data_batch_1.bin .. data_batch_5.bin and test_batch.bin, usually in
/// a folder named cifar-10-batches-bin.
[<RequireQualifiedAccess>]
module Cifar =

    /// Number of classes.
    [<Literal>]
    let Classes = 10

    /// Bytes in one image (3 × 32 × 32).
    [<Literal>]
    let ImageBytes = 3072

    /// Bytes in one record (label + image).
    [<Literal>]
    let RecordBytes = 3073

    /// Per-sample shape of a CIFAR-10 image.
    let sampleShape () = [| 3; 32; 32 |]

    /// File names of the five training batches, in order.
    let trainFiles = [ for i in 1..5 -> sprintf "data_batch_%d.bin" i ]

    /// File name of the test batch.
    [<Literal>]
    let TestFile = "test_batch.bin"

    /// Reads one batch file: the pixels scaled to [0, 1] (byte / 255), flat, image after
    /// image, and the labels. Raises DataException naming the file when it is missing,
    /// empty, not a whole number of 3073-byte records (truncated) or holds a label > 9.
    let readBatch (path: string) : float32[] * int[] =
        let bytes = DataFile.read path

        if bytes.Length = 0 then
            DataFile.fail path "empty file (0 bytes), expected 3073-byte CIFAR-10 records"

        if bytes.Length % RecordBytes <> 0 then
            DataFile.fail
                path
                (sprintf
                    "truncated: %d bytes is not a multiple of the %d-byte CIFAR-10 record (%d whole records and %d bytes left over)"
                    bytes.Length
                    RecordBytes
                    (bytes.Length / RecordBytes)
                    (bytes.Length % RecordBytes))

        let n = bytes.Length / RecordBytes
        let pixels = Array.zeroCreate<float32>(n * ImageBytes)
        let labels = Array.zeroCreate<int> n

        for i in 0 .. n - 1 do
            let off = i * RecordBytes
            let l = int bytes.[off]

            if l >= Classes then
                DataFile.fail
                    path
                    (sprintf "label %d of record %d (byte offset %d) is out of range: expected 0 .. %d" l i off (Classes - 1))

            labels.[i] <- l
            DataFile.bytesToUnit bytes (off + 1) ImageBytes pixels (i * ImageBytes)

        pixels, labels

    /// Loads one or more batch files, in order, as one data set of samples [|3; 32; 32|]
    /// with 10 classes.
    let loadFiles (paths: string list) (name: string) : Dataset =
        if List.isEmpty paths then
            invalidArg "paths" "Cifar.loadFiles: no files given"

        let parts = paths |> List.map readBatch
        let pixels = parts |> List.map fst |> Array.concat
        let labels = parts |> List.map snd |> Array.concat
        Dataset.ofOwned name (sampleShape ()) pixels (Targets.Labels(labels, Classes))

    /// Loads one batch file as a data set of samples [|3; 32; 32|] with 10 classes.
    let loadBatch (path: string) (name: string) : Dataset = loadFiles [ path ] name

    /// Loads (train, test) from a folder holding data_batch_1..5.bin and test_batch.bin.
    /// Raises DataException naming the first missing or bad file.
    let loadFolder (folder: string) : Dataset * Dataset =
        let train = loadFiles [ for f in trainFiles -> Path.Combine(folder, f) ] "cifar10/train"
        let test = loadBatch (Path.Combine(folder, TestFile)) "cifar10/test"
        train, test
