/// Side-by-side timing helpers: medians over repeated runs after a warm-up.
module GroupedNewton.Benchmarks.Timing

open System.Diagnostics

/// Median wall time in milliseconds of `reps` calls of f, after `warm` untimed calls.
let medianMs (warm: int) (reps: int) (f: unit -> unit) =
    for _ in 1 .. warm do f ()
    let ts =
        Array.init reps (fun _ ->
            let sw = Stopwatch.StartNew()
            f ()
            sw.Elapsed.TotalMilliseconds)
    Array.sortInPlace ts
    ts.[reps / 2]
