/// Running `dotnet` and other programs in child processes with a given environment, their
/// output collected, bounded in time; temporary folders removed at the end of the run.
module GroupedNewton.Package.Tests.Processes

open System
open System.Diagnostics
open System.IO
open System.Text

/// The `dotnet` executable the test host runs under.
let dotnet =
    match Environment.GetEnvironmentVariable "DOTNET_HOST_PATH" with
    | null
    | "" -> "dotnet"
    | p -> p

/// The repository root: the first folder above the test assembly holding GroupedNewton.sln.
let repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwithf "GroupedNewton.sln not found above %s" AppContext.BaseDirectory
        elif File.Exists(Path.Combine(d.FullName, "GroupedNewton.sln")) then d.FullName
        else up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// The configuration this test assembly was built in (the packages are packed from it).
let configuration =
#if DEBUG
    "Debug"
#else
    "Release"
#endif

let private created = Collections.Concurrent.ConcurrentBag<string>()

/// A fresh temporary folder (removed when the test run ends).
let tempFolder (tag: string) =
    let d =
        Path.Combine(Path.GetTempPath(), sprintf "gn-package-tests-%s-%s" tag (Guid.NewGuid().ToString("N")))

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

type Outcome = {
    Code: int
    Output: string
} with

    override o.ToString() = sprintf "exit %d\n%s" o.Code o.Output

/// Settings for every child: no build servers or MSBuild nodes left running afterwards, no
/// telemetry or first-run banner, and none of the library's own settings from this process.
let private quiet = [
    "MSBUILDDISABLENODEREUSE", "1"
    "DOTNET_CLI_USE_MSBUILD_SERVER", "0"
    "UseSharedCompilation", "false"
    "DOTNET_CLI_TELEMETRY_OPTOUT", "1"
    "DOTNET_NOLOGO", "1"
    "DOTNET_SKIP_FIRST_TIME_EXPERIENCE", "1"
]

/// Runs `file args` in `folder` with extra environment variables; kills the process tree and
/// fails after `timeoutSeconds`. Returns the exit code and stdout + stderr interleaved.
let runIn (folder: string) (env: (string * string) list) (timeoutSeconds: int) (file: string) (args: string list) : Outcome =
    let psi = ProcessStartInfo(file)

    for a in args do
        psi.ArgumentList.Add a

    psi.WorkingDirectory <- folder
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false

    for v in [ "GROUPEDNEWTON_DATA"; "GROUPEDNEWTON_THREADS"; "GROUPEDNEWTON_BLAS"; "GROUPEDNEWTON_BACKEND" ] do
        psi.Environment.Remove v |> ignore

    for k, v in quiet @ env do
        psi.Environment.[k] <- v

    let output = StringBuilder()
    let gate = obj ()
    use p = new Process(StartInfo = psi)

    let add (line: string) =
        if not (isNull line) then
            lock gate (fun () -> output.AppendLine line |> ignore)

    p.OutputDataReceived.Add(fun e -> add e.Data)
    p.ErrorDataReceived.Add(fun e -> add e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()

    if not (p.WaitForExit(timeoutSeconds * 1000)) then
        p.Kill true
        p.WaitForExit()
        failwithf "%s %s did not finish within %d s:\n%O" file (String.Join(" ", args)) timeoutSeconds output

    p.WaitForExit()
    { Code = p.ExitCode; Output = lock gate (fun () -> output.ToString()) }

/// Runs `dotnet args` in `folder`.
let dotnetIn (folder: string) (env: (string * string) list) (timeoutSeconds: int) (args: string list) =
    runIn folder env timeoutSeconds dotnet args
