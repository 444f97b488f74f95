/// The training loop: loss falls on the synthetic task, checkpoints resume to the
/// bit-identical trajectory, metrics are written, cancellation stops between steps.
module GroupedNewton.Tests.TrainingTests

open System
open System.IO
open System.Text.Json
open System.Threading
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Tests.TestUtil

let private task () =
    let all = Synthetic.teacherClassification 7 600 [| 12 |] 3
    let train, rest = Dataset.splitAt 200 all
    let validation, test = Dataset.splitAt 100 rest
    { Train = train; Validation = Some validation; Test = Some test }

let private model () = Models.mlp [ 12; 32; 3 ] Activation.Tanh (Init.reference 1)
let private sgd (m: Model) = Sgd.create { SgdOptions.Defaults with LearningRate = 0.1; Momentum = 0.9 } m.Parameters

let private tempDir () =
    let d = Path.Combine(Path.GetTempPath(), sprintf "gn-train-%s" (Guid.NewGuid().ToString("N")))
    Directory.CreateDirectory d |> ignore
    d

[<Test>]
let ``a short run on the synthetic task lowers the loss at least fourfold and beats chance`` () =
    let m = model ()
    let data = task ()
    let opt = sgd m
    let before = Trainer.evaluate m opt.Parameters Objective.Classification 1000 Dtype.Float32 data.Train
    let history = Trainer.fit m opt { TrainerOptions.Defaults with Epochs = 15; BatchSize = 20 } data ignore
    let last = List.last history
    Assert.That(history.Length, equalTo 15)
    Assert.That(last.Train.Loss, Is.LessThan(before.Loss / 4.0), sprintf "loss %g -> %g" before.Loss last.Train.Loss)
    Assert.That(last.Validation.Value.Accuracy, Is.GreaterThan 0.8)

[<Test>]
let ``a run resumed from a mid-training checkpoint is bit-identical to an uninterrupted run`` () =
    let dir = tempDir ()

    try
        let data = task ()
        let options = { TrainerOptions.Defaults with Epochs = 4; BatchSize = 32; Seed = 11 }
        let m1 = model ()
        let o1 = sgd m1
        Trainer.fit m1 o1 options data ignore |> ignore
        let m2 = model ()
        let o2 = sgd m2
        Trainer.fit m2 o2 { options with Epochs = 2; CheckpointFolder = Some dir } data ignore |> ignore
        let ckpt = (Checkpoint.latest dir).Value
        Assert.That(ckpt, Does.EndWith "epoch-0002.ckpt")
        let m3 = model ()
        let o3 = sgd m3
        let resumed = Trainer.resume ckpt m3 o3 options data ignore CancellationToken.None
        Assert.That(resumed |> List.map (fun r -> r.Epoch), equalTo [ 3; 4 ])

        for k in o1.Parameters.Keys do
            Assert.That(Tensor.toArray32 o3.Parameters.[k.Name], equalTo (Tensor.toArray32 o1.Parameters.[k]), k.Name)

        Assert.That(Directory.GetFiles(dir, "*.tmp"), Is.Empty)
    finally
        Directory.Delete(dir, true)

[<Test>]
let ``metrics are appended as one JSON object per epoch and events are reported`` () =
    let dir = tempDir ()

    try
        let path = Path.Combine(dir, "metrics.jsonl")
        let events = ResizeArray<TrainingEvent>()
        let m = model ()

        Trainer.fit m (sgd m) { TrainerOptions.Defaults with Epochs = 2; BatchSize = 50; MetricsPath = Some path } (task ()) events.Add
        |> ignore

        let lines = File.ReadAllLines path
        Assert.That(lines.Length, equalTo 2)
        let doc = JsonDocument.Parse lines.[1]
        Assert.That(doc.RootElement.GetProperty("epoch").GetInt32(), equalTo 2)
        Assert.That(doc.RootElement.GetProperty("steps").GetInt32(), equalTo 8) // 400 training samples, batches of 50

        for field in [ "train_loss"; "train_accuracy"; "validation_loss"; "test_accuracy"; "wall_seconds" ] do
            Assert.That(Double.IsFinite(doc.RootElement.GetProperty(field).GetDouble()), Is.True, field)

        let steps =
            events
            |> Seq.filter (function
                | StepCompleted _ -> true
                | _ -> false)
            |> Seq.length

        let epochs =
            events
            |> Seq.filter (function
                | EpochCompleted _ -> true
                | _ -> false)
            |> Seq.length

        Assert.That((steps, epochs), equalTo (16, 2))
    finally
        Directory.Delete(dir, true)

