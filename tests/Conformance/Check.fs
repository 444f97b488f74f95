/// Closeness checks and seeded inputs for the conformance tables. A failed check raises
/// ConformanceException naming what differed, by how much, and the tolerance.
module GroupedNewton.Conformance.Check

open System
open GroupedNewton

/// A conformance check that did not hold.
exception ConformanceException of string with
    override e.Message = e.Data0

let fail (message: string) : 'T = raise (ConformanceException message)

/// |a − b| ≤ tol · max(1, |b|)
let close (tol: float) (what: string) (expected: float) (actual: float) =
    let scale = max 1.0 (abs expected)

    if not (abs (actual - expected) <= tol * scale) then
        fail (
            sprintf
                "%s: expected %.12g, got %.12g (difference %.3g, tolerance %.3g)"
                what
                expected
                actual
                (abs (actual - expected))
                (tol * scale)
        )

/// Element by element within tol · max(1, max |expected|), same lengths.
let allClose (tol: float) (what: string) (expected: float[]) (actual: float[]) =
    if actual.Length <> expected.Length then
        fail (sprintf "%s: length: expected %d, got %d" what expected.Length actual.Length)

    let scale = max 1.0 (expected |> Array.fold (fun m v -> max m (abs v)) 0.0)

    for i in 0 .. expected.Length - 1 do
        if not (abs (actual.[i] - expected.[i]) <= tol * scale) then
            fail (sprintf "%s: element %d expected %.12g, got %.12g (tolerance %.3g)" what i expected.[i] actual.[i] (tol * scale))

/// Raises unless `cond`, with the message.
let ensure (cond: bool) (message: string) =
    if not cond then
        fail message

/// Seeded standard-normal float64 values.
let randn (seed: int) (n: int) =
    let rng = Random(seed)

    Array.init n (fun _ ->
        let u1 = 1.0 - rng.NextDouble()
        let u2 = rng.NextDouble()
        Math.Sqrt(-2.0 * Math.Log u1) * Math.Cos(2.0 * Math.PI * u2))

/// Runs `f` with `b` as the backend new tensors are created on.
let withDefault (b: Backend) (f: unit -> 'T) =
    let previous = BackendRegistry.defaultBackend ()
    BackendRegistry.setDefault b

    try
        f ()
    finally
        BackendRegistry.setDefault previous
