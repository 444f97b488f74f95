/// `bench`: the anchor timings of the benchmarks project. The measurement code is the
/// benchmarks project's own (its source files are compiled into this tool), so both print
/// the same JSON lines.
module GroupedNewton.Cli.BenchCommand

open System
open Argu
open GroupedNewton.Cli.Arguments

let run (r: ParseResults<BenchArgs>) : int =
    let args =
        [| match r.TryGetResult BenchArgs.Threads with
           | Some t ->
               Settings.intList "--threads" t |> List.iter (fun v -> if v < 1 then Fail.usage "--threads: %d is not a thread count" v)
               yield "--threads"; yield t
           | None -> ()
           match r.TryGetResult BenchArgs.Models with
           | Some m ->
               for name in m.Split(',', StringSplitOptions.TrimEntries ||| StringSplitOptions.RemoveEmptyEntries) do
                   if name <> "mlp" && name <> "lenet" then Fail.usage "--models: unknown model '%s' (expected mlp or lenet)" name
               yield "--models"; yield m
           | None -> () |]
    GroupedNewton.Benchmarks.SummaryAnchor.run args
