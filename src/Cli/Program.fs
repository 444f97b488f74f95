/// The `groupednewton` tool: parses the command line and runs a command. `execute` is the
/// in-process entry (tests call it with their own writers and cancellation token).
module GroupedNewton.Cli.Program

open System
open System.IO
open System.Runtime.InteropServices
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
    | Some "derivatives" -> p.GetSubCommandParser(<@ Derivatives @>).PrintUsage()
    | _ -> p.PrintUsage()

/// Checks the environment variables the library reads, before any work, with the same
/// message style as the options.
let checkEnvironment () =
    match Environment.GetEnvironmentVariable "GROUPEDNEWTON_THREADS" with
    | null
    | "" -> ()
    | v ->
        match Int32.TryParse(v.Trim()) with
        | true, n when n >= 1 && n <= Settings.maxThreads () -> ()
        | _ -> Fail.usage "GROUPEDNEWTON_THREADS must be a whole number from 1 to %d (four per core), got '%s'" (Settings.maxThreads ()) v

    match Environment.GetEnvironmentVariable "GROUPEDNEWTON_BLAS" with
    | null
    | "" -> ()
    | v ->
        match v.Trim().ToLowerInvariant() with
        | "managed"
        | "openblas"
        | "auto" -> ()
        | _ -> Fail.usage "GROUPEDNEWTON_BLAS must be 'managed', 'openblas' or 'auto', got '%s'" v

    match Environment.GetEnvironmentVariable Datasets.EnvironmentVariable with
    | null
    | "" -> ()
    | v when not (Directory.Exists v) ->
        Fail.usage "%s names '%s', which is not a folder (unset it to use the installed data sets)" Datasets.EnvironmentVariable v
    | _ -> ()

/// Runs the command line `argv`; returns the exit code. Output goes to `out`, errors and
/// usage messages to `err`; `interactive` selects the live progress display; `cancel`
/// stops training between steps (the last complete checkpoint stays).
let execute (out: TextWriter) (err: TextWriter) (interactive: bool) (cancel: CancellationToken) (argv: string[]) : int =
    let fail (code: int) (message: string) =
        err.WriteLine("error: " + message)
        code

    try
        if argv.Length = 0 then
            DerivativesCommand.run 0
        else
            let results = Arguments.parser().ParseCommandLine(argv, raiseOnUsage = true)
            let command = results.GetSubCommand()

            match command with
            | Train _
            | Compare _
            | Summary _ -> checkEnvironment ()
            | _ -> ()

            match command with
            | Train r -> TrainCommand.run (Settings.ofTrain r) out err interactive cancel
            | Compare r -> CompareCommand.run (Settings.ofCompare r) out err interactive cancel
            | Summary r -> SummaryCommand.run (Settings.ofSummary r) out
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
    | :? DivergenceException as e -> fail ExitCode.Failure e.Message
    | :? DataException as e -> fail ExitCode.Failure e.Message
    | :? OptimizationException as e -> fail ExitCode.Failure e.Message
    | :? StateFormatException as e -> fail ExitCode.Failure e.Message
    | :? DistributedException as e -> fail ExitCode.Failure e.Message
    | :? TensorException as e -> fail ExitCode.Failure e.Message
    | :? IOException as e -> fail ExitCode.Failure e.Message
    | :? UnauthorizedAccessException as e -> fail ExitCode.Failure e.Message
    | :? OutOfMemoryException ->
        fail ExitCode.Failure "out of memory: the task does not fit this machine (try smaller --samples, --batch-size or --hidden)"
    | :? ArgumentException as e -> fail ExitCode.Failure e.Message

/// Runs a command line with the console's writers, plain progress and no cancellation.
let run (argv: string[]) : int = execute Console.Out Console.Error false CancellationToken.None argv

/// The fault-injection tests' hooks, in GROUPEDNEWTON_TEST_HOOK separated by ';':
/// "pause-before-rename:NAME" stops the process (for the test to kill it) after a checkpoint
/// whose file name contains NAME is written to its temporary file and before it is renamed
/// into place; "step-delay:MS" waits MS milliseconds after every step.
let private installTestHooks () =
    match Environment.GetEnvironmentVariable "GROUPEDNEWTON_TEST_HOOK" with
    | null -> ()
    | v ->
        for hook in v.Split(';', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) do
            if hook.StartsWith "pause-before-rename:" then
                let name = hook.Substring "pause-before-rename:".Length

                TensorStore.beforeRename <-
                    Some(fun tmp ->
                        if tmp.Contains name then
                            Console.Error.WriteLine(sprintf "test hook: paused before renaming %s" tmp)
                            Console.Error.Flush()
                            Thread.Sleep Timeout.Infinite)
            elif hook.StartsWith "step-delay:" then
                TrainRun.stepDelayMs <- int (hook.Substring "step-delay:".Length)

[<EntryPoint>]
let main argv =
    installTestHooks ()
    use cts = new CancellationTokenSource()
    let mutable terminated = false
    // Ctrl+C and SIGTERM: finish the current step and stop; the last complete checkpoint stays
    let stop (ctx: PosixSignalContext) =
        ctx.Cancel <- true

        if ctx.Signal = PosixSignal.SIGTERM then
            terminated <- true

        if not cts.IsCancellationRequested then
            Console.Error.WriteLine(
                sprintf "%s: stopping after the current step" (if ctx.Signal = PosixSignal.SIGTERM then "SIGTERM" else "interrupt")
            )

            cts.Cancel()

    use _int = PosixSignalRegistration.Create(PosixSignal.SIGINT, stop)
    use _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, stop)

    let interactive =
        not Console.IsOutputRedirected && Spectre.Console.AnsiConsole.Profile.Capabilities.Interactive
    // data-parallel hook: MPI under mpiexec, rank 0 prints, a failed rank ends the job
    let code =
        DistributedMain.run argv (fun out ->
            execute out Console.Error (interactive && obj.ReferenceEquals(out, Console.Out)) cts.Token argv)

    if code = ExitCode.Cancelled && terminated then ExitCode.Terminated else code
