/// Bad data folders and files reached through GROUPEDNEWTON_DATA: an explicit folder is used
/// or refused (never replaced by the installed data), and a bad file is named.
module GroupedNewton.Fault.Tests.DataFaults

open System
open System.IO
open NUnit.Framework
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

let private bigEndian (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// An IDX image file of n images of rows × cols pixels.
let idxImages (n: int) (rows: int) (cols: int) =
    Array.concat [
        bigEndian 0x803
        bigEndian n
        bigEndian rows
        bigEndian cols
        Array.init (n * rows * cols) (fun i -> byte (i % 251))
    ]

/// An IDX label file of n labels.
let idxLabels (n: int) = Array.concat [ bigEndian 0x801; bigEndian n; Array.init n (fun i -> byte (i % 10)) ]

/// A Fashion-MNIST folder of small files (the test images may have another size).
let fashionFolder (testSide: int) =
    let dir = tempFolder ()
    File.WriteAllBytes(Path.Combine(dir, "train-images-idx3-ubyte"), idxImages 120 28 28)
    File.WriteAllBytes(Path.Combine(dir, "train-labels-idx1-ubyte"), idxLabels 120)
    File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), idxImages 20 testSide testSide)
    File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), idxLabels 20)
    dir

let private train (data: string) (extra: string list) =
    let out = tempFolder ()

    let o =
        runWith
            [ "GROUPEDNEWTON_DATA", data ]
            ([
                "train"
                "--optimizer"
                "sgd"
                "--epochs"
                "1"
                "--batch-size"
                "20"
                "--hidden"
                "8"
                "--threads"
                "1"
                "--out"
                out
             ]
             @ extra)

    o, out

[<Test>]
let ``a data folder missing a file is refused by name, with or without --dataset`` () =
    let data = fashionFolder 28
    File.Delete(Path.Combine(data, "t10k-labels-idx1-ubyte"))
    let o, out = train data [ "--dataset"; "fashion-mnist" ]
    expect "GROUPEDNEWTON_DATA lacking a file (--dataset fashion-mnist)" o 1 [ "t10k-labels-idx1-ubyte"; data ] (metricEpochs out = [||])
    let o, out = train data []
    expect "GROUPEDNEWTON_DATA lacking a file (no --dataset)" o 1 [ "t10k-labels-idx1-ubyte"; data ] (metricEpochs out = [||])

[<Test>]
let ``a folder in a file's place is named`` () =
    let data = fashionFolder 28
    File.Delete(Path.Combine(data, "train-labels-idx1-ubyte"))
    Directory.CreateDirectory(Path.Combine(data, "train-labels-idx1-ubyte")) |> ignore
    let o, out = train data [ "--dataset"; "fashion-mnist" ]

    expect
        "GROUPEDNEWTON_DATA with a folder in a file's place"
        o
        1
        [ "train-labels-idx1-ubyte"; "a folder in a file's place" ]
        (metricEpochs out = [||])

[<Test>]
let ``a test set of another image size is refused before training`` () =
    let data = fashionFolder 14
    let o, out = train data [ "--dataset"; "fashion-mnist" ]
    expect "test images of another size" o 1 [ "fashion-mnist/test"; "[1; 14; 14]"; "[1; 28; 28]" ] (metricEpochs out = [||])

[<Test>]
let ``a header promising an absurd size names the file`` () =
    let data = fashionFolder 28
    let path = Path.Combine(data, "train-images-idx3-ubyte")
    let bytes = File.ReadAllBytes path
    Array.blit (bigEndian 0x7FFFFFF0) 0 bytes 4 4
    File.WriteAllBytes(path, bytes)
    let o, out = train data [ "--dataset"; "fashion-mnist" ]
    expect "IDX header promising 2^31 images" o 1 [ "train-images-idx3-ubyte"; "truncated"; "promises" ] (metricEpochs out = [||])

[<Test>]
let ``a data file that is a FIFO is refused without hanging`` () =
    let data = fashionFolder 28
    let path = Path.Combine(data, "train-images-idx3-ubyte")
    File.Delete path
    Assume.That(mkfifo path, Is.EqualTo 0, "mkfifo is needed for this case")
    let o, out = train data [ "--dataset"; "fashion-mnist" ]
    expect "data file that is a FIFO" o 1 [ "train-images-idx3-ubyte"; "not a regular file" ] (metricEpochs out = [||])

[<Test>]
let ``a checkpoint that is a FIFO or a folder is refused by name`` () =
    let dir = tempFolder ()
    let r = run ([ "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--out"; dir ] @ tinyTask)
    Assert.That(r.Code, Is.EqualTo(Some 0), r.Err)
    let fifo = Path.Combine(dir, "fifo.ckpt")
    mkfifo fifo |> ignore
    let o = run ([ "summary"; "--checkpoint"; fifo ] @ tinyTask)
    expect "summary --checkpoint FIFO" o 1 [ "fifo.ckpt"; "not a regular file" ] true
    let o = run ([ "summary"; "--checkpoint"; dir ] @ tinyTask)
    expect "summary --checkpoint a folder" o 1 [ dir; "is a folder" ] true
