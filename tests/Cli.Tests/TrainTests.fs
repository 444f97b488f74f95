module GroupedNewton.Cli.Tests.TrainTests

open System.IO
open System.Text.Json
open System.Threading
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Cli
open GroupedNewton.Cli.Tests.CliRunner

/// The task, model and optimizer the CLI builds for these arguments (to load checkpoints).
let private rebuild (optimizer: string) (epochs: int) =
    let task = {
        Settings.TaskSettings.Defaults with
            Dataset = Some "synthetic"
            Hidden = [ 8 ]
            Samples = Some 300
            BatchSize = 50
            Epochs = epochs
    }

    let data = Tasks.load task
    let model = Tasks.model task data 0
    let curvature = CurvatureStream(model, data.Objective, data.Data.Train, 50, Dtype.Float32)
    let settings = OptimizerFactory.settings optimizer task.Model OptimizerOverrides.None
    let opt = OptimizerCatalog.create settings model "canonical" curvature.Next
    data, model, opt

let private jsonLines (path: string) = File.ReadAllLines path |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)

let private flat (ps: Parameters) = ps.Values |> Array.collect Tensor.toArray

[<Test>]
let ``train writes JSON-lines and CSV metrics and a loadable checkpoint per epoch`` () =
    let dir = tempFolder ()

    let r =
        run ([ "train"; "--optimizer"; "sgd"; "--lr"; "0.05"; "--epochs"; "2"; "--out"; dir ] @ tinyTask)

    Assert.That(r.Code, Is.EqualTo 0, r.Err)
    let lines = jsonLines (Path.Combine(dir, "metrics.jsonl"))
    Assert.That(lines |> Array.map (fun l -> l.GetProperty("epoch").GetInt32()), equalTo [| 1; 2 |])
    Assert.That(lines |> Array.map (fun l -> l.GetProperty("steps").GetInt32()), equalTo [| 6; 6 |])
    let csv = File.ReadAllLines(Path.Combine(dir, "metrics.csv"))
    Assert.That(csv.Length, Is.EqualTo 3)
    Assert.That(csv.[0], Does.StartWith "epoch,steps,train_loss")
    // the checkpoint of epoch 2 holds the parameters whose test loss the metrics report
    let data, model, opt = rebuild "sgd" 2
    let initial = flat opt.Parameters
    let epoch = Checkpoint.load (Path.Combine(dir, "epoch-0002.ckpt")) model opt
    Assert.That(epoch, Is.EqualTo 2)
    Assert.That(flat opt.Parameters, Is.Not.EqualTo(box initial))
    let test = Trainer.evaluate model opt.Parameters data.Objective 1000 Dtype.Float32 data.Data.Test.Value
    Assert.That(test.Loss, Is.EqualTo(lines.[1].GetProperty("test_loss").GetDouble()))
    Assert.That(test.Accuracy, Is.EqualTo(lines.[1].GetProperty("test_accuracy").GetDouble()))

let private resumeMatches (optimizer: string) (extra: string list) =
    let whole = tempFolder ()
    let split = tempFolder ()
    let common = [ "--optimizer"; optimizer ] @ extra @ tinyTask
    let a = run ([ "train"; "--epochs"; "2"; "--out"; whole ] @ common)
    Assert.That(a.Code, Is.EqualTo 0, a.Err)
    // progress lines: GroupedNewton shows its per-subset learning rates, the others none
    Assert.That(a.Out.Contains "lr[1.weight=", Is.EqualTo(optimizer.StartsWith "grouped-newton"))
    let b1 = run ([ "train"; "--epochs"; "1"; "--out"; split ] @ common)
    Assert.That(b1.Code, Is.EqualTo 0, b1.Err)
    let b2 = run ([ "train"; "--epochs"; "2"; "--resume"; "--out"; split ] @ common)
    Assert.That(b2.Code, Is.EqualTo 0, b2.Err)
    Assert.That(b2.Out, Does.Contain "resuming from")

    let load dir =
        let _, model, opt = rebuild optimizer 2
        Checkpoint.load (Path.Combine(dir, "epoch-0002.ckpt")) model opt |> ignore
        flat opt.Parameters
    // bit-identical parameters and the same epoch-2 metrics
    Assert.That(load split, equalTo (load whole))

    let lossOf dir =
        (jsonLines (Path.Combine(dir, "metrics.jsonl")) |> Array.last).GetProperty("train_loss").GetDouble()

    Assert.That(lossOf split, Is.EqualTo(lossOf whole))
    Assert.That((jsonLines (Path.Combine(split, "metrics.jsonl"))).Length, Is.EqualTo 2)

