/// Running the CLI in-process on a tiny synthetic task, with captured output.
module GroupedNewton.Cli.Tests.CliRunner

open System
open System.IO
open System.Text
open System.Threading

/// The tiny task every test trains: an MLP 784-8-10 on 270 synthetic training samples,
/// batch 50 (6 steps per epoch), one thread (bit-identical reruns).
let tinyTask = [
    "--dataset"
    "synthetic"
    "--hidden"
    "8"
    "--samples"
    "300"
    "--batch-size"
    "50"
    "--threads"
    "1"
]

let private created = System.Collections.Concurrent.ConcurrentBag<string>()

/// A fresh temporary folder (removed when the test run ends).
let tempFolder () =
    let d = Path.Combine(Path.GetTempPath(), "gn-cli-tests-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    created.Add d
    d

/// Removes the folders made by tempFolder.
let removeTempFolders () =
    for d in created do
        try
            Directory.Delete(d, true)
        with _ ->
            ()

type Outcome = { Code: int; Out: string; Err: string }

/// Runs a command line in-process; `cancel` may be signalled from the output writer.
let runWith (out: TextWriter) (cancel: CancellationToken) (args: string list) =
    let err = new StringWriter()
    let code = GroupedNewton.Cli.Program.execute out err false cancel (Array.ofList args)
    code, err.ToString()

let run (args: string list) : Outcome =
    let out = new StringWriter()
    let code, err = runWith out CancellationToken.None args
    { Code = code; Out = out.ToString(); Err = err }

/// A writer that signals a cancellation source when a written line contains `trigger`.
type CancellingWriter(trigger: string, source: CancellationTokenSource) =
    inherit StringWriter()

    override w.WriteLine(value: string) =
        base.WriteLine(value)

        if not (isNull value) && value.Contains trigger then
            source.Cancel()

/// NUnit's equality constraint on a boxed value (arrays and lists compare element-wise).
let equalTo (expected: obj) = NUnit.Framework.Is.EqualTo expected

/// Cleans up after all tests of the assembly.
[<NUnit.Framework.SetUpFixture>]
type Cleanup() =
    [<NUnit.Framework.OneTimeTearDown>]
    member _.RemoveFolders() = removeTempFolders ()
