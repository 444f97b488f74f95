/// The bad-input corpus of the readers (IDX, CIFAR-10, the state store behind checkpoints):
/// truncated files, wrong magic numbers, absurd header fields, non-regular files, and a
/// time-bounded loop of random byte flips over real files. Every bad input must end in the
/// reader's typed exception naming the file (DataException, StateFormatException), never
/// another exception, a hang or an attempt to allocate what the header promises.
module GroupedNewton.Fault.Tests.ReaderCorpus

open System
open System.Diagnostics
open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

let private bigEndian (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// A reader and the exception type it must raise.
type private Reader = { Name: string; Read: string -> unit; IsTyped: exn -> bool }

let private idxImagesReader = {
    Name = "IDX images"
    Read = (fun p -> Idx.readImages p |> ignore)
    IsTyped = (fun e -> e :? DataException)
}

let private idxLabelsReader = {
    Name = "IDX labels"
    Read = (fun p -> Idx.readLabels p |> ignore)
    IsTyped = (fun e -> e :? DataException)
}

let private cifarReader = {
    Name = "CIFAR-10"
    Read = (fun p -> Cifar.readBatch p |> ignore)
    IsTyped = (fun e -> e :? DataException)
}

let private storeReader = {
    Name = "state store"
    Read = (fun p -> TensorStore.load p |> ignore)
    IsTyped = (fun e -> e :? StateFormatException)
}

let private checkpointReader = {
    Name = "checkpoint"
    Read = (fun p -> Checkpoint.readInfo p |> ignore)
    IsTyped = (fun e -> e :? StateFormatException)
}

/// The outcome of reading one bad file, as a corpus verdict.
let private attempt (r: Reader) (path: string) : Verdict * string =
    let clock = Stopwatch.StartNew()

    try
        r.Read path
        Silent, sprintf "%s accepted %s" r.Name path
    with e ->
        if clock.Elapsed.TotalSeconds > 10.0 then
            Hang, sprintf "%s took %.1f s on %s" r.Name clock.Elapsed.TotalSeconds path
        elif r.IsTyped e && e.Message.Contains(Path.GetFileName path) then
            Clear, e.Message
        elif r.IsTyped e then
            StackTrace, sprintf "the message does not name the file: %s" e.Message
        else
            StackTrace, sprintf "%s raised %s: %s" r.Name (e.GetType().Name) e.Message

let private case (name: string) (r: Reader) (bytes: byte[]) =
    let dir = tempFolder ()
    let path = Path.Combine(dir, name)
    File.WriteAllBytes(path, bytes)
    let v, d = attempt r path
    record (sprintf "%s: %s" r.Name name) v d

let private images =
    Array.concat [ bigEndian 0x803; bigEndian 3; bigEndian 4; bigEndian 5; Array.init 60 byte ]

let private labels = Array.concat [ bigEndian 0x801; bigEndian 3; [| 1uy; 2uy; 3uy |] ]

let private cifar =
    Array.init (2 * Cifar.RecordBytes) (fun i -> if i % Cifar.RecordBytes = 0 then 7uy else byte i)

let private state () =
    let dir = tempFolder ()
    let path = Path.Combine(dir, "good.ckpt")
    let model = Models.mlp [ 6; 4; 3 ] Activation.Tanh (Init.reference 0)
    let opt = Sgd.create { SgdOptions.Defaults with Momentum = 0.9 } model.Parameters

    opt.Step(fun ps -> (let y = model.Forward(ps, Tensor.fullOf Dtype.Float32 [| 2; 6 |] 1.0) in Tensor.sum (Tensor.mul y y)))
    |> ignore

    Checkpoint.saveRun path 3 model opt { Settings = [ "--seed", "0" ]; CurvaturePosition = Some 5L; ReferenceLoss = Some 1.5 }
    File.ReadAllBytes path

let private withInt (bytes: byte[]) (offset: int) (value: int) =
    let b = Array.copy bytes
    Array.blit (BitConverter.GetBytes value) 0 b offset 4
    b

[<Test>]
let ``truncated files are refused by name`` () =
    case "images-truncated.idx" idxImagesReader images.[.. images.Length - 7]
    case "images-header-only.idx" idxImagesReader images.[..15]
    case "images-two-bytes.idx" idxImagesReader images.[..1]
    case "labels-truncated.idx" idxLabelsReader labels.[.. labels.Length - 2]
    case "cifar-truncated.bin" cifarReader cifar.[.. cifar.Length - 100]
    let s = state ()
    case "state-truncated.ckpt" storeReader s.[.. s.Length - 9]
    case "state-header-only.ckpt" storeReader s.[..11]
    case "checkpoint-truncated.ckpt" checkpointReader s.[.. s.Length / 2]

[<Test>]
let ``wrong magic numbers are refused by name`` () =
    case "labels-as-images.idx" idxImagesReader labels
    case "images-as-labels.idx" idxLabelsReader images
    case "state-wrong-magic.ckpt" storeReader (Array.append "GNTX"B (state ()).[4..])
    case "text-as-state.ckpt" storeReader "this is not a state file at all"B
    case "cifar-bad-label.bin" cifarReader (Array.append [| 11uy |] cifar.[1..])

[<Test>]
let ``absurd header fields are refused without allocating what they promise`` () =
    case
        "images-2^31.idx"
        idxImagesReader
        (Array.concat [ bigEndian 0x803; bigEndian Int32.MaxValue; bigEndian 28; bigEndian 28; Array.zeroCreate 784 ])

    case "images-negative.idx" idxImagesReader (Array.concat [ bigEndian 0x803; bigEndian -5; bigEndian 28; bigEndian 28 ])
    case "images-zero-pixels.idx" idxImagesReader (Array.concat [ bigEndian 0x803; bigEndian 5; bigEndian 0; bigEndian 28 ])
    case "labels-2^31.idx" idxLabelsReader (Array.concat [ bigEndian 0x801; bigEndian Int32.MaxValue; [| 1uy |] ])
    let s = state ()
    // the payload length field (bytes 8..11) promising 2 GB
    case "state-length-2GB.ckpt" storeReader (withInt s 8 (Int32.MaxValue - 16))
    case "state-length-negative.ckpt" storeReader (withInt s 8 -1)
    case "state-version-99.ckpt" storeReader (withInt s 4 99)

[<Test>]
let ``empty files, folders, FIFOs and devices are refused by name without hanging`` () =
    for r, name in [ idxImagesReader, "empty.idx"; cifarReader, "empty.bin"; storeReader, "empty.ckpt" ] do
        case name r [||]

    let dir = tempFolder ()

    for r in [ idxImagesReader; cifarReader; storeReader ] do
        let folder = Path.Combine(dir, "folder-" + r.Name.Replace(' ', '-'))
        Directory.CreateDirectory folder |> ignore
        let v, d = attempt r folder
        record (sprintf "%s: a folder" r.Name) v d

    let fifo = Path.Combine(dir, "fifo.idx")

    if mkfifo fifo = 0 then
        for r in [ idxImagesReader; cifarReader; storeReader ] do
            let v, d = attempt r fifo
            record (sprintf "%s: a FIFO" r.Name) v d

    for r in [ idxImagesReader; cifarReader; storeReader ] do
        let v, d = attempt r "/dev/zero"
        record (sprintf "%s: /dev/zero" r.Name) v d

/// Random byte flips of a good file, for `seconds`: each read must succeed (a flip in pixel
/// data is still a valid file) or raise the typed exception naming the file. Returns the
/// number of flipped files tried and how many were refused.
let private fuzz (r: Reader) (good: byte[]) (seconds: float) (seed: int) =
    let dir = tempFolder ()
    let path = Path.Combine(dir, "fuzzed-" + r.Name.Replace(' ', '-'))
    let rng = Random(seed)
    let clock = Stopwatch.StartNew()
    let mutable tried = 0
    let mutable refused = 0
    let bad = ResizeArray<string>()

    while clock.Elapsed.TotalSeconds < seconds do
        let b = Array.copy good
        // flip 1-4 bytes, half of the time within the header where the fields are
        for _ in 1 .. rng.Next(1, 5) do
            let at = if rng.Next 2 = 0 then rng.Next(min 24 b.Length) else rng.Next b.Length
            b.[at] <- b.[at] ^^^ byte (rng.Next(1, 256))
        // flips of one byte that cancel out leave the good file: not a case
        if b <> good then
            File.WriteAllBytes(path, b)
            tried <- tried + 1

            match attempt r path with
            | Silent, _ -> ()
            | Clear, _ -> refused <- refused + 1
            | v, d -> bad.Add(sprintf "%A: %s" v d)

    tried, refused, List.ofSeq bad

[<Test>]
let ``random byte flips of real files only ever give the typed exceptions`` () =
    for r, good in
        [
            idxImagesReader, images
            idxLabelsReader, labels
            cifarReader, cifar
            storeReader, state ()
            checkpointReader, state ()
        ] do
        let tried, refused, bad = fuzz r good 1.5 17

        TestContext.Progress.WriteLine(
            sprintf
                "fuzz %s: %d flipped files, %d refused with the typed exception, %d accepted"
                r.Name
                tried
                refused
                (tried - refused - bad.Length)
        )

        record
            (sprintf "%s: fuzz loop (%d byte-flipped files)" r.Name tried)
            (if bad.IsEmpty then Clear else StackTrace)
            (String.Join("\n", bad |> List.truncate 5))

        Assert.That(tried, Is.GreaterThan 20)
        // a flip anywhere in a checksummed store is always found
        if r.Name = "state store" || r.Name = "checkpoint" then
            Assert.That(refused, Is.EqualTo tried)