[<Test>]
let ``resuming SGD after epoch 1 of 2 gives the uninterrupted run bit for bit`` () = resumeMatches "sgd" []

[<Test>]
let ``resuming GroupedNewton after epoch 1 of 2 continues the curvature stream bit for bit`` () =
    // period 4: curvature updates at steps 0, 4, 8: one straddles the epoch boundary
    resumeMatches "grouped-newton" [ "--period"; "4" ]

[<Test>]
let ``cancelling train leaves the last complete checkpoint loadable and resumable`` () =
    let dir = tempFolder ()
    use cts = new CancellationTokenSource()
    use writer = new CancellingWriter("epoch 1/3 done", cts)

    let code, err =
        runWith writer cts.Token ([ "train"; "--optimizer"; "sgd"; "--epochs"; "3"; "--out"; dir ] @ tinyTask)

    Assert.That(code, Is.EqualTo ExitCode.Cancelled, err)
    Assert.That(writer.ToString(), Does.Contain "interrupted")
    Assert.That(File.Exists(Path.Combine(dir, "epoch-0002.ckpt")), Is.False)
    Assert.That(Directory.GetFiles(dir, "*.tmp"), Is.Empty)
    let _, model, opt = rebuild "sgd" 3
    Assert.That(Checkpoint.load (Path.Combine(dir, "epoch-0001.ckpt")) model opt, Is.EqualTo 1)
    let r = run ([ "train"; "--optimizer"; "sgd"; "--epochs"; "3"; "--resume"; "--out"; dir ] @ tinyTask)
    Assert.That(r.Code, Is.EqualTo 0, r.Err)

    Assert.That(
        (jsonLines (Path.Combine(dir, "metrics.jsonl")))
        |> Array.map (fun l -> l.GetProperty("epoch").GetInt32()),
        equalTo [| 1; 2; 3 |]
    )

[<Test>]
let ``resume refuses a checkpoint written with another seed`` () =
    let dir = tempFolder ()
    let a = run ([ "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--out"; dir ] @ tinyTask)
    Assert.That(a.Code, Is.EqualTo 0, a.Err)

    let b =
        run (
            [ "train"; "--optimizer"; "sgd"; "--epochs"; "2"; "--seed"; "5"; "--resume"; "--out"; dir ]
            @ tinyTask
        )

    Assert.That(b.Code, Is.EqualTo ExitCode.Usage)
    Assert.That(b.Err, Does.Contain "--seed 0, not 5")

[<Test>]
let ``resuming uniform-averaged GroupedNewton continues its averages bit for bit`` () =
    // period 2: three curvature updates per epoch; the averages span the epoch boundary
    resumeMatches "grouped-newton-avg" [ "--period"; "2" ]

[<Test>]
let ``without --dataset the task says which data it uses and how to install Fashion-MNIST`` () =
    let name, note = Tasks.resolveDataset Settings.TaskSettings.Defaults

    if GroupedNewton.Data.Datasets.isAvailable "fashion-mnist" then
        Assert.That(name, Is.EqualTo "fashion-mnist")
        Assert.That(note.Value, Does.Contain "using Fashion-MNIST from")
    else
        Assert.That(name, Is.EqualTo "fashion-mnist-mini")
        Assert.That(note.Value, Does.Contain "apt-get install dataset-fashion-mnist")
        Assert.That(note.Value, Does.Contain "GROUPEDNEWTON_DATA")
    // an explicit data set is used as given, without a note
    Assert.That(
        Tasks.resolveDataset { Settings.TaskSettings.Defaults with Dataset = Some "synthetic" },
        Is.EqualTo(("synthetic", (None: string option)))
    )

