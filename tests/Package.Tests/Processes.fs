/// The package tests' side of running `dotnet` and other programs in child processes (the
/// process itself is TestSupport.ChildProcess): a quiet environment, stdout and stderr
/// interleaved, a failure when a run exceeds its time limit.
module GroupedNewton.Package.Tests.Processes

open System
open System.IO
open GroupedNewton.TestSupport

/// The `dotnet` executable the test host runs under.
let dotnet = ChildProcess.dotnet

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

/// A fresh temporary folder (removed when the test run ends).
let tempFolder (tag: string) = TempFolders.create ("gn-package-tests-" + tag)

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
    use c =
        new ChildProcess.Child(
            {
                ChildProcess.command file args with
                    Unset = [ "GROUPEDNEWTON_DATA"; "GROUPEDNEWTON_THREADS"; "GROUPEDNEWTON_BLAS"; "GROUPEDNEWTON_BACKEND" ]
                    Env = quiet @ env
                    Folder = Some folder
            }
        )

    match c.Wait(timeoutSeconds * 1000) with
    | Some code -> { Code = code; Output = c.Output }
    | None -> failwith (c.TimeoutReport(timeoutSeconds * 1000))

/// Runs `dotnet args` in `folder`.
let dotnetIn (folder: string) (env: (string * string) list) (timeoutSeconds: int) (args: string list) =
    runIn folder env timeoutSeconds dotnet args
