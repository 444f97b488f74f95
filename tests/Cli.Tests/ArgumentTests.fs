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
let ``a value out of range names the option and the value`` () = expectUsage [ "train"; "--epochs"; "0" ] "--epochs must be at least 1, got 0"

[<Test>]
let ``a malformed seed list names the bad entry`` () = expectUsage [ "compare"; "--seeds"; "1,x" ] "'x'"

[<Test>]
let ``an unknown partition is refused`` () = expectUsage [ "train"; "--partition"; "rows" ] "'rows'"

[<Test>]
let ``a missing value gives the usage`` () = expectUsage [ "train"; "--lr" ] "--lr"

[<Test>]
let ``optimizers not in this build say so with exit code 3`` () =
    for name in [ "kfac"; "kbfgs"; "kbfgs-l" ] do
        let r = run [ "train"; "--optimizer"; name ]
        Assert.That(r.Code, Is.EqualTo ExitCode.NotAvailable, name)
        Assert.That(r.Err, Does.Contain(sprintf "'%s'" name))
        Assert.That(r.Err, Does.Contain "not available")

[<Test>]
let ``help exits with 0 and lists the commands`` () =
    let r = run [ "--help" ]
    Assert.That(r.Code, Is.EqualTo 0)
    for c in [ "train"; "compare"; "summary"; "bench"; "derivatives" ] do
        Assert.That(r.Out, Does.Contain c)
