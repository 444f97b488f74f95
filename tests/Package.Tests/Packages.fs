/// The packages of the repository, packed once per test run into a temporary folder, and the
/// NuGet settings that let a fresh project restore them without touching the user's package
/// cache: a private global-packages folder, and as sources the packed folder, the user's
/// cache (a folder feed holding the dependencies the repository restored, so no download is
/// needed) and the machine's own feeds from its NuGet configuration.
module GroupedNewton.Package.Tests.Packages

open System
open System.IO
open GroupedNewton.Package.Tests.Processes

/// The projects that make packages.
let packable = [ "src/Core.FSharp"; "src/Facade.CSharp"; "src/Cli" ]

/// The version every package carries (Directory.Build.props).
[<Literal>]
let Version = "0.2.0"

/// The user's global packages folder (NUGET_PACKAGES, else ~/.nuget/packages).
let userPackages =
    match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
    | null
    | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
    | p -> p

type Packed = {
    /// Where the .nupkg files are.
    Folder: string
    /// The private global-packages folder of the consuming projects.
    GlobalPackages: string
} with

    /// Environment variables for a child that restores from the packed folder.
    member p.Environment = [ "NUGET_PACKAGES", p.GlobalPackages ]

    /// A nuget.config adding the packed folder and the user's package cache to the sources
    /// (the machine's feeds come from its own configuration, which NuGet merges in).
    member p.NugetConfig =
        sprintf
            """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="groupednewton-packed" value="%s" />
    <add key="user-package-cache" value="%s" />
  </packageSources>
</configuration>
"""
            p.Folder
            userPackages

let private pack () =
    let folder = tempFolder "packed"

    for project in packable do
        // the projects were built in this configuration before the tests ran: pack, do not build
        let o =
            dotnetIn repoRoot [] 300 [
                "pack"
                project
                "-c"
                configuration
                "--no-build"
                "-o"
                folder
                "-nodeReuse:false"
                "-p:NuGetAudit=false"
            ]

        if o.Code <> 0 then
            failwithf "dotnet pack %s failed:\n%O" project o

    { Folder = folder; GlobalPackages = tempFolder "global-packages" }

let private packed = lazy (pack ())

/// The packages, packed on first use (once per test run).
let get () = packed.Force()