[<Test>]
let ``K-FAC, K-BFGS and K-BFGS(L) train through the CLI and lower the training loss`` () =
    for name in [ "kfac"; "kbfgs"; "kbfgs-l" ] do
        let dir = tempFolder ()
        let r = run ([ "train"; "--optimizer"; name; "--epochs"; "2"; "--out"; dir ] @ tinyTask)
        Assert.That(r.Code, Is.EqualTo 0, name + ": " + r.Err)

        let losses =
            jsonLines (Path.Combine(dir, "metrics.jsonl"))
            |> Array.map (fun l -> l.GetProperty("train_loss").GetDouble())

        Assert.That(losses.Length, Is.EqualTo 2, name)
        Assert.That(losses.[1], Is.LessThan losses.[0], name)
        Assert.That(File.Exists(Path.Combine(dir, "epoch-0002.ckpt")), name)

[<Test>]
let ``resuming K-FAC after epoch 1 of 2 gives the uninterrupted run bit for bit`` () = resumeMatches "kfac" []

[<Test>]
let ``resuming K-BFGS(L) after epoch 1 of 2 gives the uninterrupted run bit for bit`` () = resumeMatches "kbfgs-l" []

/// Runs `f` with GROUPEDNEWTON_DATA set to `value`, restoring it afterwards.
let private withData (value: string) (f: unit -> 'a) =
    let saved = System.Environment.GetEnvironmentVariable "GROUPEDNEWTON_DATA"

    try
        System.Environment.SetEnvironmentVariable("GROUPEDNEWTON_DATA", value)
        f ()
    finally
        System.Environment.SetEnvironmentVariable("GROUPEDNEWTON_DATA", saved)

[<Test>]
let ``without Fashion-MNIST the default is the bundled fashion-mnist-mini, and a partial copy is still refused`` () =
    let empty = tempFolder ()
    let name, note = withData empty (fun () -> Tasks.resolveDataset Settings.TaskSettings.Defaults)
    Assert.That(name, Is.EqualTo "fashion-mnist-mini")
    Assert.That(note.Value, Does.Contain "fashion-mnist-mini")
    Assert.That(note.Value, Does.Contain(Path.Combine(System.AppContext.BaseDirectory, "data", "fashion-mnist-mini")))
    // a folder holding some of Fashion-MNIST's files is an install to fix, not a reason to switch
    let partial = tempFolder ()
    File.WriteAllBytes(Path.Combine(partial, "train-images-idx3-ubyte.gz"), [| 0x1Fuy; 0x8Buy |])
    let name, _ = withData partial (fun () -> Tasks.resolveDataset Settings.TaskSettings.Defaults)
    Assert.That(name, Is.EqualTo "fashion-mnist")

[<Test>]
let ``a short default run on fashion-mnist-mini trains on its 5400 images and beats chance on its test set`` () =
    let dir = tempFolder ()
    let empty = tempFolder ()

    let r =
        withData empty (fun () ->
            run [
                "train"
                "--optimizer"
                "adam"
                "--hidden"
                "32"
                "--epochs"
                "1"
                "--max-steps"
                "20"
                "--threads"
                "1"
                "--out"
                dir
            ])

    Assert.That(r.Code, Is.EqualTo 0, r.Err)
    Assert.That(r.Out, Does.Contain "data: fashion-mnist-mini, 2000 train / 600 validation / 1000 test samples of shape [1; 28; 28]")
    let line = (jsonLines (Path.Combine(dir, "metrics.jsonl"))).[0]
    Assert.That(line.GetProperty("steps").GetInt32(), Is.EqualTo 20)
    // ten balanced classes: chance is 0.1; 20 Adam steps on real images reach far more
    Assert.That(line.GetProperty("test_accuracy").GetDouble(), Is.GreaterThan 0.5)
