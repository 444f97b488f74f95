/// The fault corpus: every case records how the tool handled it, and the assembly's
/// teardown prints the count line ("N cases, N clear errors, N stack traces, N silent,
/// N data loss, N hangs"). A case passes only as a clear error (or, where the input is
/// fine, a clean success): the other outcomes fail its test.
module GroupedNewton.Fault.Tests.Corpus

open System
open System.Collections.Concurrent
open NUnit.Framework
open GroupedNewton.Fault.Tests.Tool

/// How a case ended.
type Verdict =
    /// The expected exit code and a message naming the problem (or a clean run where the
    /// input is acceptable).
    | Clear
    | StackTrace
    | Silent
    | DataLoss
    | Hang

let private cases = ConcurrentQueue<string * Verdict>()

/// Records a case's verdict and fails the test unless it is Clear.
let record (name: string) (verdict: Verdict) (detail: string) =
    cases.Enqueue((name, verdict))

    if verdict <> Clear then
        Assert.Fail(sprintf "%s: %A\n%s" name verdict detail)

let private looksLikeStackTrace (text: string) =
    text.Contains "Unhandled exception"
    || text.Contains "   at GroupedNewton."
    || text.Contains "   at System."
    || text.Contains "PAL_SEHException"

/// The verdict on a run that must fail with `code` and a message containing every one of
/// `mentions`; `intact` says whether the files that must survive did.
let judge (o: Outcome) (code: int) (mentions: string list) (intact: bool) : Verdict * string =
    let detail = sprintf "exit %A\nstdout:\n%s\nstderr:\n%s" o.Code o.Out o.Err

    let verdict =
        match o.Code with
        | None -> Hang
        | Some c when c = 134 || looksLikeStackTrace o.Text -> StackTrace
        | Some _ when not intact -> DataLoss
        | Some c when c = code && mentions |> List.forall (fun m -> o.Text.Contains m) -> Clear
        | Some 0 -> Silent
        | Some _ -> Silent

    verdict, detail

/// Judges and records a run in one call.
let expect (name: string) (o: Outcome) (code: int) (mentions: string list) (intact: bool) =
    let v, d = judge o code mentions intact
    record name v d

/// The count line of the cases run so far.
let countLine () =
    let all = cases.ToArray()
    let n v = all |> Array.filter (fun (_, x) -> x = v) |> Array.length

    sprintf
        "%d cases, %d clear errors, %d stack traces, %d silent, %d data loss, %d hangs"
        all.Length
        (n Clear)
        (n StackTrace)
        (n Silent)
        (n DataLoss)
        (n Hang)

/// The names of the cases run so far.
let caseNames () = cases.ToArray() |> Array.map fst

[<SetUpFixture>]
type Report() =
    [<OneTimeTearDown>]
    member _.PrintCounts() =
        TestContext.Progress.WriteLine("fault corpus: " + countLine ())
        let path = IO.Path.Combine(IO.Path.GetTempPath(), "groupednewton-fault-corpus.txt")
        IO.File.WriteAllLines(path, Array.append [| countLine () |] (caseNames ()))
        TestContext.Progress.WriteLine("fault corpus cases listed in " + path)
