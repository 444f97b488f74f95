/// Running the PyTorch anchors as child processes and reading their JSON lines.
module GroupedNewton.Benchmarks.Anchor

open System
open System.Diagnostics
open System.IO
open System.Text.Json

/// Finds a file by walking up from the benchmark binary and the working directory
/// (the shared anchors live beside the repository, in ../shared).
let locate (relative: string) =
    let starts = [ AppContext.BaseDirectory; Directory.GetCurrentDirectory() ]
    starts
    |> List.tryPick (fun start ->
        let rec up (dir: DirectoryInfo | null) =
            match dir with
            | null -> None
            | d ->
                let candidate = Path.Combine(d.FullName, relative)
                if File.Exists candidate then Some candidate else up d.Parent
        up (DirectoryInfo start))

/// Runs /usr/bin/python3 with a script and arguments; returns the JSON objects it printed.
let runPython (script: string) (args: string) : JsonElement list =
    let psi = ProcessStartInfo("/usr/bin/python3", sprintf "\"%s\" %s" script args)
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p =
        match Process.Start psi with
        | null -> failwith "could not start /usr/bin/python3"
        | p -> p
    let out = p.StandardOutput.ReadToEnd()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    if p.ExitCode <> 0 then failwithf "%s failed (exit %d): %s" script p.ExitCode err
    out.Split('\n')
    |> Array.filter (fun l -> l.StartsWith "{")
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.Clone())
    |> List.ofArray

let blasNote () =
    sprintf "GEMM: %s; OPENBLAS_CORETYPE=%s" (GroupedNewton.Backends.GemmProvider.active ())
        (match Environment.GetEnvironmentVariable "OPENBLAS_CORETYPE" with null | "" -> "unset" | s -> s)
