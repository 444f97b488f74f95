module GroupedNewton.Cli.Tests.SvgTests

open System.Xml.Linq
open NUnit.Framework
open GroupedNewton.Cli.Report
open GroupedNewton.Cli.Tests.CliRunner

[<Test>]
let ``ticks are round numbers covering the range`` () =
    Assert.That(Svg.ticks 0.0 1.0 5, equalTo [| 0.0; 0.2; 0.4; 0.6; 0.8; 1.0 |])
    Assert.That(Svg.ticks 3.0 47.0 5, equalTo [| 10.0; 20.0; 30.0; 40.0 |])
    Assert.That(Svg.ticks 3.0 47.0 4, equalTo [| 20.0; 40.0 |])

[<Test>]
let ``a chart escapes labels and draws one path per series, broken at NaN`` () =
    let svg =
        Svg.lineChart "a < b" "x" "y" false [
            { Label = "p&q"; Points = [| 1.0, 1.0; 2.0, nan; 3.0, 2.0; 4.0, 3.0 |] }
            { Label = "r"; Points = [| 1.0, 2.0; 4.0, 1.0 |] }
        ]

    let doc = XDocument.Parse svg
    let paths = doc.Descendants(XName.Get("path", "http://www.w3.org/2000/svg")) |> List.ofSeq
    Assert.That(paths |> List.map (fun p -> p.Attribute(XName.Get "data-series").Value), equalTo [ "p&q"; "r" ])
    // the NaN point starts a new sub-path: two moves in the first curve
    Assert.That(paths.Head.Attribute(XName.Get "d").Value.Split('M').Length - 1, Is.EqualTo 2)

[<Test>]
let ``a heat-map has one cell per matrix entry`` () =
    let svg = Svg.heatMap "H" [| "a"; "b"; "c" |] (Array2D.init 3 3 (fun i j -> float (i + j + 1)))
    let doc = XDocument.Parse svg
    let cells = doc.Descendants(XName.Get("rect", "http://www.w3.org/2000/svg")) |> Seq.length
    Assert.That(cells, Is.EqualTo 9)
