namespace GroupedNewton.Data

open System

/// Reader for the IDX format of MNIST and Fashion-MNIST (gzip'd or raw): an image file
/// (magic 0x00000803, unsigned bytes, N × rows × cols) and a label file (magic
/// 0x00000801, unsigned bytes, N). All header integers are big-endian.
[<RequireQualifiedAccess>]
module Idx =

    /// Magic number of an IDX file of unsigned-byte images with 3 dimensions.
    [<Literal>]
    let ImagesMagic = 0x00000803

    /// Magic number of an IDX file of unsigned-byte labels with 1 dimension.
    [<Literal>]
    let LabelsMagic = 0x00000801

    /// Number of classes of MNIST and Fashion-MNIST.
    [<Literal>]
    let Classes = 10

    let private bigEndian (b: byte[]) (offset: int) =
        (int b.[offset] <<< 24)
        ||| (int b.[offset + 1] <<< 16)
        ||| (int b.[offset + 2] <<< 8)
        ||| int b.[offset + 3]

    /// Checks the header (magic, dimensions) and the length; returns the dimensions.
    let private header (path: string) (bytes: byte[]) (expectedMagic: int) (what: string) : int[] =
        let ndims = expectedMagic &&& 0xFF
        let headerBytes = 4 + 4 * ndims

        if bytes.Length < 4 then
            DataFile.fail path (sprintf "truncated: %d bytes, too short for an IDX %s header (%d bytes)" bytes.Length what headerBytes)

        let magic = bigEndian bytes 0

        if magic <> expectedMagic then
            DataFile.fail
                path
                (sprintf
                    "wrong magic number 0x%08X, expected 0x%08X (IDX %s)%s"
                    magic
                    expectedMagic
                    what
                    (if magic = ImagesMagic then ": this is an images file"
                     elif magic = LabelsMagic then ": this is a labels file"
                     else ""))

        if bytes.Length < headerBytes then
            DataFile.fail path (sprintf "truncated: %d bytes, too short for an IDX %s header (%d bytes)" bytes.Length what headerBytes)

        let dims = Array.init ndims (fun i -> bigEndian bytes (4 + 4 * i))

        if dims |> Array.exists (fun d -> d < 0) then
            DataFile.fail path (sprintf "corrupt header: negative dimension in [%s]" (String.Join("; ", dims)))

        let payload = dims |> Array.fold (fun acc d -> acc * int64 d) 1L
        let expected = int64 headerBytes + payload

        if int64 bytes.Length < expected then
            DataFile.fail
                path
                (sprintf
                    "truncated: the header promises %d %s bytes (dimensions [%s]) but the file holds %d bytes after the %d-byte header"
                    payload
                    what
                    (String.Join("; ", dims))
                    (int64 bytes.Length - int64 headerBytes)
                    headerBytes)

        if int64 bytes.Length > expected then
            DataFile.fail
                path
                (sprintf
                    "too long: %d extra bytes after the %d %s bytes the header promises (dimensions [%s])"
                    (int64 bytes.Length - expected)
                    payload
                    what
                    (String.Join("; ", dims)))

        dims

    /// Reads an IDX image file (gzip'd or raw). Returns the dimensions [|N; rows; cols|]
    /// and the pixels scaled to [0, 1] (byte / 255), flat, image after image.
    /// Raises DataException naming the file when it is missing, has the wrong magic
    /// number or is truncated.
    let readImages (path: string) : int[] * float32[] =
        let bytes = DataFile.read path
        let dims = header path bytes ImagesMagic "images"

        if dims.[1] < 1 || dims.[2] < 1 then
            DataFile.fail path (sprintf "corrupt header: images of %d × %d pixels" dims.[1] dims.[2])

        let n = dims.[0] * dims.[1] * dims.[2]
        let pixels = Array.zeroCreate<float32> n
        DataFile.bytesToUnit bytes 16 n pixels 0
        dims, pixels

    /// Reads an IDX label file (gzip'd or raw) whose labels must lie in 0 .. classes-1.
    /// Raises DataException naming the file when it is missing, has the wrong magic
    /// number, is truncated or holds a label outside the range.
    let readLabelsWith (classes: int) (path: string) : int[] =
        let bytes = DataFile.read path
        let dims = header path bytes LabelsMagic "labels"
        let labels = Array.zeroCreate<int> dims.[0]

        for i in 0 .. labels.Length - 1 do
            let l = int bytes.[8 + i]

            if l >= classes then
                DataFile.fail path (sprintf "label %d of item %d is out of range: expected 0 .. %d (%d classes)" l i (classes - 1) classes)

            labels.[i] <- l

        labels

    /// Reads an IDX label file of 10 classes (see readLabelsWith).
    let readLabels (path: string) : int[] = readLabelsWith Classes path

    /// Loads an image file and its label file as a data set of samples [|1; rows; cols|]
    /// with 10 classes. Raises DataException for any file problem and when the two files
    /// hold different numbers of items (naming both files and both counts).
    let loadPair (imagesPath: string) (labelsPath: string) (name: string) : Dataset =
        let dims, pixels = readImages imagesPath
        let labels = readLabels labelsPath

        if dims.[0] <> labels.Length then
            raise (
                DataException(
                    sprintf "count mismatch: %s holds %d images but %s holds %d labels" imagesPath dims.[0] labelsPath labels.Length
                )
            )

        Dataset.ofOwned name [| 1; dims.[1]; dims.[2] |] pixels (Targets.Labels(labels, Classes))
