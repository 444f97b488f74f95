/// PyTorch's side of the timings: benchmarks/gpu/pytorch_side.py run as a child process on
/// the same device, its JSON lines read back.
module GroupedNewton.GpuRunner.PyTorchSide

open System
open System.Diagnostics
open System.Text.Json

/// The JSON objects the script printed, or why it could not be run.
let run (python: string) (script: string) (args: string) (threads: int) : Result<JsonElement list, string> =
    let psi = ProcessStartInfo(python, sprintf "\"%s\" %s" script args)
    // torch.set_num_threads does not bound the pthread OpenBLAS a generic-BLAS libtorch
    // (Debian's) calls: hold it to the same thread count
    for var in [ "OPENBLAS_NUM_THREADS"; "OMP_NUM_THREADS"; "MKL_NUM_THREADS" ] do
        if String.IsNullOrEmpty(Environment.GetEnvironmentVariable var) then
            psi.Environment.[var] <- string threads

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true

    try
        use p =
            match Process.Start psi with
            | null -> failwithf "could not start %s" python
            | p -> p

        let err = p.StandardError.ReadToEndAsync()
        let out = p.StandardOutput.ReadToEnd()
        p.WaitForExit()

        if p.ExitCode <> 0 then
            let e = err.Result
            Error(sprintf "%s %s exited with %d: %s" python script p.ExitCode (if e.Length > 2000 then e.Substring(e.Length - 2000) else e))
        else
            Ok(
                out.Split('\n')
                |> Array.filter (fun l -> l.StartsWith "{")
                |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.Clone())
                |> List.ofArray
            )
    with e ->
        Error(sprintf "could not run %s %s: %s" python script e.Message)
