/// The trainer's step cap, optional training-set evaluation, start-of-run shape check and
/// per-step learning-rate schedules.
module GroupedNewton.Tests.TrainerOptionsTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Tests.TestUtil

let private data () =
    let all = Synthetic.teacherClassification 3 500 [| 6 |] 3
    let train, test = Dataset.splitAt 100 all
    { Train = train; Validation = None; Test = Some test }

let private model () = Models.mlp [ 6; 8; 3 ] Activation.Tanh (Init.reference 2)
let private sgd (m: Model) lr = Sgd.create { SgdOptions.Defaults with LearningRate = lr } m.Parameters

[<Test>]
let ``MaxStepsPerEpoch caps every epoch's steps and trains exactly on the first batches of its order`` () =
    let d = data () // 400 training samples: 20 batches of 20
    let m = model ()
    let o = sgd m 0.1
    let steps = ResizeArray<int * int>()

    let capped =
        Trainer.fit m o { TrainerOptions.Defaults with Epochs = 3; BatchSize = 20; MaxStepsPerEpoch = Some 4 } d (function
            | StepCompleted(e, s, _) -> steps.Add((e, s))
            | _ -> ())

    Assert.That(capped |> List.map (fun r -> r.Steps), equalTo [ 4; 4; 4 ])
    Assert.That(o.StepCount, equalTo 12)
    Assert.That(steps |> Seq.map snd |> Seq.max, equalTo 4)
    // the same trajectory as stepping by hand on the first 4 batches of each epoch's order
    let m2 = model ()
    let o2 = sgd m2 0.1
    let loader = { Loader.defaults 20 with Seed = 0 }

    for epoch in 0..2 do
        for b in Loader.batches loader d.Train epoch |> Seq.truncate 4 do
            o2.StepOn(m2, b.Inputs, (fun out -> Losses.crossEntropy out b.Labels.Value)) |> ignore

    Array.iter2
        (fun (a: Tensor) (b: Tensor) -> Assert.That(Tensor.toArray a, equalTo (Tensor.toArray b)))
        o.Parameters.Values
        o2.Parameters.Values

[<Test>]
let ``EvaluateTrainingSet false leaves the training accuracy NaN and the other metrics as they were`` () =
    let run evaluate =
        let m = model ()

        Trainer.fit
            m
            (sgd m 0.1)
            { TrainerOptions.Defaults with Epochs = 2; BatchSize = 50; EvaluateTrainingSet = evaluate }
            (data ())
            ignore

    let withEval = run true
    let without = run false
    Assert.That(withEval |> List.forall (fun r -> Double.IsFinite r.Train.Accuracy), Is.True)
    Assert.That(without |> List.forall (fun r -> Double.IsNaN r.Train.Accuracy), Is.True)
    // the step losses and the test evaluation do not depend on it
    Assert.That(without |> List.map (fun r -> r.Train.Loss), equalTo (withEval |> List.map (fun r -> r.Train.Loss)))
    Assert.That(without |> List.map (fun r -> r.Test.Value), equalTo (withEval |> List.map (fun r -> r.Test.Value)))

[<Test>]
let ``a data set of another sample shape is refused before any step, naming both shapes`` () =
    let m = Models.mlp [ 5; 8; 3 ] Activation.Tanh (Init.reference 2)
    let o = sgd m 0.1
    let before = Tensor.toArray o.Parameters.Values.[0]

    let e =
        Assert.Throws<ShapeMismatchException>(fun () -> Trainer.fit m o TrainerOptions.Defaults (data ()) ignore |> ignore)

    Assert.That(e.Message, Does.Contain "[5]")
    Assert.That(e.Message, Does.Contain "[6]")
    Assert.That(e.Message, Does.Contain "training set")
    Assert.That(o.StepCount, equalTo 0)
    Assert.That(Tensor.toArray o.Parameters.Values.[0], equalTo before)
    // a test set of another shape too, and a model with too few outputs for the classes
    let m6 = model ()
    let d = data ()
    let other = Synthetic.teacherClassification 3 50 [| 7 |] 3

    let e2 =
        Assert.Throws<ShapeMismatchException>(fun () ->
            Trainer.fit m6 (sgd m6 0.1) TrainerOptions.Defaults { d with Test = Some other } ignore |> ignore)

    Assert.That(e2.Message, Does.Contain "test set")
    Assert.That(e2.Message, Does.Contain "[7]")
    let m2 = Models.mlp [ 6; 8; 2 ] Activation.Tanh (Init.reference 2)

    let e3 =
        Assert.Throws<ShapeMismatchException>(fun () -> Trainer.fit m2 (sgd m2 0.1) TrainerOptions.Defaults d ignore |> ignore)

    Assert.That(e3.Message, Does.Contain "3 classes")

