/// Side-by-side timing helpers: medians over repeated runs after a warm-up.
module GroupedNewton.Benchmarks.Timing

open System.Diagnostics

/// The median of a sample (the upper one for an even count); NaN when empty.
let median (xs: float seq) =
    let a = Array.ofSeq xs |> Array.sort
    if a.Length = 0 then nan else a.[a.Length / 2]

/// Median wall time in milliseconds of `reps` calls of f, after `warm` untimed calls.
let medianMs (warm: int) (reps: int) (f: unit -> unit) =
    for _ in 1..warm do
        f ()

    let ts =
        Array.init reps (fun _ ->
            let sw = Stopwatch.StartNew()
            f ()
            sw.Elapsed.TotalMilliseconds)

    median ts

/// Runs f `count` times; prints the collections, GC pause and allocation per call under
/// `label`, and returns the wall time per call in milliseconds.
let perCallWithGc (label: string) (count: int) (f: unit -> unit) =
    let gcs0 = Array.init 3 System.GC.CollectionCount
    let pause0 = System.GC.GetTotalPauseDuration()
    let alloc0 = System.GC.GetTotalAllocatedBytes false
    let sw = Stopwatch.StartNew()

    for _ in 1..count do
        f ()

    let ms = sw.Elapsed.TotalMilliseconds / float count
    let gcs = Array.init 3 (fun g -> System.GC.CollectionCount g - gcs0.[g])

    printfn
        "%s: %d/%d/%d collections (gen0/1/2) over %d calls, GC pause %.2f ms and %.1f MB allocated per call"
        label
        gcs.[0]
        gcs.[1]
        gcs.[2]
        count
        ((System.GC.GetTotalPauseDuration() - pause0).TotalMilliseconds / float count)
        (float (System.GC.GetTotalAllocatedBytes false - alloc0) / 1e6 / float count)

    ms
