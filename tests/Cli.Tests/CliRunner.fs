/// Running the CLI in-process on a tiny synthetic task, with captured output.
module GroupedNewton.Cli.Tests.CliRunner

open System
open System.IO
open System.Threading
open GroupedNewton.TestSupport

/// The tiny task every test trains (TestSupport.TinyTask).
let tinyTask = TinyTask.args

/// A fresh temporary folder (removed when the test run ends).
let tempFolder () = TempFolders.create "gn-cli-tests"

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
