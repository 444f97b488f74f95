module GroupedNewton.Cli.Tests.ArgumentTests

open NUnit.Framework
open GroupedNewton.Cli
open GroupedNewton.Cli.Tests.CliRunner

let private expectUsage (args: string list) (mentions: string) =
    let r = run args
    Assert.That(r.Code, Is.EqualTo ExitCode.Usage, r.Out)
    Assert.That(r.Err, Does.Contain mentions)
    Assert.That(r.Err, Does.Contain "USAGE: groupednewton")

[<Test>]
let ``an unknown model is named in the error, with the usage`` () = expectUsage [ "train"; "--model"; "resnet" ] "'resnet'"

[<Test>]
let ``an unknown option gives the usage`` () = expectUsage [ "train"; "--bogus" ] "--bogus"

[<Test>]
let ``an unknown command gives the usage`` () = expectUsage [ "fly" ] "fly"

[<Test>]
let ``a value out of range names the option and the value`` () =
    expectUsage [ "train"; "--epochs"; "0" ] "--epochs must be at least 1, got 0"

[<Test>]
let ``a malformed seed list names the bad entry`` () = expectUsage [ "compare"; "--seeds"; "1,x" ] "'x'"

[<Test>]
let ``an unknown partition is refused`` () = expectUsage [ "train"; "--partition"; "rows" ] "'rows'"

[<Test>]
let ``a missing value gives the usage`` () = expectUsage [ "train"; "--lr" ] "--lr"

[<Test>]
let ``an unknown optimizer is named in the error`` () = expectUsage [ "train"; "--optimizer"; "lbfgs" ] "'lbfgs'"

[<Test>]
let ``help exits with 0 and lists the commands`` () =
    let r = run [ "--help" ]
    Assert.That(r.Code, Is.EqualTo 0)

    for c in [ "train"; "compare"; "summary"; "derivatives" ] do
        Assert.That(r.Out, Does.Contain c)
    // the benchmarks are not part of the packaged tool (they live in benchmarks/)
    Assert.That(r.Out, Does.Not.Contain "bench")

[<Test>]
let ``derivatives still runs: every exact derivative agrees with its finite difference`` () =
    // the command prints to the console
    let previous = System.Console.Out
    use capture = new System.IO.StringWriter()
    System.Console.SetOut capture

    let code =
        try
            GroupedNewton.Cli.Program.run [| "derivatives"; "--seed"; "1" |]
        finally
            System.Console.SetOut previous

    Assert.That(code, Is.EqualTo 0)

    let rows =
        capture.ToString().Split('\n')
        |> Array.filter (fun l -> l.TrimStart().StartsWith "gradient" || l.TrimStart().StartsWith "D")

    Assert.That(rows.Length, Is.EqualTo 5)

    for r in rows do
        let relErr = float (r.Trim().Split(' ', System.StringSplitOptions.RemoveEmptyEntries) |> Array.last)
        Assert.That(relErr, Is.LessThan 1e-4, r)
