/// Bad input: typed exceptions whose messages name the op and the offending shapes,
/// dtypes or values; nothing is silently broadcast that should not be.
module GroupedNewton.Tests.ErrorTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private throwsWith<'E when 'E :> exn> (parts: string list) (f: unit -> obj) =
    let e = Assert.Throws<'E>(fun () -> f () |> ignore)

    for p in parts do
        Assert.That(e.Message, Does.Contain p, sprintf "message '%s' should mention '%s'" e.Message p)

[<Test>]
let ``shapes that do not broadcast are rejected naming both`` () =
    throwsWith<ShapeMismatchException> [ "add"; "[2; 3]"; "[4]" ] (fun () -> box (Tensor.zeros [| 2; 3 |] + Tensor.zeros [| 4 |]))
    throwsWith<ShapeMismatchException> [ "mul"; "[3; 2]"; "[2; 3]" ] (fun () -> box (Tensor.zeros [| 3; 2 |] * Tensor.zeros [| 2; 3 |]))

[<Test>]
let ``mixed dtypes are rejected, not widened`` () =
    throwsWith<DtypeMismatchException> [ "add"; "float32"; "float64" ] (fun () ->
        box (Tensor.zerosOf Dtype.Float32 [| 2 |] + Tensor.zeros [| 2 |]))

    throwsWith<DtypeMismatchException> [ "matmul"; "float32" ] (fun () ->
        box (Tensor.matmul (Tensor.zerosOf Dtype.Float32 [| 2; 2 |]) (Tensor.zeros [| 2; 2 |])))

[<Test>]
let ``int32 tensors are not accepted by float ops or differentiated`` () =
    throwsWith<DtypeMismatchException> [ "int32" ] (fun () -> box (Tensor.tanh (Tensor.ofInts [| 1; 2 |])))
    throwsWith<DtypeMismatchException> [ "grad"; "int32" ] (fun () -> box (Ad.grad Tensor.sum (Tensor.ofInts [| 1; 2 |])))

[<Test>]
let ``matmul with mismatched inner dimensions names the shapes`` () =
    throwsWith<ShapeMismatchException> [ "matmul"; "[2; 3]"; "[4; 5]" ] (fun () ->
        box (Tensor.matmul (Tensor.zeros [| 2; 3 |]) (Tensor.zeros [| 4; 5 |])))

    throwsWith<ShapeMismatchException> [ "matmul"; "2-D" ] (fun () -> box (Tensor.matmul (Tensor.zeros [| 2 |]) (Tensor.zeros [| 2; 2 |])))

[<Test>]
let ``differentiating a non-scalar function where a scalar is needed`` () =
    throwsWith<DifferentiationException> [ "grad"; "scalar"; "[3]" ] (fun () -> box (Ad.grad (fun x -> x * x) (vec [| 1.0; 2.0; 3.0 |])))
    throwsWith<DifferentiationException> [ "diff"; "[2]" ] (fun () -> box (Ad.diff (fun x -> x) (vec [| 1.0; 2.0 |])))

    throwsWith<ShapeMismatchException> [ "jvp"; "[3]"; "[2]" ] (fun () ->
        box (Ad.jvp (fun x -> x) (vec [| 1.0; 2.0 |]) (vec [| 1.0; 2.0; 3.0 |])))

[<Test>]
let ``indices out of range are rejected naming the index`` () =
    throwsWith<IndexOutOfRangeTensorException> [ "gather"; "5" ] (fun () ->
        box (Tensor.gather 0 (Tensor.ofInts [| 0; 5 |]) (vec [| 1.0; 2.0 |])))

    throwsWith<IndexOutOfRangeTensorException> [ "oneHot"; "-1" ] (fun () ->
        box (Tensor.crossEntropy (Tensor.zeros [| 2; 3 |]) (Tensor.ofInts [| 0; -1 |])))

    throwsWith<IndexOutOfRangeTensorException> [ "slice"; "[1, 4)" ] (fun () -> box (Tensor.slice [| 1 |] [| 3 |] (vec [| 1.0; 2.0 |])))
    throwsWith<IndexOutOfRangeTensorException> [ "dimension 2" ] (fun () -> box (Tensor.sumDim 2 false (Tensor.zeros [| 2; 2 |])))

