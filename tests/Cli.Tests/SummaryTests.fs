module GroupedNewton.Cli.Tests.SummaryTests

open System
open System.Globalization
open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli
open GroupedNewton.Cli.Tests.CliRunner

/// The S×S block printed after the line "H̄ (S×S):".
let private printedMatrix (text: string) =
    let lines = text.Split('\n') |> Array.map (fun l -> l.TrimEnd('\r'))
    let i = lines |> Array.findIndex (fun l -> l.StartsWith "H̄ (")
    let openAt = lines.[i].IndexOf('(') + 1
    let S = int (lines.[i].Substring(openAt, lines.[i].IndexOf('×') - openAt))

    S,
    Array.init S (fun r ->
        lines.[i + 1 + r].Split(' ', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun v -> Double.Parse(v, CultureInfo.InvariantCulture)))

[<Test>]
let ``summary prints the S×S matrix H̄ of the first batch, equal to the library's`` () =
    let dir = tempFolder ()
    let r = run ([ "summary"; "--partition"; "canonical"; "--out"; dir ] @ tinyTask)
    Assert.That(r.Code, Is.EqualTo 0, r.Err)
    let S, h = printedMatrix r.Out
    Assert.That(S, Is.EqualTo 4)
    Assert.That(h |> Array.map Array.length, equalTo (Array.create 4 4))
    // the same summary computed directly: the first 50 training samples, u = gradient
    let task = {
        Settings.TaskSettings.Defaults with
            Dataset = Some "synthetic"
            Hidden = [ 8 ]
            Samples = Some 300
            BatchSize = 50
    }

    let data = Tasks.load task
    let model = Tasks.model task data 0
    let b = Loader.batch { Loader.defaults 50 with Shuffle = false } data.Data.Train (Array.init 50 id)
    let loss (p: Parameters) = Losses.crossEntropy (model.Forward(p, b.Inputs)) b.Labels.Value
    let ps = model.Parameters
    let u = ps.WithValues(Ad.gradMany (fun vs -> loss (ps.WithValues vs)) ps.Values)
    let s = Summary.compute loss ps (Partition.canonical ps) u

    for i in 0..3 do
        for j in 0..3 do
            Assert.That(h.[i].[j], Is.EqualTo(s.Hessian.[i, j]).Within(1e-4 * abs s.Hessian.[i, j] + 1e-12), sprintf "H̄[%d,%d]" i j)
            Assert.That(h.[i].[j], Is.EqualTo h.[j].[i])

    Assert.That(r.Out, Does.Contain "GroupedNewton learning rates")
    Assert.That(r.Out, Does.Contain "suggested per-layer SGD learning rates")
    let html = File.ReadAllText(Path.Combine(dir, "summary.html"))
    Assert.That(Text.RegularExpressions.Regex.Matches(html, "class=\"cell\"").Count, Is.EqualTo 16)

[<Test>]
let ``summary with the per-layer partition prints a 2×2 matrix`` () =
    let r = run ([ "summary"; "--partition"; "per-layer" ] @ tinyTask)
    Assert.That(r.Code, Is.EqualTo 0, r.Err)
    let S, h = printedMatrix r.Out
    Assert.That(S, Is.EqualTo 2)
    Assert.That(h.[0].[1], Is.EqualTo h.[1].[0])
    Assert.That(h.[0].[0], Is.GreaterThan 0.0)

[<Test>]
let ``summary reads the parameters of a train checkpoint`` () =
    let dir = tempFolder ()
    let t = run ([ "train"; "--optimizer"; "sgd"; "--lr"; "0.1"; "--epochs"; "1"; "--out"; dir ] @ tinyTask)
    Assert.That(t.Code, Is.EqualTo 0, t.Err)
    let atInit = run ([ "summary" ] @ tinyTask)
    let trained = run ([ "summary"; "--checkpoint"; Path.Combine(dir, "epoch-0001.ckpt") ] @ tinyTask)
    Assert.That(trained.Code, Is.EqualTo 0, trained.Err)
    Assert.That(trained.Out, Does.Contain "parameters from")
    Assert.That(snd (printedMatrix trained.Out), Is.Not.EqualTo(box (snd (printedMatrix atInit.Out))))
    // a checkpoint of another model is refused by name
    let other =
        run ([ "summary"; "--checkpoint"; Path.Combine(dir, "epoch-0001.ckpt") ] @ tinyTask @ [ "--hidden"; "4" ])

    Assert.That(other.Code, Is.EqualTo ExitCode.Failure)
    Assert.That(other.Err, Does.Contain "mlp-784-8-10")
