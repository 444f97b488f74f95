/// The library side: the trainer's divergence guard and zero-rate warning, library
/// checkpoints that carry the curvature stream's position (a resumed GroupedNewton run is bit
/// for bit the uninterrupted one), checkpoint names for any epoch count, and metrics that
/// represent non-finite values.
module GroupedNewton.Fault.Tests.TrainerGuard

open System
open System.IO
open System.Text.Json
open System.Threading
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

let private data () =
    let all = Synthetic.teacherClassification 1 360 [| 6 |] 3
    let test, train = Dataset.splitAt 60 all
    { Train = train; Validation = None; Test = Some test }

let private model () = Models.mlp [ 6; 5; 3 ] Activation.Tanh (Init.reference 2)

[<Test>]
let ``a loss that grows far beyond the first step's stops the run and keeps the last good checkpoint`` () =
    let dir = tempFolder ()
    let m = model ()
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.05 } m.Parameters

    let options = {
        TrainerOptions.Defaults with
            Epochs = 4
            BatchSize = 50
            CheckpointFolder = Some dir
            MetricsPath = Some(Path.Combine(dir, "m.jsonl"))
    }
    // after the checkpoint of epoch 1, the learning rate becomes absurd
    let good = ref [||]

    let onEvent e =
        match e with
        | CheckpointWritten p when good.Value.Length = 0 ->
            good.Value <- File.ReadAllBytes p

            for g in opt.Groups do
                g.LearningRate <- 1e12
        | _ -> ()

    let e =
        Assert.Throws<DivergenceException>(fun () -> Trainer.run m opt options (data ()) 0 onEvent CancellationToken.None |> ignore)

    let clear = e.Message.StartsWith "diverged:" && e.Epoch = 2

    let kept =
        Checkpoint.all dir = [ Checkpoint.fileFor dir 1 ]
        && File.ReadAllBytes(Checkpoint.fileFor dir 1) = good.Value

    record
        "trainer: loss growing far beyond the first step's"
        (if clear && kept then Clear
         elif clear then DataLoss
         else Silent)
        e.Message

[<Test>]
let ``with the guard off the same run is not stopped by the guard`` () =
    let m = model ()
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.05 } m.Parameters
    let options = { TrainerOptions.Defaults with Epochs = 2; BatchSize = 50; DivergenceFactor = None }

    let onEvent e =
        match e with
        | EpochCompleted _ ->
            (for g in opt.Groups do
                g.LearningRate <- 3.0)
        | _ -> ()

    let result =
        try
            Ok(Trainer.run m opt options (data ()) 0 onEvent CancellationToken.None)
        with ex ->
            Error ex

    match result with
    | Error(:? DivergenceException) -> Assert.Fail "the guard is off"
    | _ -> ()

    Assert.Throws<ArgumentException>(fun () -> Trainer.fit m opt { options with DivergenceFactor = Some 0.5 } (data ()) ignore |> ignore)
    |> ignore

[<Test>]
let ``a whole epoch at learning rate 0 gives a warning naming the cause`` () =
    let m = model ()
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.0 } m.Parameters
    let warnings = ResizeArray<string>()

    Trainer.fit m opt { TrainerOptions.Defaults with Epochs = 1; BatchSize = 50 } (data ()) (function
        | Warning w -> warnings.Add w
        | _ -> ())
    |> ignore

    Assert.That(warnings.Count, Is.EqualTo 1)
    Assert.That(warnings.[0], Does.Contain "did not move")
    Assert.That(warnings.[0], Does.Contain "learning rate is 0")

[<Test>]
let ``a library GroupedNewton run resumed from its checkpoint continues the curvature stream bit for bit`` () =
    let d = data ()

    let build () =
        let m = model ()
        let stream = CurvatureStream(m, Objective.Classification, d.Train, 50, Dtype.Float32)

        let opt =
            GroupedNewtonOptimizer.create
                { GroupedNewtonOptions.Paper with CurvaturePeriod = 4; Damping = 0.3 }
                0.9
                (Partition.canonical m.Parameters)
                stream.Next
                m.Parameters

        m, opt, stream

    let options stream dir = {
        TrainerOptions.Defaults with
            Epochs = 3
            BatchSize = 50
            CheckpointFolder = Some dir
            Curvature = Some stream
    }

    let whole = tempFolder ()
    let m, opt, s = build ()
    Trainer.fit m opt (options s whole) d ignore |> ignore
    let split = tempFolder ()
    let m1, opt1, s1 = build ()
    Trainer.fit m1 opt1 { options s1 split with Epochs = 1 } d ignore |> ignore
    let m2, opt2, s2 = build ()

    Trainer.resume (Checkpoint.fileFor split 1) m2 opt2 (options s2 split) d ignore CancellationToken.None
    |> ignore

    Assert.That(s2.Position, Is.EqualTo s.Position)
    Assert.That(File.ReadAllBytes(Checkpoint.fileFor split 3), equalTo (File.ReadAllBytes(Checkpoint.fileFor whole 3)))
    Assert.That((Checkpoint.readInfo (Checkpoint.fileFor split 3)).Run.CurvaturePosition, Is.EqualTo(Some s.Position))

[<Test>]
let ``checkpoint names and the latest checkpoint work for any epoch count`` () =
    let dir = tempFolder ()

    for e in [ 9; 99; 9999; 10000; 123456 ] do
        File.WriteAllText(Checkpoint.fileFor dir e, "x")

    Assert.That(Checkpoint.latest dir, Is.EqualTo(Some(Checkpoint.fileFor dir 123456)))
    Assert.That(Checkpoint.all dir |> List.map (fun f -> (Checkpoint.epochOfName f).Value), equalTo [ 123456; 10000; 9999; 99; 9 ])
    Checkpoint.prune dir 123456 1
    Assert.That(Checkpoint.all dir, equalTo [ Checkpoint.fileFor dir 123456; Checkpoint.fileFor dir 10000 ])

[<Test>]
let ``metrics write non-finite values as strings that read back`` () =
    let m = {
        Epoch = 1
        Steps = 2
        Train = { Loss = infinity; Accuracy = 0.5 }
        Validation = Some { Loss = nan; Accuracy = nan }
        Test = Some { Loss = -infinity; Accuracy = 0.1 }
        WallSeconds = 1.0
        LearningRates = [| "all", nan |]
    }

    let root = JsonDocument.Parse(Metrics.toJson m).RootElement
    Assert.That(root.GetProperty("train_loss").GetString(), Is.EqualTo "Infinity")
    Assert.That(root.GetProperty("validation_loss").GetString(), Is.EqualTo "NaN")
    Assert.That(root.GetProperty("test_loss").GetString(), Is.EqualTo "-Infinity")
    Assert.That(Metrics.readFloat (root.GetProperty "test_loss"), Is.EqualTo -infinity)
    Assert.That(Double.IsNaN(Metrics.readFloat (root.GetProperty("learning_rates").GetProperty "all")))
    Assert.That(root.GetProperty("test_accuracy").GetDouble(), Is.EqualTo 0.1)
