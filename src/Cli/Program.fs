/// The `groupednewton` tool: parses the command line and runs a command. `execute` is the
/// in-process entry (tests call it with their own writers and cancellation token).
module GroupedNewton.Cli.Program

open System
open System.IO
open System.Threading
open Argu
open GroupedNewton
open GroupedNewton.Data
open GroupedNewton.Cli.Arguments

/// The usage of the command named by the first argument (or of the whole tool).
let private usageOf (argv: string[]) =
    let p = Arguments.parser ()
    match Array.tryHead argv with
    | Some "train" -> p.GetSubCommandParser(<@ Train @>).PrintUsage()
    | Some "compare" -> p.GetSubCommandParser(<@ Compare @>).PrintUsage()
    | Some "summary" -> p.GetSubCommandParser(<@ Summary @>).PrintUsage()
    | Some "bench" -> p.GetSubCommandParser(<@ Bench @>).PrintUsage()
    | Some "derivatives" -> p.GetSubCommandParser(<@ Derivatives @>).PrintUsage()
    | _ -> p.PrintUsage()

/// Runs the command line `argv`; returns the exit code. Output goes to `out`, errors and
/// usage messages to `err`; `interactive` selects the live progress display; `cancel`
/// stops training between steps (the last complete checkpoint stays).
let execute (out: TextWriter) (err: TextWriter) (interactive: bool) (cancel: CancellationToken) (argv: string[]) : int =
    let fail (code: int) (message: string) =
        err.WriteLine("error: " + message)
        code
    try
        if argv.Length = 0 then DerivativesCommand.run 0
        else
            let results = Arguments.parser().ParseCommandLine(argv, raiseOnUsage = true)
            match results.GetSubCommand() with
            | Train r -> TrainCommand.run (Settings.ofTrain r) out interactive cancel
            | Compare r -> CompareCommand.run (Settings.ofCompare r) out interactive cancel
            | Summary r -> SummaryCommand.run (Settings.ofSummary r) out
            | Bench r -> BenchCommand.run r
            | Derivatives r -> DerivativesCommand.run (r.GetResult(DerivativesArgs.Seed, defaultValue = 0))
    with
    | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
        out.WriteLine e.Message
        ExitCode.Ok
    | :? ArguParseException as e ->
        err.WriteLine e.Message
        ExitCode.Usage
    | :? UsageException as e ->
        err.WriteLine("error: " + e.Message)
        err.WriteLine(usageOf argv)
        ExitCode.Usage
    | :? PartitionException as e ->
        err.WriteLine("error: --partition: " + e.Message)
        err.WriteLine(usageOf argv)
        ExitCode.Usage
    | :? DataException as e -> fail ExitCode.Failure e.Message
    | :? OptimizationException as e -> fail ExitCode.Failure e.Message
    | :? StateFormatException as e -> fail ExitCode.Failure e.Message
    | :? DistributedException as e -> fail ExitCode.Failure e.Message
    | :? TensorException as e -> fail ExitCode.Failure e.Message
    | :? IOException as e -> fail ExitCode.Failure e.Message
    | :? UnauthorizedAccessException as e -> fail ExitCode.Failure e.Message

/// Runs a command line with the console's writers, plain progress and no cancellation.
let run (argv: string[]) : int = execute Console.Out Console.Error false CancellationToken.None argv

[<EntryPoint>]
let main argv =
    use cts = new CancellationTokenSource()
    // Ctrl+C: finish the current step and stop; the last complete checkpoint stays
    Console.CancelKeyPress.Add(fun e ->
        if not cts.IsCancellationRequested then
            e.Cancel <- true
            cts.Cancel())
    let interactive = not Console.IsOutputRedirected && Spectre.Console.AnsiConsole.Profile.Capabilities.Interactive
    DistributedMain.run cts argv (fun out -> execute out Console.Error (interactive && out = Console.Out) cts.Token argv)
