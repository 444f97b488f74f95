/// Side-by-side timing helpers: medians over repeated runs after a warm-up.
module GroupedNewton.Benchmarks.Timing

open System.Diagnostics

/// The median of a sample (the upper one for an even count); NaN when empty.
let median (xs: float seq) =
    let a = Array.ofSeq xs |> Array.sort
    if a.Length = 0 then nan else a.[a.Length / 2]

/// Median wall time in milliseconds of `reps` calls of f, after `warm` untimed calls.
let medianMs (warm: int) (reps: int) (f: unit -> unit) =
    for _ in 1 .. warm do f ()
    let ts =
        Array.init reps (fun _ ->
            let sw = Stopwatch.StartNew()
            f ()
            sw.Elapsed.TotalMilliseconds)
    median ts
