// Makes fashion-mnist-mini: a class-balanced subset of Fashion-MNIST (600 training and 100 test
// images per class) chosen by a fixed seed, written as the four gzip'd IDX files of this folder.
//
//   apt-get install dataset-fashion-mnist
//   dotnet fsi data/fashion-mnist-mini/make.fsx [SOURCE_FOLDER [OUT_FOLDER]]
//
// SOURCE_FOLDER defaults to /usr/share/datasets/fashion-mnist (the Debian package), OUT_FOLDER
// to this script's folder. The selection depends only on the seed and the source files: each
// split's indices are shuffled by a SplitMix64-driven Fisher-Yates shuffle, the first 600 (100)
// of each class in that order are kept, and the kept images are written in their original
// order. The script needs nothing but the .NET SDK.

open System
open System.IO
open System.IO.Compression

let Seed = 20260101UL
let TrainPerClass = 600
let TestPerClass = 100
let Classes = 10

let args = fsi.CommandLineArgs |> Array.skip 1

let source = if args.Length > 0 then args.[0] else "/usr/share/datasets/fashion-mnist"

let output = if args.Length > 1 then args.[1] else __SOURCE_DIRECTORY__

let readGz (path: string) =
    use f = File.OpenRead path
    use gz = new GZipStream(f, CompressionMode.Decompress)
    use m = new MemoryStream()
    gz.CopyTo m
    m.ToArray()

let writeGz (path: string) (bytes: byte[]) =
    use f = File.Create path
    use gz = new GZipStream(f, CompressionLevel.SmallestSize)
    gz.Write(bytes, 0, bytes.Length)

let bigEndian (b: byte[]) (o: int) = (int b.[o] <<< 24) ||| (int b.[o + 1] <<< 16) ||| (int b.[o + 2] <<< 8) ||| int b.[o + 3]

let toBigEndian (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// SplitMix64: a small generator whose output is fixed by its definition, whatever the runtime.
let splitMix (state: uint64 ref) =
    state.Value <- state.Value + 0x9E3779B97F4A7C15UL
    let mutable z = state.Value
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

/// A permutation of 0 .. n-1 (Fisher-Yates; the modulo bias of 64-bit draws is negligible).
let permutation (seed: uint64) (n: int) =
    let state = ref seed
    let p = Array.init n id

    for i in n - 1 .. -1 .. 1 do
        let j = int (splitMix state % uint64 (i + 1))
        let t = p.[i]
        p.[i] <- p.[j]
        p.[j] <- t

    p

/// The kept indices of a split, in their original order.
let select (labels: byte[]) (perClass: int) (seed: uint64) =
    let counts = Array.zeroCreate<int> Classes

    let kept =
        permutation seed labels.Length
        |> Array.filter (fun i ->
            let c = int labels.[i]

            if counts.[c] < perClass then
                counts.[c] <- counts.[c] + 1
                true
            else
                false)

    if counts |> Array.exists (fun c -> c < perClass) then
        failwithf "the source has fewer than %d images of some class: %A" perClass counts

    Array.sort kept

let makeSplit (prefix: string) (perClass: int) (seed: uint64) =
    let images = readGz (Path.Combine(source, prefix + "-images-idx3-ubyte.gz"))
    let labels = readGz (Path.Combine(source, prefix + "-labels-idx1-ubyte.gz"))
    let n = bigEndian images 4
    let rows, cols = bigEndian images 8, bigEndian images 12
    let pixels = rows * cols

    if bigEndian images 0 <> 0x803 || bigEndian labels 0 <> 0x801 || bigEndian labels 4 <> n then
        failwithf "%s: not a pair of IDX image and label files of the same length" prefix

    let keep = select labels.[8..] perClass seed
    let k = keep.Length

    let imageBytes =
        Array.concat [
            toBigEndian 0x803
            toBigEndian k
            toBigEndian rows
            toBigEndian cols
            keep |> Array.collect (fun i -> images.[16 + i * pixels .. 16 + (i + 1) * pixels - 1])
        ]

    let labelBytes =
        Array.concat [ toBigEndian 0x801; toBigEndian k; keep |> Array.map (fun i -> labels.[8 + i]) ]

    writeGz (Path.Combine(output, prefix + "-images-idx3-ubyte.gz")) imageBytes
    writeGz (Path.Combine(output, prefix + "-labels-idx1-ubyte.gz")) labelBytes
    printfn "%s: %d of %d images kept (%d per class) -> %s" prefix k n perClass output

Directory.CreateDirectory output |> ignore
makeSplit "train" TrainPerClass Seed
makeSplit "t10k" TestPerClass (Seed + 1UL)
