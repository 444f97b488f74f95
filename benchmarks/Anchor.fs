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
/// With `--threads N` among the arguments, the child's BLAS is held to N threads as well:
/// torch.set_num_threads bounds PyTorch's own pool but not the pthread OpenBLAS that
/// Debian's torch links, which otherwise runs its products on every core (measured here:
/// the anchor's "1-thread" MLP step took 5.8–9.9 ms that way, 11.0–11.6 ms on one thread).
let runPython (script: string) (args: string) : JsonElement list =
    let psi = ProcessStartInfo("/usr/bin/python3", sprintf "\"%s\" %s" script args)
    let words = args.Split(' ', StringSplitOptions.RemoveEmptyEntries)

    match Array.tryFindIndex ((=) "--threads") words with
    | Some i when i + 1 < words.Length && not (words.[i + 1].Contains ",") ->
        for var in [ "OPENBLAS_NUM_THREADS"; "OMP_NUM_THREADS"; "MKL_NUM_THREADS" ] do
            if String.IsNullOrEmpty(Environment.GetEnvironmentVariable var) then
                psi.Environment.[var] <- words.[i + 1]
    | _ -> ()

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true

    use p =
        match Process.Start psi with
        | null -> failwith "could not start /usr/bin/python3"
        | p -> p

    let out = p.StandardOutput.ReadToEnd()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()

    if p.ExitCode <> 0 then
        failwithf "%s failed (exit %d): %s" script p.ExitCode err

    out.Split('\n')
    |> Array.filter (fun l -> l.StartsWith "{")
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.Clone())
    |> List.ofArray

let blasNote () =
    sprintf
        "GEMM: %s; OPENBLAS_CORETYPE=%s"
        (GroupedNewton.Backends.GemmProvider.active ())
        (match Environment.GetEnvironmentVariable "OPENBLAS_CORETYPE" with
         | null
         | "" -> "unset"
         | s -> s)
