/// Errors of the command line and the exit codes they map to.
namespace GroupedNewton.Cli

open System

/// A bad command line: an unknown name, a value out of range, an option that does not
/// apply. The message names the offending option and value; the exit code is 2.
type UsageException(message: string) =
    inherit Exception(message)

/// Exit codes of the `groupednewton` tool.
module ExitCode =
    [<Literal>]
    let Ok = 0

    /// The run failed (data missing, an optimizer step failed, an I/O error).
    [<Literal>]
    let Failure = 1

    /// Bad arguments; the usage is printed.
    [<Literal>]
    let Usage = 2

    /// Interrupted (Ctrl+C or cancellation) after the last complete checkpoint.
    [<Literal>]
    let Cancelled = 130

    /// Stopped by SIGTERM after the last complete checkpoint.
    [<Literal>]
    let Terminated = 143

module Fail =
    /// Raises a UsageException with a formatted message.
    let usage fmt = Printf.ksprintf (fun s -> raise (UsageException s)) fmt
