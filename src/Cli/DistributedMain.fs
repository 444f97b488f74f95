/// The tool under `mpiexec -n N` (docs/distributed.md): starts MPI when the launcher asks for
/// several ranks, refuses ranks started with different command lines, lets only rank 0
/// print progress and reports, and ends the whole job when one rank fails, so that no rank waits for a failed one.
module GroupedNewton.Cli.DistributedMain

open System
open System.IO
open GroupedNewton

/// Runs `body` with the writer this rank prints to and returns its exit code.
let run (argv: string[]) (body: TextWriter -> int) : int =
    let started =
        try
            Distributed.start ()
            Distributed.checkSame "command line" (String.Join("\u0001", argv))
            None
        with :? DistributedException as e ->
            eprintfn "error: %s" e.Message
            Some ExitCode.Failure

    match started with
    | Some code ->
        Distributed.finish ()
        code
    | None ->
        let out = if Distributed.isRoot () then Console.Out else TextWriter.Null
        let code = body out

        if code = ExitCode.Ok || code = ExitCode.Cancelled then
            Distributed.finish ()
        else
            Distributed.abort code (sprintf "rank %d: the run failed (exit code %d); ending every rank" (Distributed.rank ()) code)

        code
