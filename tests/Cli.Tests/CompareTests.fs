module GroupedNewton.Cli.Tests.CompareTests

open System.IO
open System.Text.RegularExpressions
open System.Xml.Linq
open NUnit.Framework
open GroupedNewton.Cli.Tests.CliRunner

let private svgNs = XNamespace.Get "http://www.w3.org/2000/svg"

[<Test>]
let ``compare writes a report whose SVGs parse and hold one curve per optimizer`` () =
    let dir = tempFolder ()

    let r =
        run (
            [
                "compare"
                "--optimizers"
                "sgd,grouped-newton"
                "--seeds"
                "0,1"
                "--epochs"
                "2"
                "--period"
                "3"
                "--out"
                dir
            ]
            @ tinyTask
        )

    Assert.That(r.Code, Is.EqualTo 0, r.Err)
    let html = File.ReadAllText(Path.Combine(dir, "report.html"))

    let svgs =
        Regex.Matches(html, "<svg.*?</svg>", RegexOptions.Singleline)
        |> Seq.map (fun m -> XDocument.Parse m.Value)
        |> List.ofSeq

    let title (d: XDocument) = (d.Root.Element(svgNs + "text")).Value

    let curves (d: XDocument) =
        d.Descendants(svgNs + "path")
        |> Seq.filter (fun p -> p.Attribute(XName.Get "class") <> null && p.Attribute(XName.Get "class").Value = "curve")
        |> Seq.map (fun p -> p.Attribute(XName.Get "data-series").Value)
        |> List.ofSeq

    let perOptimizer, rates = svgs |> List.partition (fun d -> not ((title d).Contains "per-subset"))
    Assert.That(perOptimizer.Length, Is.GreaterThanOrEqualTo 6)

    for d in perOptimizer do
        Assert.That(curves d, equalTo [ "sgd"; "grouped-newton" ], title d)
    // GroupedNewton's per-subset rates: one curve per tensor of the MLP 784-8-10
    Assert.That(rates.Length, Is.EqualTo 1)
    Assert.That(curves rates.Head, equalTo [ "1.weight"; "1.bias"; "3.weight"; "3.bias" ])
    let md = File.ReadAllLines(Path.Combine(dir, "summary.md"))
    Assert.That(md.Length, Is.EqualTo 4)
    Assert.That(md.[2], Does.StartWith "| sgd | 2 |")
    Assert.That(md.[3], Does.StartWith "| grouped-newton | 2 |")
    let csv = File.ReadAllLines(Path.Combine(dir, "summary.csv"))
    Assert.That(csv.Length, Is.EqualTo 3)
    Assert.That(csv.[0], Does.StartWith "optimizer,seeds,final train loss")
    // each run has its own metrics
    for name in [ "sgd-seed0"; "sgd-seed1"; "grouped-newton-seed0"; "grouped-newton-seed1" ] do
        Assert.That(File.ReadAllLines(Path.Combine(dir, "runs", name, "metrics.jsonl")).Length, Is.EqualTo 2, name)

[<Test>]
let ``compare takes a learning rate per entry: sgd at rate 0 leaves the model where it started, at 0.05 it trains`` () =
    let dir = tempFolder ()

    let r =
        run (
            [ "compare"; "--optimizers"; "sgd@0,sgd@0.05"; "--seeds"; "0"; "--epochs"; "2"; "--out"; dir ]
            @ tinyTask
        )

    Assert.That(r.Code, Is.EqualTo 0, r.Err)

    let testLosses name =
        File.ReadAllLines(Path.Combine(dir, "runs", name + "-seed0", "metrics.jsonl"))
        |> Array.map (fun l -> System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("test_loss").GetDouble())

    let frozen = testLosses "sgd@0"
    let trained = testLosses "sgd@0.05"
    Assert.That(frozen.[1], Is.EqualTo frozen.[0], "lr 0 changes nothing")
    Assert.That(trained.[1], Is.LessThan frozen.[0], "lr 0.05 lowers the test loss")

[<Test>]
let ``compare refuses an entry whose learning rate is not a number`` () =
    let r = run [ "compare"; "--optimizers"; "sgd@fast"; "--out"; tempFolder () ]
    Assert.That(r.Code, Is.EqualTo 2)
    Assert.That(r.Err, Does.Contain "sgd@fast")