[<Test>]
let ``losses check labels and shapes without broadcasting`` () =
    throwsWith<ShapeMismatchException> [ "mse"; "[3]"; "[3; 1]" ] (fun () ->
        box (Tensor.mse (Tensor.zeros [| 3 |]) (Tensor.zeros [| 3; 1 |])))

    throwsWith<ShapeMismatchException> [ "crossEntropy"; "[3]"; "[2; 4]" ] (fun () ->
        box (Tensor.crossEntropy (Tensor.zeros [| 2; 4 |]) (Tensor.ofInts [| 0; 1; 2 |])))

    throwsWith<DtypeMismatchException> [ "crossEntropy"; "int32" ] (fun () ->
        box (Tensor.crossEntropy (Tensor.zeros [| 2; 4 |]) (vec [| 0.0; 1.0 |])))

[<Test>]
let ``views, convolutions and windows check their shapes`` () =
    throwsWith<ShapeMismatchException> [ "view"; "[2; 3]"; "[4]" ] (fun () -> box (Tensor.view [| 4 |] (Tensor.zeros [| 2; 3 |])))

    throwsWith<ShapeMismatchException> [ "conv2d"; "[4; 2; 3; 3]"; "[1; 3; 8; 8]" ] (fun () ->
        box (Tensor.conv2d (1, 1) (0, 0) (Tensor.zeros [| 1; 3; 8; 8 |]) (Tensor.zeros [| 4; 2; 3; 3 |]) None))

    throwsWith<ShapeMismatchException> [ "maxPool2d"; "kernel 5x5" ] (fun () ->
        box (Tensor.maxPool2d 5 1 0 (Tensor.zeros [| 1; 1; 3; 3 |])))

    throwsWith<ShapeMismatchException> [ "permute" ] (fun () -> box (Tensor.permute [| 0; 0 |] (Tensor.zeros [| 2; 2 |])))

    throwsWith<ShapeMismatchException> [ "ofArray"; "5 values"; "[2; 3]" ] (fun () ->
        box (Tensor.ofArrayShape [| 1.0; 2.0; 3.0; 4.0; 5.0 |] [| 2; 3 |]))

[<Test>]
let ``backend settings are validated`` () =
    throwsWith<BackendException> [ "nosuch" ] (fun () -> box (BackendRegistry.get "nosuch"))
    throwsWith<BackendException> [ "0" ] (fun () -> box (BackendRegistry.setThreads 0))

[<Test>]
let ``a failed op leaves its operands untouched`` () =
    let a = vec [| 1.0; 2.0 |]
    Assert.Throws<ShapeMismatchException>(fun () -> a + Tensor.zeros [| 3 |] |> ignore) |> ignore
    Assert.That(Tensor.toArray a, equalTo [| 1.0; 2.0 |])
    Assert.That(Tensor.toArray (a * a), equalTo [| 1.0; 4.0 |])

[<Test>]
let ``accuracy rejects a label outside the classes, as crossEntropy does`` () =
    let logits = Tensor.ofArray2D (array2D [ [ 0.0; 1.0 ]; [ 2.0; 0.0 ] ])

    for bad in [ [| 1; 2 |]; [| -1; 0 |] ] do
        let labels = Tensor.ofInts bad

        Assert.Throws<IndexOutOfRangeTensorException>(fun () -> Losses.crossEntropy logits labels |> ignore)
        |> ignore

        let label = bad |> Array.find (fun l -> l < 0 || l >= 2)

        throwsWith<IndexOutOfRangeTensorException> [ "accuracy"; sprintf "label %d" label; "[0, 2)" ] (fun () ->
            box (Losses.accuracy logits labels))

[<Test>]
let ``a bad GROUPEDNEWTON_THREADS is a BackendException at first use, and a count set in code wins`` () =
    let before = BackendRegistry.threads ()
    let saved = System.Environment.GetEnvironmentVariable "GROUPEDNEWTON_THREADS"

    try
        System.Environment.SetEnvironmentVariable("GROUPEDNEWTON_THREADS", "abc")
        GroupedNewton.Backends.Managed.Threading.reset ()
        throwsWith<BackendException> [ "GROUPEDNEWTON_THREADS"; "'abc'" ] (fun () -> box (BackendRegistry.threads ()))
        // still the same clear error on the next read, not a broken type initialiser
        throwsWith<BackendException> [ "GROUPEDNEWTON_THREADS" ] (fun () -> box (BackendRegistry.threads ()))
        BackendRegistry.setThreads 3
        Assert.That(BackendRegistry.threads (), Is.EqualTo 3)
        System.Environment.SetEnvironmentVariable("GROUPEDNEWTON_THREADS", "2")
        GroupedNewton.Backends.Managed.Threading.reset ()
        Assert.That(BackendRegistry.threads (), Is.EqualTo 2)
    finally
        System.Environment.SetEnvironmentVariable("GROUPEDNEWTON_THREADS", saved)
        BackendRegistry.setThreads before
