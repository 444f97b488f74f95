/// Every raw backend op, each dtype, as a case run on any backend and compared with the
/// managed backend's result to the dtype's tolerance.
module GroupedNewton.Conformance.RawCases

open System
open GroupedNewton
open GroupedNewton.Conformance.Check

/// A raw op as a function of the backend its inputs are created on.
type RawCase = {
    Name: string
    Dtype: Dtype
    Run: Backend -> RawTensor
} with

    override c.ToString() = sprintf "%s %O" c.Name c.Dtype

let private input (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let x = b.OfArray(randn seed (Shape.numel shape), shape)
    b.Cast(x, dtype)

let private positive (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let r = Random(seed)
    b.Cast(b.OfArray(Array.init (Shape.numel shape) (fun _ -> 0.5 + 1.5 * r.NextDouble()), shape), dtype)

/// Values at least 0.1 apart in a seeded order (no ties for max and argmax).
let private distinct (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let n = Shape.numel shape
    let r = Random(seed)
    let perm = Array.init n id |> Array.sortBy (fun _ -> r.Next())
    b.Cast(b.OfArray(perm |> Array.map (fun k -> 0.1 * float k - 0.05 * float n), shape), dtype)

let private ints (b: Backend) (values: int[]) (shape: int[]) = b.OfArray(values, shape)

let floatCases (dt: Dtype) : RawCase list =
    let c name run = { Name = name; Dtype = dt; Run = run }
    let x b = input b dt 1 [| 2; 3; 4 |]

    let unaries = [
        UnaryKind.Neg
        UnaryKind.Exp
        UnaryKind.Tanh
        UnaryKind.Sigmoid
        UnaryKind.Softplus
        UnaryKind.Relu
        UnaryKind.Abs
        UnaryKind.Sign
    ]

    [
        c "zeros" (fun b -> b.Zeros([| 3; 2 |], dt))
        c "full" (fun b -> b.Full([| 2; 2; 2 |], -1.25, dt))
        c "ofArray-toArray" x
        c "cast-to-int32" (fun b -> b.Cast(b.MulScalar(x b, 3.0), Dtype.Int32))
        c "cast-between-floats" (fun b -> b.Cast(x b, (if dt = Dtype.Float32 then Dtype.Float64 else Dtype.Float32)))
        c "view" (fun b -> b.View(x b, [| 6; 4 |]))
        c "permute" (fun b -> b.Permute(x b, [| 2; 0; 1 |]))
        c "expand" (fun b -> b.Expand(input b dt 2 [| 3; 1 |], [| 2; 3; 4 |]))
        c "slice" (fun b -> b.Slice(x b, [| 1; 0; 1 |], [| 1; 2; 3 |]))
        c "pad" (fun b -> b.Pad(x b, [| 1; 2; 0 |], [| 4; 5; 5 |]))
        c "cat-dim0" (fun b -> b.Cat([| x b; input b dt 3 [| 1; 3; 4 |] |], 0))
        c "cat-dim2" (fun b -> b.Cat([| x b; input b dt 3 [| 2; 3; 1 |]; input b dt 4 [| 2; 3; 2 |] |], 2))
        for k in unaries do
            c (sprintf "unary-%A" k) (fun b -> b.Unary(k, x b))
        for k in [ UnaryKind.Log; UnaryKind.Sqrt ] do
            c (sprintf "unary-%A" k) (fun b -> b.Unary(k, positive b dt 5 [| 2; 3; 4 |]))
        for k in [ BinaryKind.Add; BinaryKind.Sub; BinaryKind.Mul ] do
            c (sprintf "binary-%A" k) (fun b -> b.Binary(k, x b, input b dt 6 [| 2; 3; 4 |]))
        c "binary-Div" (fun b -> b.Binary(BinaryKind.Div, x b, positive b dt 7 [| 2; 3; 4 |]))
        c "addBroadcast" (fun b -> b.AddBroadcast(x b, input b dt 8 [| 3; 1 |]))
        c "addBroadcast-row" (fun b -> b.AddBroadcast(x b, input b dt 8 [| 4 |]))
        c "addScaled" (fun b -> b.AddScaled(x b, input b dt 9 [| 2; 3; 4 |], -0.3))
        c "tanhGrad" (fun b -> b.TanhGrad(b.Unary(UnaryKind.Tanh, x b), input b dt 10 [| 2; 3; 4 |]))
        c "addScalar" (fun b -> b.AddScalar(x b, 2.5))
        c "mulScalar" (fun b -> b.MulScalar(x b, -1.5))
        c "powScalar" (fun b -> b.PowScalar(positive b dt 11 [| 2; 3; 4 |], -1.5))
        c "gtScalar" (fun b -> b.GtScalar(x b, 0.1))
        c "sum" (fun b -> b.Sum(x b))
        for d in 0..2 do
            c (sprintf "sumDim-%d" d) (fun b -> b.SumDim(x b, d, false))
            c (sprintf "sumDim-%d-keep" d) (fun b -> b.SumDim(x b, d, true))
            c (sprintf "maxDim-%d" d) (fun b -> b.MaxDim(distinct b dt 12 [| 2; 3; 4 |], d, (d = 1)))
            c (sprintf "argMaxDim-%d" d) (fun b -> b.ArgMaxDim(distinct b dt 12 [| 2; 3; 4 |], d))
        for ta in [ false; true ] do
            for tb in [ false; true ] do
                c (sprintf "matmul-%b-%b" ta tb) (fun b ->
                    let a = input b dt 13 (if ta then [| 7; 5 |] else [| 5; 7 |])
                    let m = input b dt 14 (if tb then [| 6; 7 |] else [| 7; 6 |])
                    b.MatMul(a, m, ta, tb))
        c "matmul-large" (fun b -> b.MatMul(input b dt 15 [| 64; 300 |], input b dt 16 [| 300; 70 |], false, false))
        let img b = input b dt 17 [| 2; 3; 7; 6 |]

        for (kh, kw, sh, sw, ph, pw) in [ (3, 2, 1, 1, 0, 0); (3, 3, 2, 1, 1, 1); (2, 3, 2, 2, 1, 0) ] do
            let tag = sprintf "%dx%d-s%d%d-p%d%d" kh kw sh sw ph pw
            let oh, ow = Shape.window2d "test" 7 6 kh kw sh sw ph pw
            c ("unfold2d-" + tag) (fun b -> b.Unfold2d(img b, kh, kw, sh, sw, ph, pw))
            c ("fold2d-" + tag) (fun b -> b.Fold2d(input b dt 18 [| 3 * kh * kw; 2 * oh * ow |], [| 2; 3; 7; 6 |], kh, kw, sh, sw, ph, pw))
            c ("conv2d-" + tag) (fun b -> b.Conv2d(img b, input b dt 19 [| 4; 3; kh; kw |], sh, sw, ph, pw))

            c ("conv2dInputGrad-" + tag) (fun b ->
                b.Conv2dInputGrad(input b dt 20 [| 2; 4; oh; ow |], input b dt 19 [| 4; 3; kh; kw |], [| 2; 3; 7; 6 |], sh, sw, ph, pw))

            c ("conv2dWeightGrad-" + tag) (fun b ->
                b.Conv2dWeightGrad(img b, input b dt 20 [| 2; 4; oh; ow |], [| 4; 3; kh; kw |], sh, sw, ph, pw))

        for (k, s, p) in [ (2, 2, 0); (3, 1, 1); (3, 2, 1) ] do
            c (sprintf "maxPool2dIndices-k%d-s%d-p%d" k s p) (fun b ->
                // all negative: a zero padding would win a max if padding could
                b.MaxPool2dIndices(b.AddScalar(distinct b dt 21 [| 2; 3; 6; 5 |], -100.0), k, s, p))

        c "oneHot" (fun b -> b.OneHot(ints b [| 2; 0; 1; 2; 4 |] [| 5 |], 5, dt))
        c "gather" (fun b -> b.Gather(input b dt 22 [| 3; 4 |], 1, ints b [| 0; 3; 3; 1; 2; 0; 1; 1; 2 |] [| 3; 3 |]))
        c "gather-dim0" (fun b -> b.Gather(input b dt 22 [| 3; 4 |], 0, ints b [| 2; 0; 1; 1; 0; 0; 2; 2 |] [| 2; 4 |]))
        c "scatterAdd" (fun b -> b.ScatterAdd(input b dt 23 [| 3; 3 |], 1, ints b [| 0; 0; 2; 1; 1; 1; 3; 0; 3 |] [| 3; 3 |], [| 3; 4 |]))
        c "scatterAdd-dim0" (fun b -> b.ScatterAdd(input b dt 23 [| 6 |], 0, ints b [| 1; 1; 0; 3; 1; 0 |] [| 6 |], [| 4 |]))
    ]

/// The one int32 case: a round trip of int32 values and their cast to float64.
let int32Case = {
    Name = "int32-roundtrip-cast"
    Dtype = Dtype.Int32
    Run = fun b -> b.Cast(ints b [| 3; -1; 7; 0; 2; 5 |] [| 2; 3 |], Dtype.Float64)
}

/// Every case: the float cases in float64 and float32, then the int32 case.
let all: RawCase list = [
    for dt in [ Dtype.Float64; Dtype.Float32 ] do
        yield! floatCases dt
    yield int32Case
]

/// The tolerance (relative to max(1, max |expected|)) a result of this dtype must meet.
let tolerance (dt: Dtype) =
    match dt with
    | Dtype.Float32 -> 2e-6
    | Dtype.Float64 -> 1e-13
    | Dtype.Int32 -> 0.0

/// Values as float64 whatever the dtype.
let values (r: RawTensor) =
    match r.Backend.ToArray r with
    | :? (float32[]) as a -> Array.map float a
    | :? (float[]) as a -> a
    | :? (int[]) as a -> Array.map float a
    | a -> fail (sprintf "unexpected array type %s" (a.GetType().Name))

/// Runs the case on `managed` and on `backend`; the result must live on `backend` and
/// equal the managed one in shape, dtype and values (to the dtype's tolerance).
let check (managed: Backend) (backend: Backend) (c: RawCase) =
    let expected = c.Run managed
    let actual = c.Run backend

    ensure
        (Object.ReferenceEquals(actual.Backend, backend))
        (sprintf "%O: the result lives on %s, not on the backend under test %s" c actual.Backend.Name backend.Name)

    ensure (actual.Shape = expected.Shape) (sprintf "%O: shape: expected %s, got %s" c (Shape.str expected.Shape) (Shape.str actual.Shape))
    ensure (actual.Dtype = expected.Dtype) (sprintf "%O: dtype: expected %O, got %O" c expected.Dtype actual.Dtype)
    allClose (tolerance expected.Dtype) (string c) (values expected) (values actual)
