/// The packages used as users get them: a fresh C# console app referencing only
/// GroupedNewton.CSharp (samples/OwnData, the README's C# listing), the F# walkthrough through
/// `#r "nuget: GroupedNewton.Core"`, and the installed tool finding its bundled data set.
module GroupedNewton.Package.Tests.PackageTests

open System
open System.IO
open System.IO.Compression
open NUnit.Framework
open GroupedNewton.Package.Tests.Processes
open GroupedNewton.Package.Tests.Packages

let private entries (nupkg: string) =
    use z = ZipFile.OpenRead nupkg
    z.Entries |> Seq.map (fun e -> e.FullName) |> Set.ofSeq

[<OneTimeSetUp>]
let packOnce () = get () |> ignore

[<Test>]
let ``the packages carry their version, licence, readme, XML docs and the tool's data set`` () =
    let p = get ()
    let file id = Path.Combine(p.Folder, sprintf "%s.%s.nupkg" id Version)

    for id in [ "GroupedNewton.Core"; "GroupedNewton.CSharp"; "GroupedNewton.Cli" ] do
        Assert.That(File.Exists(file id), Is.True, id)
        Assert.That(File.Exists(Path.Combine(p.Folder, sprintf "%s.%s.snupkg" id Version)), Is.True, id + " symbols")
        Assert.That(entries (file id), Does.Contain "README.md", id)

    Assert.That(entries (file "GroupedNewton.Core"), Does.Contain "lib/net10.0/GroupedNewton.Core.xml")
    Assert.That(entries (file "GroupedNewton.CSharp"), Does.Contain "lib/net10.0/GroupedNewton.CSharp.xml")

    for f in
        [
            "train-images-idx3-ubyte.gz"
            "train-labels-idx1-ubyte.gz"
            "t10k-images-idx3-ubyte.gz"
            "t10k-labels-idx1-ubyte.gz"
        ] do
        Assert.That(entries (file "GroupedNewton.Cli"), Does.Contain("tools/net10.0/any/data/fashion-mnist-mini/" + f))

    use z = ZipFile.OpenRead(file "GroupedNewton.CSharp")
    let nuspec = z.Entries |> Seq.find (fun e -> e.FullName.EndsWith ".nuspec")
    use r = new StreamReader(nuspec.Open())
    let text = r.ReadToEnd()
    Assert.That(text, Does.Contain "<license type=\"expression\">MIT</license>")
    Assert.That(text, Does.Contain(sprintf "<dependency id=\"GroupedNewton.Core\" version=\"%s\"" Version))

[<Test>]
let ``a fresh C# console app referencing only GroupedNewton.CSharp trains, saves, reloads and predicts the same`` () =
    let p = get ()
    let app = tempFolder "csharp-app"
    let sample = Path.Combine(repoRoot, "samples", "OwnData")

    for f in [ "Program.cs"; "OwnData.csproj" ] do
        File.Copy(Path.Combine(sample, f), Path.Combine(app, f))

    File.WriteAllText(Path.Combine(app, "nuget.config"), p.NugetConfig)
    let project = File.ReadAllText(Path.Combine(app, "OwnData.csproj"))
    Assert.That(project, Does.Contain "<PackageReference Include=\"GroupedNewton.CSharp\"")
    Assert.That(project, Does.Not.Contain "ProjectReference")

    let build =
        dotnetIn app p.Environment 300 [
            "build"
            "-c"
            "Release"
            "-nodeReuse:false"
            "-p:UseSharedCompilation=false"
            "-p:NuGetAudit=false"
        ]

    Assert.That(build.Code, Is.EqualTo 0, string build)
    // only the packages: the app's output holds the packaged assemblies, no project output
    Assert.That(File.Exists(Path.Combine(app, "bin", "Release", "net10.0", "GroupedNewton.CSharp.dll")), Is.True)
    let run = dotnetIn app p.Environment 300 [ Path.Combine("bin", "Release", "net10.0", "OwnData.dll") ]
    Assert.That(run.Code, Is.EqualTo 0, string run)
    Assert.That(run.Output, Does.Contain "same predictions as the trained model: True")
    // the quadrant task is easy: the reloaded model must get nearly every test point right
    let line = run.Output.Split('\n') |> Array.find (fun l -> l.StartsWith "reloaded model:")
    let correct = int (line.Split(' ').[2])
    Assert.That(correct, Is.GreaterThan 450, line)

[<Test>]
let ``the F# walkthrough runs with #r nuget GroupedNewton.Core from the packed folder`` () =
    let p = get ()
    let folder = tempFolder "fsi"

    let source =
        File.ReadAllText(Path.Combine(repoRoot, "samples", "FSharpWalkthrough", "FSharpWalkthrough.fsx"))

    let reference = sprintf "#r \"nuget: GroupedNewton.Core, %s\"" Version
    Assert.That(source, Does.Contain reference)
    Assert.That(source, Does.Not.Contain "bin/")
    // the packed folder and the user's cache as sources, given the way F# scripts give them
    let sources = sprintf "#i \"nuget: %s\"\n#i \"nuget: %s\"\n" p.Folder userPackages
    File.WriteAllText(Path.Combine(folder, "walkthrough.fsx"), source.Replace(reference, sources + reference))
    let o = dotnetIn folder p.Environment 300 [ "fsi"; "walkthrough.fsx" ]
    Assert.That(o.Code, Is.EqualTo 0, string o)
    Assert.That(o.Output, Does.Contain "GroupedNewton is invariant")

[<Test>]
let ``the installed tool trains on its bundled fashion-mnist-mini when Fashion-MNIST is not installed`` () =
    let p = get ()
    let tools = tempFolder "tool"
    let config = Path.Combine(tools, "nuget.config")
    File.WriteAllText(config, p.NugetConfig)

    let install =
        dotnetIn tools p.Environment 300 [
            "tool"
            "install"
            "GroupedNewton.Cli"
            "--version"
            Version
            "--tool-path"
            Path.Combine(tools, "bin")
            "--configfile"
            config
        ]

    Assert.That(install.Code, Is.EqualTo 0, string install)
    let empty = tempFolder "no-data"
    let out = Path.Combine(tools, "run")

    let host = if dotnet = "dotnet" then "" else Path.GetDirectoryName dotnet

    let o =
        runIn
            tools
            ([ "GROUPEDNEWTON_DATA", empty ] @ (if host = "" then [] else [ "DOTNET_ROOT", host ]))
            300
            (Path.Combine(tools, "bin", "groupednewton"))
            [
                "train"
                "--optimizer"
                "sgd"
                "--hidden"
                "16"
                "--epochs"
                "1"
                "--max-steps"
                "5"
                "--threads"
                "1"
                "--out"
                out
            ]

    Assert.That(o.Code, Is.EqualTo 0, string o)
    Assert.That(o.Output, Does.Contain "using fashion-mnist-mini")
    Assert.That(o.Output, Does.Contain(Path.Combine("data", "fashion-mnist-mini")))
    Assert.That(File.Exists(Path.Combine(out, "metrics.jsonl")), Is.True)
