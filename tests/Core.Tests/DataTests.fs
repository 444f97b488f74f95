/// The data layer: IDX and CIFAR-10 readers on small files written here, synthetic tasks,
/// seeded loaders, splits, normalisation and data-set location errors.
module GroupedNewton.Tests.DataTests

open System
open System.IO
open System.IO.Compression
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Tests.TestUtil

// ---------------------------------------------------------------- helpers

let private withTempDir (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "gn-datatests-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore

    try
        f dir
    finally
        try
            Directory.Delete(dir, true)
        with _ ->
            ()

let private be (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// IDX images file content: magic 0x803, N, rows, cols, pixels.
let private idxImages (n: int) (rows: int) (cols: int) (pixels: byte[]) = Array.concat [ be 0x00000803; be n; be rows; be cols; pixels ]

/// IDX labels file content: magic 0x801, N, labels.
let private idxLabels (labels: byte[]) = Array.concat [ be 0x00000801; be labels.Length; labels ]

let private gzip (bytes: byte[]) =
    use ms = new MemoryStream()

    (use gz = new GZipStream(ms, CompressionLevel.Fastest)
     gz.Write(bytes, 0, bytes.Length))

    ms.ToArray()

let private write (dir: string) (name: string) (bytes: byte[]) =
    let p = Path.Combine(dir, name)
    Directory.CreateDirectory(Path.GetDirectoryName p) |> ignore
    File.WriteAllBytes(p, bytes)
    p

/// 5 images of 3 × 4 with known bytes, and their labels.
let private pixels5 = Array.init (5 * 12) (fun k -> byte ((k * 37 + 11) % 256))
let private labels5 = [| 3uy; 0uy; 9uy; 1uy; 7uy |]

let private throwsData (parts: string list) (f: unit -> obj) =
    let e = Assert.Throws<DataException>(fun () -> f () |> ignore)

    for p in parts do
        Assert.That(e.Message, Does.Contain p, sprintf "message '%s' should mention '%s'" e.Message p)

    e

let private f32 (xs: float32[]) = xs |> Array.map float

/// A labelled data set whose sample i has values i*10 + k (k = 0..5), shape [2; 3].
let private rowsDataset (n: int) =
    let samples = Array.init (n * 6) (fun j -> float32 ((j / 6) * 10 + j % 6))
    Dataset.create "rows" [| 2; 3 |] samples (Targets.Labels(Array.init n (fun i -> i % 4), 4))

let private allIndices (bs: seq<Batch>) = bs |> Seq.collect (fun b -> b.Indices) |> Seq.toArray

// ---------------------------------------------------------------- IDX

[<TestCase(true)>]
[<TestCase(false)>]
let ``IDX round trip gives bytes over 255, shapes and labels`` (gzipped: bool) =
    withTempDir (fun dir ->
        let enc b = if gzipped then gzip b else b
        let ext = if gzipped then ".gz" else ""
        let ip = write dir ("imgs-idx3-ubyte" + ext) (enc (idxImages 5 3 4 pixels5))
        let lp = write dir ("lbls-idx1-ubyte" + ext) (enc (idxLabels labels5))
        let d = Idx.loadPair ip lp "tiny"
        Assert.That(d.Count, equalTo 5)
        Assert.That(d.SampleShape, equalTo [| 1; 3; 4 |])
        Assert.That(d.Classes, equalTo 10)
        Assert.That(d.Name, equalTo "tiny")
        Assert.That(Dataset.labels d, equalTo [| 3; 0; 9; 1; 7 |])
        let expected = pixels5 |> Array.map (fun b -> float32 b / 255.0f)
        Assert.That(d.Samples, equalTo expected)
        Assert.That(Dataset.sample 2 d, equalTo expected.[24..35])
        Assert.That(Dataset.sample 4 d |> Array.last, equalTo (float32 pixels5.[59] / 255.0f)))

[<Test>]
let ``IDX gzip data is recognised whatever the file name`` () =
    withTempDir (fun dir ->
        let ip = write dir "images.bin" (gzip (idxImages 5 3 4 pixels5))
        let dims, px = Idx.readImages ip
        Assert.That(dims, equalTo [| 5; 3; 4 |])
        Assert.That(px.[1], equalTo (float32 pixels5.[1] / 255.0f)))

[<Test>]
let ``IDX wrong magic number names the file and both magics`` () =
    withTempDir (fun dir ->
        let lp = write dir "labels-as-images.idx" (idxLabels labels5)

        throwsData [ "labels-as-images.idx"; "magic"; "0x00000801"; "0x00000803" ] (fun () -> box (Idx.readImages lp))
        |> ignore

        let ip = write dir "images-as-labels.idx" (idxImages 5 3 4 pixels5)

        throwsData [ "images-as-labels.idx"; "magic"; "0x00000803"; "0x00000801" ] (fun () -> box (Idx.readLabels ip))
        |> ignore)

[<TestCase(true)>]
[<TestCase(false)>]
let ``IDX truncated file is reported`` (gzipped: bool) =
    withTempDir (fun dir ->
        let full = idxImages 5 3 4 pixels5
        let cut = full.[.. full.Length - 4]
        let ip = write dir "short-images.idx" (if gzipped then gzip cut else cut)
        throwsData [ "short-images.idx"; "truncated"; "60" ] (fun () -> box (Idx.readImages ip)) |> ignore
        let lp = write dir "short-labels.idx" (idxLabels labels5).[..10]
        throwsData [ "short-labels.idx"; "truncated" ] (fun () -> box (Idx.readLabels lp)) |> ignore
        let hp = write dir "header-only.idx" (be 0x00000803)
        throwsData [ "header-only.idx"; "truncated" ] (fun () -> box (Idx.readImages hp)) |> ignore)

[<Test>]
let ``IDX images and labels count mismatch names both files and counts`` () =
    withTempDir (fun dir ->
        let ip = write dir "five-images.idx" (idxImages 5 3 4 pixels5)
        let lp = write dir "four-labels.idx" (idxLabels labels5.[..3])

        throwsData [ "five-images.idx"; "four-labels.idx"; "5 images"; "4 labels"; "mismatch" ] (fun () -> box (Idx.loadPair ip lp "x"))
        |> ignore)

[<Test>]
let ``IDX missing file is reported`` () =
    withTempDir (fun dir ->
        let lp = write dir "labels.idx" (idxLabels labels5)
        let ip = Path.Combine(dir, "no-such-images.idx.gz")
        throwsData [ "no-such-images.idx.gz"; "missing" ] (fun () -> box (Idx.loadPair ip lp "x")) |> ignore)

[<Test>]
let ``IDX label out of range for 10 classes is reported`` () =
    withTempDir (fun dir ->
        let lp = write dir "bad-labels.idx" (idxLabels [| 1uy; 2uy; 12uy |])
        throwsData [ "bad-labels.idx"; "12"; "out of range" ] (fun () -> box (Idx.readLabels lp)) |> ignore)

[<Test>]
let ``IDX corrupt gzip data is reported`` () =
    withTempDir (fun dir ->
        let good = gzip (idxImages 5 3 4 pixels5)
        let bad = Array.append good.[..9] (Array.create 40 0xFFuy)
        let ip = write dir "corrupt.gz" bad
        throwsData [ "corrupt.gz" ] (fun () -> box (Idx.readImages ip)) |> ignore)

// ---------------------------------------------------------------- CIFAR-10

let private cifarRecord (label: byte) (seed: int) = Array.append [| label |] (Array.init 3072 (fun k -> byte ((k * 7 + seed * 13) % 256)))

[<Test>]
let ``CIFAR batch round trip is channel-major and scaled`` () =
    withTempDir (fun dir ->
        let recs = [ cifarRecord 6uy 1; cifarRecord 0uy 2; cifarRecord 9uy 3 ]
        let p = write dir "data_batch_1.bin" (Array.concat recs)
        let d = Cifar.loadBatch p "c"
        Assert.That(d.Count, equalTo 3)
        Assert.That(d.SampleShape, equalTo [| 3; 32; 32 |])
        Assert.That(Dataset.labels d, equalTo [| 6; 0; 9 |])

        for i in 0..2 do
            let s = Dataset.sample i d
            let r = recs.[i]
            // value at (channel c, row y, col x) is byte 1 + c*1024 + y*32 + x
            for (c, y, x) in [ (0, 0, 0); (1, 5, 7); (2, 31, 31); (2, 0, 1) ] do
                let k = c * 1024 + y * 32 + x
                Assert.That(s.[k], equalTo (float32 r.[1 + k] / 255.0f)))

[<Test>]
let ``CIFAR truncated file is reported`` () =
    withTempDir (fun dir ->
        let bytes = Array.concat [ cifarRecord 1uy 1; cifarRecord 2uy 2 ]
        let p = write dir "data_batch_2.bin" bytes.[.. bytes.Length - 101]
        throwsData [ "data_batch_2.bin"; "truncated"; "3073" ] (fun () -> box (Cifar.readBatch p)) |> ignore)

[<Test>]
let ``CIFAR label out of range is reported`` () =
    withTempDir (fun dir ->
        let p = write dir "test_batch.bin" (Array.concat [ cifarRecord 1uy 1; cifarRecord 10uy 2 ])

        throwsData [ "test_batch.bin"; "label 10"; "out of range" ] (fun () -> box (Cifar.readBatch p))
        |> ignore)

[<Test>]
let ``CIFAR missing file is reported`` () =
    withTempDir (fun dir ->
        let p = Path.Combine(dir, "data_batch_9.bin")
        throwsData [ "data_batch_9.bin"; "missing" ] (fun () -> box (Cifar.readBatch p)) |> ignore)

[<Test>]
let ``CIFAR folder loads five train batches and the test batch`` () =
    withTempDir (fun dir ->
        let sub = Path.Combine(dir, "cifar-10-batches-bin")

        for i in 1..5 do
            write sub (sprintf "data_batch_%d.bin" i) (Array.concat [ cifarRecord (byte i) i; cifarRecord 0uy (i + 10) ])
            |> ignore

        write sub "test_batch.bin" (cifarRecord 8uy 99) |> ignore
        let train, test = Datasets.cifar10From dir
        Assert.That(train.Count, equalTo 10)
        Assert.That(test.Count, equalTo 1)
        Assert.That(Dataset.labels train, equalTo [| 1; 0; 2; 0; 3; 0; 4; 0; 5; 0 |])
        Assert.That(Dataset.labels test, equalTo [| 8 |]))

// ---------------------------------------------------------------- locating data sets

[<Test>]
let ``Fashion-MNIST loads from an explicit folder with gzip'd and raw files`` () =
    withTempDir (fun dir ->
        let sub = Path.Combine(dir, "fashion-mnist")
        write sub "train-images-idx3-ubyte.gz" (gzip (idxImages 5 3 4 pixels5)) |> ignore
        write sub "train-labels-idx1-ubyte" (idxLabels labels5) |> ignore
        write sub "t10k-images-idx3-ubyte" (idxImages 2 3 4 pixels5.[..23]) |> ignore
        write sub "t10k-labels-idx1-ubyte.gz" (gzip (idxLabels labels5.[..1])) |> ignore
        let train, test = Datasets.fashionMnistFrom dir
        Assert.That((train.Count, test.Count), equalTo (5, 2))
        Assert.That(Dataset.labels test, equalTo [| 3; 0 |])
        Assert.That(train.Name, equalTo "fashion-mnist/train")
        Assert.That(Datasets.locateFrom "fashion-mnist" dir, equalTo sub))

[<Test>]
let ``a missing data set lists every place looked at and how to install it`` () =
    let root = Path.Combine(Path.GetTempPath(), "gn-no-such-folder-" + Guid.NewGuid().ToString("N"))

    let e =
        throwsData
            [
                "Fashion-MNIST"
                Path.Combine(root, "fashion-mnist")
                root
                "does not exist"
                "apt-get install dataset-fashion-mnist"
                "GROUPEDNEWTON_DATA"
            ]
            (fun () -> box (Datasets.fashionMnistFrom root))

    Assert.That(e.Message, Does.Contain(Path.Combine(root, "FashionMNIST", "raw")))

    throwsData [ "CIFAR-10"; Path.Combine(root, "cifar-10-batches-bin"); "GROUPEDNEWTON_DATA" ] (fun () -> box (Datasets.cifar10From root))
    |> ignore

[<Test>]
let ``a partial data set folder says which files are missing`` () =
    withTempDir (fun dir ->
        write dir "train-images-idx3-ubyte.gz" (gzip (idxImages 5 3 4 pixels5)) |> ignore
        write dir "train-labels-idx1-ubyte.gz" (gzip (idxLabels labels5)) |> ignore

        throwsData [ dir; "missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" ] (fun () -> box (Datasets.mnistFrom dir))
        |> ignore)

[<Test>]
let ``data set names are checked`` () =
    Assert.Throws<ArgumentException>(fun () -> Datasets.isAvailable "imagenet" |> ignore) |> ignore
    Assert.That(Datasets.searchPaths "Fashion_MNIST" |> List.length, equalTo (Datasets.searchPaths "fashion-mnist" |> List.length))

[<Test>]
let ``reference normalisation constants`` () =
    Assert.That(Datasets.mnistNormalization (), equalTo ([| 0.1307 |], [| 0.3081 |]))
    Assert.That(Datasets.cifar10Normalization (), equalTo ([| 0.4914; 0.4822; 0.4465 |], [| 0.2470; 0.2435; 0.2616 |]))

// ---------------------------------------------------------------- synthetic tasks

[<Test>]
let ``teacher classification is deterministic per seed and covers several classes`` () =
    let a = Synthetic.teacherClassification 7 400 [| 1; 4; 5 |] 5
    let b = Synthetic.teacherClassification 7 400 [| 1; 4; 5 |] 5
    let c = Synthetic.teacherClassification 8 400 [| 1; 4; 5 |] 5
    Assert.That(a.SampleShape, equalTo [| 1; 4; 5 |])
    Assert.That(a.Count, equalTo 400)
    Assert.That(a.Classes, equalTo 5)
    Assert.That(a.Samples, equalTo b.Samples)
    Assert.That(Dataset.labels a, equalTo (Dataset.labels b))
    Assert.That(a.Samples, Is.Not.EqualTo(c.Samples))
    Assert.That(Dataset.labels a, Is.Not.EqualTo(Dataset.labels c))
    let counts = Dataset.labels a |> Array.countBy id
    Assert.That(counts.Length, Is.GreaterThanOrEqualTo 3, sprintf "classes present: %A" counts)
    Assert.That(counts |> Array.map snd |> Array.max, Is.LessThan 300, sprintf "class counts: %A" counts)
    // a larger count with the same seed extends the smaller one (same teacher, same inputs)
    let small = Synthetic.teacherClassification 7 100 [| 1; 4; 5 |] 5
    Assert.That(small.Samples, equalTo a.Samples.[.. 100 * 20 - 1])
    Assert.That(Dataset.labels small, equalTo (Dataset.labels a).[..99])

[<Test>]
let ``teacher classification inputs are standard normal`` () =
    let d = Synthetic.teacherClassification 3 2000 [| 10 |] 3
    let xs = d.Samples |> Array.map float
    let mean = Array.average xs
    let var = xs |> Array.averageBy (fun x -> (x - mean) ** 2.0)
    Assert.That(abs mean, Is.LessThan 0.03)
    Assert.That(abs (var - 1.0), Is.LessThan 0.05)

[<Test>]
let ``teacher regression has the target shape and is deterministic`` () =
    let a = Synthetic.teacherRegression 11 50 6 3 0.1
    let b = Synthetic.teacherRegression 11 50 6 3 0.1
    let c = Synthetic.teacherRegression 12 50 6 3 0.1
    Assert.That(a.IsClassification, Is.False)
    Assert.That(a.SampleShape, equalTo [| 6 |])
    Assert.That(a.TargetShape, equalTo [| 3 |])
    Assert.That((Dataset.targetValues a).Length, equalTo 150)
    Assert.That(Dataset.targetValues a, equalTo (Dataset.targetValues b))
    Assert.That(Dataset.targetValues a, Is.Not.EqualTo(Dataset.targetValues c))
    // the noise is added on top of the same teacher outputs: noise 0 vs 0.1 differ by ~0.1
    let clean = Synthetic.teacherRegression 11 50 6 3 0.0
    Assert.That(clean.Samples, equalTo a.Samples)

    let diffs =
        Array.map2 (fun (x: float32) (y: float32) -> float (x - y)) (Dataset.targetValues a) (Dataset.targetValues clean)

    let rms = sqrt (diffs |> Array.averageBy (fun d -> d * d))
    Assert.That(rms, Is.InRange(0.07, 0.13))

// ---------------------------------------------------------------- loader

[<TestCase(true)>]
[<TestCase(false)>]
let ``an epoch covers every index exactly once`` (shuffle: bool) =
    let d = rowsDataset 23
    let opts = { Loader.defaults 5 with Shuffle = shuffle; Seed = 42 }
    let bs = Loader.batches opts d 3 |> Seq.toArray
    Assert.That(bs |> Array.map (fun b -> b.Size), equalTo [| 5; 5; 5; 5; 3 |])
    let idx = allIndices bs
    Assert.That(Array.sort idx, equalTo [| 0..22 |])

    if not shuffle then
        Assert.That(idx, equalTo [| 0..22 |])
    else
        Assert.That(idx, Is.Not.EqualTo([| 0..22 |]))

    Assert.That(Loader.batchCount opts d, equalTo 5)

[<Test>]
let ``DropLast drops the short last batch`` () =
    let d = rowsDataset 23
    let opts = { Loader.defaults 5 with DropLast = true; Seed = 1 }
    let bs = Loader.batches opts d 0 |> Seq.toArray
    Assert.That(bs |> Array.map (fun b -> b.Size), equalTo [| 5; 5; 5; 5 |])
    let idx = allIndices bs
    Assert.That(idx |> Array.distinct |> Array.length, equalTo 20)
    Assert.That(Loader.batchCount opts d, equalTo 4)
    let exact = Loader.batches { opts with BatchSize = 23 } d 0 |> Seq.toArray
    Assert.That(exact.Length, equalTo 1)

[<Test>]
let ``the order depends only on seed and epoch`` () =
    let d = rowsDataset 40
    let opts = { Loader.defaults 8 with Seed = 5 }
    let e1 = allIndices (Loader.batches opts d 1)
    // consuming other epochs first does not change epoch 1
    Loader.batches opts d 0 |> Seq.iter ignore
    Loader.batches opts d 2 |> Seq.head |> ignore
    Assert.That(allIndices (Loader.batches opts d 1), equalTo e1)
    Assert.That(Loader.order opts d 1, equalTo e1)
    Assert.That(allIndices (Loader.batches opts d 2), Is.Not.EqualTo(e1))
    Assert.That(allIndices (Loader.batches { opts with Seed = 6 } d 1), Is.Not.EqualTo(e1))

[<TestCase(true)>]
[<TestCase(false)>]
let ``batch tensors hold the dataset rows with the asked dtype`` (double: bool) =
    let d = rowsDataset 10
    let dtype = if double then Dtype.Float64 else Dtype.Float32
    let opts = { Loader.defaults 4 with Seed = 3; Dtype = dtype }

    for b in Loader.batches opts d 0 do
        Assert.That(b.Inputs.Shape, equalTo [| b.Size; 2; 3 |])
        Assert.That(b.Inputs.Dtype, equalTo dtype)
        Assert.That(b.Targets.IsNone, Is.True)
        let labels = b.Labels.Value
        Assert.That(labels.Dtype, equalTo Dtype.Int32)
        Assert.That(labels.Shape, equalTo [| b.Size |])
        Assert.That(Tensor.toInts labels, equalTo (b.Indices |> Array.map (fun i -> i % 4)))
        let expected = b.Indices |> Array.collect (fun i -> Array.init 6 (fun k -> float (i * 10 + k)))
        Assert.That(Tensor.toArray b.Inputs, equalTo expected)

[<Test>]
let ``regression batches carry float targets`` () =
    let d = Synthetic.teacherRegression 2 9 4 2 0.0
    let opts = { Loader.defaults 4 with Shuffle = false; Dtype = Dtype.Float64 }
    let bs = Loader.batches opts d 0 |> Seq.toArray
    let last = bs.[2]
    Assert.That(last.Labels.IsNone, Is.True)
    let t = last.Targets.Value
    Assert.That(t.Shape, equalTo [| 1; 2 |])
    Assert.That(t.Dtype, equalTo Dtype.Float64)
    Assert.That(Tensor.toArray t, equalTo (f32 (Dataset.targetValues d).[16..17]))
    Assert.That(Tensor.toArray last.Inputs, equalTo (f32 (Dataset.sample 8 d)))

[<Test>]
let ``the infinite stream cycles unshuffled passes`` () =
    let d = rowsDataset 7
    let opts = { Loader.defaults 3 with Shuffle = false }
    let idx = Loader.infinite opts d |> Seq.take 7 |> Seq.map (fun b -> b.Indices) |> Seq.toArray
    Assert.That(idx, equalTo [| [| 0; 1; 2 |]; [| 3; 4; 5 |]; [| 6 |]; [| 0; 1; 2 |]; [| 3; 4; 5 |]; [| 6 |]; [| 0; 1; 2 |] |])

[<Test>]
let ``the shuffled infinite stream reshuffles each pass with its own seed`` () =
    let d = rowsDataset 20
    let opts = { Loader.defaults 5 with Seed = 9 }
    let bs = Loader.infinite opts d |> Seq.take 12 |> Seq.toArray
    let pass k = bs.[4 * k .. 4 * k + 3] |> Seq.collect (fun b -> b.Indices) |> Seq.toArray

    for k in 0..2 do
        Assert.That(Array.sort (pass k), equalTo [| 0..19 |])

    Assert.That(pass 1, Is.Not.EqualTo(pass 0))
    Assert.That(pass 0, Is.Not.EqualTo(allIndices (Loader.batches opts d 0)))
    let again = Loader.infinite opts d |> Seq.take 12 |> Seq.collect (fun b -> b.Indices) |> Seq.toArray
    Assert.That(again, equalTo (bs |> Array.collect (fun b -> b.Indices)))

[<Test>]
let ``bad loader options are rejected naming the value`` () =
    let d = rowsDataset 5
    let e = Assert.Throws<ArgumentException>(fun () -> Loader.batches (Loader.defaults 0) d 0 |> ignore)
    Assert.That(e.Message, Does.Contain "BatchSize")
    Assert.That(e.Message, Does.Contain "0")

    let e2 =
        Assert.Throws<ArgumentException>(fun () -> Loader.infinite { Loader.defaults 4 with Dtype = Dtype.Int32 } d |> ignore)

    Assert.That(e2.Message, Does.Contain "int32")

    Assert.Throws<ArgumentException>(fun () -> Loader.infinite { Loader.defaults 8 with DropLast = true } d |> ignore)
    |> ignore

// ---------------------------------------------------------------- splits and normalisation

/// Sample i holds the single value i, so rows identify their source index.
let private indexDataset n = Dataset.create "idx" [| 1 |] (Array.init n float32) (Targets.Labels(Array.zeroCreate n, 2))

let private ids (d: Dataset) = d.Samples |> Array.map int

[<Test>]
let ``split is seeded, sized and disjoint`` () =
    let d = indexDataset 100
    let tr, va = Dataset.split 0.25 4 d
    Assert.That((tr.Count, va.Count), equalTo (75, 25))
    Assert.That(Array.append (ids tr) (ids va) |> Array.sort, equalTo [| 0..99 |])
    let tr2, va2 = Dataset.split 0.25 4 d
    Assert.That(ids va2, equalTo (ids va))
    let _, va3 = Dataset.split 0.25 5 d
    Assert.That(ids va3, Is.Not.EqualTo(ids va))
    let tr4, va4 = Dataset.splitCount 10 4 d
    Assert.That((tr4.Count, va4.Count), equalTo (90, 10))
    Assert.That(Set.intersect (set (ids tr4)) (set (ids va4)), Is.Empty)

[<Test>]
let ``splitAt keeps the first N-k for training and the last k for validation`` () =
    let d = indexDataset 60
    let tr, va = Dataset.splitAt 6 d
    Assert.That(ids tr, equalTo [| 0..53 |])
    Assert.That(ids va, equalTo [| 54..59 |])
    Assert.That(tr.Name, equalTo "idx/train")
    Assert.Throws<ArgumentException>(fun () -> Dataset.splitAt 61 d |> ignore) |> ignore

[<Test>]
let ``subset and concat keep rows and labels together`` () =
    let d = rowsDataset 6
    let s = Dataset.subset [| 5; 1; 1 |] d
    Assert.That(Dataset.labels s, equalTo [| 1; 1; 1 |])
    Assert.That(Dataset.sample 0 s, equalTo (Dataset.sample 5 d))
    let c = Dataset.concat "both" [ d; s ]
    Assert.That(c.Count, equalTo 9)
    Assert.That(Dataset.sample 6 c, equalTo (Dataset.sample 5 d))
    Assert.Throws<ArgumentException>(fun () -> Dataset.subset [| 6 |] d |> ignore) |> ignore

    Assert.Throws<ArgumentException>(fun () -> Dataset.create "bad" [| 2 |] [| 1.0f; 2.0f |] (Targets.Labels([| 4 |], 4)) |> ignore)
    |> ignore

[<Test>]
let ``normalize gives per-channel mean 0 and std 1`` () =
    let n = 50
    let rng = Random 17
    // channel c has mean about c + 0.5 and spread (c + 1) / 4
    let samples =
        Array.init (n * 3 * 4 * 4) (fun j ->
            let c = (j / 16) % 3
            float32 (float c + 0.5 + float (c + 1) / 4.0 * (rng.NextDouble() - 0.5)))

    let d = Dataset.create "rgb" [| 3; 4; 4 |] samples (Targets.Labels(Array.zeroCreate n, 10))
    let mean, std = Dataset.channelStats d
    assertAllClose 0.05 "raw means" [| 0.5; 1.5; 2.5 |] mean
    let nd = Dataset.normalize (mean, std) d
    let m2, s2 = Dataset.channelStats nd
    assertAllClose 1e-5 "normalised means" [| 0.0; 0.0; 0.0 |] m2
    assertAllClose 1e-5 "normalised stds" [| 1.0; 1.0; 1.0 |] s2
    // a single-channel set uses one mean and std
    let g = indexDataset 4
    let gm, gs = Dataset.channelStats g
    assertAllClose 1e-12 "index mean" [| 1.5 |] gm
    assertAllClose 1e-12 "index std" [| sqrt 1.25 |] gs
    let gn = Dataset.normalize (Datasets.mnistNormalization ()) g
    Assert.That(float (Dataset.sample 3 gn).[0], Is.EqualTo((3.0 - 0.1307) / 0.3081).Within(1e-5))

    Assert.Throws<ArgumentException>(fun () -> Dataset.normalize ([| 0.0 |], [| 1.0 |]) d |> ignore)
    |> ignore