[<Test>]
let ``a model and an optimizer over different parameter sets are refused with an explanation`` () =
    let e =
        Assert.Throws<OptimizationException>(fun () ->
            Trainer.fit (model ()) (sgd (model ())) { TrainerOptions.Defaults with Epochs = 1; BatchSize = 50 } (task ()) ignore
            |> ignore)

    Assert.That(e.Message, Does.Contain "another parameter set")

[<Test>]
let ``cancellation stops between steps and leaves a usable model`` () =
    let m = model ()
    let opt = sgd m
    use cts = new CancellationTokenSource()

    let onEvent e =
        match e with
        | StepCompleted(_, step, _) when step = 3 -> cts.Cancel()
        | _ -> ()

    let history =
        Trainer.run m opt { TrainerOptions.Defaults with Epochs = 3; BatchSize = 20 } (task ()) 0 onEvent cts.Token

    Assert.That(history, Is.Empty)
    Assert.That(opt.StepCount, equalTo 3)
    Assert.That(Parameters.allFinite opt.Parameters, Is.True)
    let e = Trainer.evaluate m opt.Parameters Objective.Classification 100 Dtype.Float32 (task ()).Train
    Assert.That(Double.IsFinite e.Loss, Is.True)

[<Test>]
let ``a checkpoint for another model or with other shapes is rejected and changes nothing`` () =
    let dir = tempDir ()

    try
        let m = model ()
        let opt = sgd m
        let path = Path.Combine(dir, "a.ckpt")
        Checkpoint.save path 1 m opt
        let other = Models.mlp [ 12; 16; 3 ] Activation.Tanh (Init.reference 1)
        let oo = sgd other
        let e = Assert.Throws<StateFormatException>(fun () -> Checkpoint.load path other oo |> ignore)
        Assert.That(e.Message, Does.Contain "mlp-12-32-3")

        Assert.That(
            obj.ReferenceEquals(oo.Parameters.Values.[0], other.Parameters.Values.[0])
            || Tensor.toArray oo.Parameters.Values.[0] = Tensor.toArray other.Parameters.Values.[0],
            Is.True
        )
    finally
        Directory.Delete(dir, true)

[<Test>]
let ``the autoencoder objective trains on reconstruction`` () =
    // inputs in (0, 1) on a 4-dimensional manifold, so an 8-unit code can hold them
    let x = Tensor.sigmoid (Tensor.matmul (Tensor.randn 3 [| 200; 4 |]) (Tensor.randn 4 [| 4; 16 |]))

    let sigmoidData =
        Dataset.create "unit" [| 16 |] (Tensor.toArray32 x) (Targets.Labels(Array.zeroCreate 200, 1))

    let m = Models.mlpOn [| 16 |] [ 16; 8; 16 ] Activation.Relu (Init.pytorch 2)
    let opt = Adam.create { AdamOptions.Defaults with LearningRate = 0.01 } m.Parameters
    let before = Trainer.evaluate m opt.Parameters Objective.Reconstruction 200 Dtype.Float32 sigmoidData

    let h =
        Trainer.fit
            m
            opt
            { TrainerOptions.Defaults with Epochs = 20; BatchSize = 20; Objective = Objective.Reconstruction }
            { Train = sigmoidData; Validation = None; Test = None }
            ignore
    // BCE against soft targets is bounded below by their entropy; the excess must halve
    let entropy =
        (sigmoidData.Samples
         |> Array.sumBy (fun y -> let y = float y in -(y * log y + (1.0 - y) * log (1.0 - y))))
        / 200.0

    let after = Trainer.evaluate m opt.Parameters Objective.Reconstruction 200 Dtype.Float32 sigmoidData

    Assert.That(
        after.Loss - entropy,
        Is.LessThan(0.5 * (before.Loss - entropy)),
        sprintf "entropy %g, before %g, after %g" entropy before.Loss after.Loss
    )

    Assert.That((List.last h).Epoch, equalTo 20)
