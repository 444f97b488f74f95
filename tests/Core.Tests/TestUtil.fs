/// Helpers shared by the test files: closeness assertions and seeded inputs.
module GroupedNewton.Tests.TestUtil

open System
open NUnit.Framework
open GroupedNewton

/// NUnit's equality constraint on any value (arrays compare element by element).
let equalTo (expected: obj) = Is.EqualTo(expected)

/// |a − b| ≤ tol · max(1, |b|)
let assertClose (tol: float) (what: string) (expected: float) (actual: float) =
    let scale = max 1.0 (abs expected)

    if not (abs (actual - expected) <= tol * scale) then
        Assert.Fail(
            sprintf
                "%s: expected %.12g, got %.12g (difference %.3g, tolerance %.3g)"
                what
                expected
                actual
                (abs (actual - expected))
                (tol * scale)
        )

let assertAllClose (tol: float) (what: string) (expected: float[]) (actual: float[]) =
    Assert.That(actual.Length, equalTo expected.Length, sprintf "%s: length" what)
    let scale = max 1.0 (expected |> Array.fold (fun m v -> max m (abs v)) 0.0)

    for i in 0 .. expected.Length - 1 do
        if not (abs (actual.[i] - expected.[i]) <= tol * scale) then
            Assert.Fail(sprintf "%s: element %d expected %.12g, got %.12g (tolerance %.3g)" what i expected.[i] actual.[i] (tol * scale))

let assertTensorClose tol what (expected: Tensor) (actual: Tensor) =
    Assert.That(actual.Shape, equalTo expected.Shape, sprintf "%s: shape" what)
    assertAllClose tol what (Tensor.toArray expected) (Tensor.toArray actual)

/// Seeded standard-normal float64 values.
let randn (seed: int) (n: int) = GroupedNewton.Conformance.Check.randn seed n

let vec (values: float[]) = Tensor.ofArray values
let t (shape: int[]) (values: float[]) = Tensor.ofArrayShape values shape

/// The repository's data/ folder (found upwards from the test assembly).
let dataFolder () =
    let rec up (d: IO.DirectoryInfo) =
        if isNull d then
            failwith "GroupedNewton.sln not found"
        elif IO.File.Exists(IO.Path.Combine(d.FullName, "GroupedNewton.sln")) then
            IO.Path.Combine(d.FullName, "data")
        else
            up d.Parent

    up (IO.DirectoryInfo AppContext.BaseDirectory)
