/// Running programs (the `groupednewton` tool, `dotnet`, `mpiexec`) in child processes for the
/// tests: arguments, environment and working folder; stdout and stderr collected as they come
/// (read asynchronously, so a child that writes much never blocks on a full pipe); a time
/// limit after which the child is killed with all its descendants; POSIX signals.
module GroupedNewton.TestSupport.ChildProcess

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text
open System.Threading

/// The `dotnet` executable the test host runs under.
let dotnet =
    match Environment.GetEnvironmentVariable "DOTNET_HOST_PATH" with
    | null
    | "" -> "dotnet"
    | p -> p

/// The tool's assembly, copied next to the test assembly by the project reference to the CLI.
let toolDll = Path.Combine(AppContext.BaseDirectory, "groupednewton.dll")

/// What to start: the program and its arguments; variables removed from the environment the
/// child inherits, then variables set in it; the working folder (None: this process's).
type Command = {
    File: string
    Args: string list
    Unset: string list
    Env: (string * string) list
    Folder: string option
}

/// `file args` with the inherited environment, in this process's folder.
let command (file: string) (args: string list) = { File = file; Args = args; Unset = []; Env = []; Folder = None }

[<DllImport("libc", SetLastError = true)>]
extern int private kill(int pid, int signal)

/// POSIX signal numbers (Linux).
[<RequireQualifiedAccess>]
module Signal =
    let Int = 2
    let Term = 15
    let Stop = 19

/// Sends a POSIX signal to a process; fails when it could not be sent.
let sendSignal (pid: int) (signalNumber: int) =
    if kill (pid, signalNumber) <> 0 then
        failwithf "kill(%d, %d) failed" pid signalNumber

/// A started child process, with its output collected line by line: stdout, stderr, and both
/// interleaved in the order the lines came. Disposing it kills it (and its descendants) if it
/// still runs.
type Child(c: Command) =
    let out = StringBuilder()
    let err = StringBuilder()
    let both = StringBuilder()
    let gate = obj ()
    let psi = ProcessStartInfo(c.File)

    do
        for a in c.Args do
            psi.ArgumentList.Add a

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.UseShellExecute <- false

        match c.Folder with
        | Some f -> psi.WorkingDirectory <- f
        | None -> ()

        for v in c.Unset do
            psi.Environment.Remove v |> ignore

        for k, v in c.Env do
            psi.Environment.[k] <- v

    let p = new Process(StartInfo = psi)

    let add (sb: StringBuilder) (line: string) =
        if not (isNull line) then
            lock gate (fun () ->
                sb.AppendLine line |> ignore
                both.AppendLine line |> ignore)

    let killTree () =
        try
            p.Kill true
        with _ ->
            ()

    do
        p.OutputDataReceived.Add(fun e -> add out e.Data)
        p.ErrorDataReceived.Add(fun e -> add err e.Data)
        p.Start() |> ignore
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()

    member _.Id = p.Id
    member _.Out = lock gate (fun () -> out.ToString())
    member _.Err = lock gate (fun () -> err.ToString())

    /// stdout and stderr interleaved, line by line, in the order the lines came.
    member _.Output = lock gate (fun () -> both.ToString())

    /// The program and its arguments, as one line.
    member _.CommandLine = String.Join(" ", c.File :: c.Args)

    /// Waits until stdout or stderr contains `text`; false after `timeoutMs` or when the
    /// process ended without it.
    member x.WaitFor(text: string, timeoutMs: int) =
        let clock = Stopwatch.StartNew()
        let mutable found = false

        while not found
              && clock.ElapsedMilliseconds < int64 timeoutMs
              && not (p.HasExited && not (x.Output.Contains text)) do
            if x.Output.Contains text then found <- true else Thread.Sleep 5

        found || x.Output.Contains text

    /// Waits for the process to end and for the last of its output; its exit code, or None
    /// when it did not end within `timeoutMs` (it is then killed with its descendants).
    member _.Wait(timeoutMs: int) : int option =
        if p.WaitForExit timeoutMs then
            p.WaitForExit()
            Some p.ExitCode
        else
            killTree ()
            p.WaitForExit()
            None

    /// What to report when `Wait` gave None: the command, the limit, the output it had written.
    member x.TimeoutReport(timeoutMs: int) =
        sprintf
            "%s did not finish within %g s and was killed with its child processes; its output (stdout and stderr):\n%s"
            x.CommandLine
            (float timeoutMs / 1000.0)
            x.Output

    /// SIGKILL to the process and its descendants: they end at once, without running any of
    /// their code.
    member _.Kill() =
        killTree ()
        p.WaitForExit()

    /// Sends a POSIX signal to the process (not to its descendants).
    member _.Signal(signalNumber: int) = sendSignal p.Id signalNumber

    interface IDisposable with
        member _.Dispose() =
            (try
                if not p.HasExited then
                    killTree ()
             with _ ->
                 ())

            p.Dispose()