[<Test>]
let ``MaxStepsPerEpoch below 1 and a bad schedule are refused by name`` () =
    let m = model ()
    let bad o = Assert.Throws<ArgumentException>(fun () -> Trainer.fit m (sgd m 0.1) o (data ()) ignore |> ignore)
    Assert.That((bad { TrainerOptions.Defaults with MaxStepsPerEpoch = Some 0 }).Message, Does.Contain "MaxStepsPerEpoch")

    Assert.That(
        (bad { TrainerOptions.Defaults with Schedule = Some(LearningRateSchedule.cosine 0 0.0) }).Message,
        Does.Contain "steps must be at least 1"
    )

    Assert.That(
        (bad { TrainerOptions.Defaults with Schedule = Some(LearningRateSchedule.linearWarmup 5 1.5) }).Message,
        Does.Contain "startFactor"
    )

[<Test>]
let ``the warm-up and the cosine schedule give their analytic factors, alone and composed`` () =
    let warm = LearningRateSchedule.linearWarmup 4 0.2
    let cos = LearningRateSchedule.cosine 10 0.1
    let f = LearningRateSchedule.factor
    // warm-up: 0.2 + 0.8 t / 4, then 1
    for t, v in [ 0, 0.2; 1, 0.4; 2, 0.6; 3, 0.8; 4, 1.0; 9, 1.0 ] do
        assertClose 1e-15 (sprintf "warm-up at %d" t) v (f warm t)
    // cosine: 0.1 + 0.9 (1 + cos(pi t / 10)) / 2, then 0.1
    assertClose 1e-15 "cosine at 0" 1.0 (f cos 0)
    assertClose 1e-15 "cosine at 5" 0.55 (f cos 5)
    assertClose 1e-15 "cosine at 10" 0.1 (f cos 10)
    assertClose 1e-15 "cosine after 10" 0.1 (f cos 25)
    assertClose 1e-15 "cosine at 2" (0.1 + 0.45 * (1.0 + Math.Cos(Math.PI / 5.0))) (f cos 2)
    // product and sequence
    let product = LearningRateSchedule.times warm cos
    assertClose 1e-15 "product at 2" (0.6 * (0.1 + 0.45 * (1.0 + Math.Cos(Math.PI / 5.0)))) (f product 2)
    let seq = LearningRateSchedule.andThen warm 4 cos
    assertClose 1e-15 "sequence at 3" 0.8 (f seq 3)
    assertClose 1e-15 "sequence at 4 (cosine's 0)" 1.0 (f seq 4)
    assertClose 1e-15 "sequence at 9 (cosine's 5)" 0.55 (f seq 9)
    Assert.Throws<ArgumentException>(fun () -> f warm -1 |> ignore) |> ignore

[<Test>]
let ``a schedule in the trainer sets each step's rate from the optimizer's step count`` () =
    let schedule =
        LearningRateSchedule.andThen (LearningRateSchedule.linearWarmup 3 0.0) 3 (LearningRateSchedule.cosine 5 0.0)

    let m = model ()
    let o = sgd m 0.5
    let rates = ResizeArray<float>()

    let options = {
        TrainerOptions.Defaults with
            Epochs = 2
            BatchSize = 100
            Schedule = Some schedule
            MaxStepsPerEpoch = Some 4
    }

    Trainer.fit m o options (data ()) (function
        | StepCompleted _ -> rates.Add o.Groups.[0].LearningRate
        | _ -> ())
    |> ignore

    let expected = Array.init 8 (fun t -> 0.5 * LearningRateSchedule.factor schedule t)
    assertAllClose 1e-15 "rates of steps 0..7" expected (rates.ToArray())
    Assert.That(expected.[0], equalTo 0.0)
    // GroupedNewton computes its own rates: refused
    let gm = model ()
    let d = data ()
    let batch = Loader.batch (Loader.defaults 50) d.Train (Array.init 50 id)
    let closure () (ps: Parameters) = Losses.crossEntropy (gm.Forward(ps, batch.Inputs)) batch.Labels.Value

    let gn =
        GroupedNewtonOptimizer.create GroupedNewtonOptions.Defaults 0.9 (Partition.canonical gm.Parameters) closure gm.Parameters

    let e =
        Assert.Throws<ArgumentException>(fun () -> Trainer.fit gm gn { options with Epochs = 1 } d ignore |> ignore)

    Assert.That(e.Message, Does.Contain "ReduceDampingOnPlateau")
