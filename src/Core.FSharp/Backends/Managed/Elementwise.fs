namespace GroupedNewton.Backends.Managed

open System
open System.Numerics.Tensors
open GroupedNewton

/// SIMD elementwise kernels (System.Numerics.Tensors), split over threads for large tensors.
module internal Elementwise =
    // Kernels receive (input arrays, output array, offset, length) and build their spans
    // themselves: spans cannot be captured by the closures that split work over threads.
    let inline private ro (a: 'T[]) (o: int) (n: int) = ReadOnlySpan<'T>(a, o, n)
    let inline private sp (a: 'T[]) (o: int) (n: int) = Span<'T>(a, o, n)

    let inline private map (cost: int) (a: 'T[]) ([<InlineIfLambda>] k: 'T[] -> 'T[] -> int -> int -> unit) =
        let r = Storage.Uninit a.Length
        let work = int64 a.Length * int64 cost

        if work < int64 Threading.MinParallelWork then
            k a r 0 a.Length
        else
            Threading.forRanges a.Length work (fun lo hi -> k a r lo (hi - lo))

        r

    let inline private zip (a: 'T[]) (b: 'T[]) ([<InlineIfLambda>] k: 'T[] -> 'T[] -> 'T[] -> int -> int -> unit) =
        let r = Storage.Uninit a.Length

        if a.Length < Threading.MinParallelWork then
            k a b r 0 a.Length
        else
            Threading.forRanges a.Length (int64 a.Length) (fun lo hi -> k a b r lo (hi - lo))

        r

    let private softplus32 (x: ReadOnlySpan<float32>) (y: Span<float32>) =
        for i in 0 .. x.Length - 1 do
            let v = x.[i]
            y.[i] <- MathF.Max(v, 0.0f) + MathF.Log(1.0f + MathF.Exp(-MathF.Abs v))

    let private softplus64 (x: ReadOnlySpan<float>) (y: Span<float>) =
        for i in 0 .. x.Length - 1 do
            let v = x.[i]
            y.[i] <- Math.Max(v, 0.0) + Math.Log(1.0 + Math.Exp(-Math.Abs v))

    /// 1, -1 or 0 by the sign of each element (0 for NaN).
    let inline private signOf (zero: 'T) (one: 'T) (x: ReadOnlySpan<'T>) (y: Span<'T>) =
        for i in 0 .. x.Length - 1 do
            let v = x.[i]

            y.[i] <-
                if v > zero then one
                elif v < zero then -one
                else zero

    let private sign32 (x: ReadOnlySpan<float32>) (y: Span<float32>) = signOf 0.0f 1.0f x y

    let private sign64 (x: ReadOnlySpan<float>) (y: Span<float>) = signOf 0.0 1.0 x y

    let private unary32 (kind: UnaryKind) (a: float32[]) =
        match kind with
        | UnaryKind.Neg -> map 1 a (fun x y o n -> TensorPrimitives.Negate(ro x o n, sp y o n))
        | UnaryKind.Exp -> map 8 a (fun x y o n -> Transcendental.exp32 x y o n)
        | UnaryKind.Log -> map 8 a (fun x y o n -> TensorPrimitives.Log(ro x o n, sp y o n))
        | UnaryKind.Tanh -> map 8 a (fun x y o n -> Transcendental.tanh32 x y o n)
        | UnaryKind.Sigmoid -> map 8 a (fun x y o n -> Transcendental.sigmoid32 x y o n)
        | UnaryKind.Softplus -> map 16 a (fun x y o n -> softplus32 (ro x o n) (sp y o n))
        | UnaryKind.Relu -> map 1 a (fun x y o n -> TensorPrimitives.Max(ro x o n, 0.0f, sp y o n))
        | UnaryKind.Sqrt -> map 4 a (fun x y o n -> TensorPrimitives.Sqrt(ro x o n, sp y o n))
        | UnaryKind.Abs -> map 1 a (fun x y o n -> TensorPrimitives.Abs(ro x o n, sp y o n))
        | UnaryKind.Sign -> map 2 a (fun x y o n -> sign32 (ro x o n) (sp y o n))

    let private unary64 (kind: UnaryKind) (a: float[]) =
        match kind with
        | UnaryKind.Neg -> map 1 a (fun x y o n -> TensorPrimitives.Negate(ro x o n, sp y o n))
        | UnaryKind.Exp -> map 8 a (fun x y o n -> TensorPrimitives.Exp(ro x o n, sp y o n))
        | UnaryKind.Log -> map 8 a (fun x y o n -> TensorPrimitives.Log(ro x o n, sp y o n))
        | UnaryKind.Tanh -> map 8 a (fun x y o n -> TensorPrimitives.Tanh(ro x o n, sp y o n))
        | UnaryKind.Sigmoid -> map 8 a (fun x y o n -> TensorPrimitives.Sigmoid(ro x o n, sp y o n))
        | UnaryKind.Softplus -> map 16 a (fun x y o n -> softplus64 (ro x o n) (sp y o n))
        | UnaryKind.Relu -> map 1 a (fun x y o n -> TensorPrimitives.Max(ro x o n, 0.0, sp y o n))
        | UnaryKind.Sqrt -> map 4 a (fun x y o n -> TensorPrimitives.Sqrt(ro x o n, sp y o n))
        | UnaryKind.Abs -> map 1 a (fun x y o n -> TensorPrimitives.Abs(ro x o n, sp y o n))
        | UnaryKind.Sign -> map 2 a (fun x y o n -> sign64 (ro x o n) (sp y o n))

    let private notInt op = Fail.dtype op "int32 tensors carry labels and indices; this op needs float32 or float64"

    let unary (kind: UnaryKind) (s: Storage) =
        match s with
        | F32 a -> F32(unary32 kind a)
        | F64 a -> F64(unary64 kind a)
        | I32 _ -> notInt (sprintf "%A" kind)

    let private binaryOf<'T when 'T :> Numerics.INumber<'T>> (kind: BinaryKind) (x: 'T[]) (y: 'T[]) =
        match kind with
        | BinaryKind.Add -> zip x y (fun p q r o n -> TensorPrimitives.Add(ro p o n, ro q o n, sp r o n))
        | BinaryKind.Sub -> zip x y (fun p q r o n -> TensorPrimitives.Subtract(ro p o n, ro q o n, sp r o n))
        | BinaryKind.Mul -> zip x y (fun p q r o n -> TensorPrimitives.Multiply(ro p o n, ro q o n, sp r o n))
        | BinaryKind.Div -> zip x y (fun p q r o n -> TensorPrimitives.Divide(ro p o n, ro q o n, sp r o n))

    let binary (kind: BinaryKind) (a: Storage) (b: Storage) =
        match a, b with
        | F32 x, F32 y -> F32(binaryOf kind x y)
        | F64 x, F64 y -> F64(binaryOf kind x y)
        | _ -> Fail.dtype (sprintf "%A" kind) (sprintf "operands of dtypes %O and %O" a.Dtype b.Dtype)

    let addScalar (s: Storage) (c: float) =
        match s with
        | F32 a -> let c = float32 c in F32(map 1 a (fun x y o n -> TensorPrimitives.Add(ro x o n, c, sp y o n)))
        | F64 a -> F64(map 1 a (fun x y o n -> TensorPrimitives.Add(ro x o n, c, sp y o n)))
        | I32 _ -> notInt "addScalar"

    let mulScalar (s: Storage) (c: float) =
        match s with
        | F32 a -> let c = float32 c in F32(map 1 a (fun x y o n -> TensorPrimitives.Multiply(ro x o n, c, sp y o n)))
        | F64 a -> F64(map 1 a (fun x y o n -> TensorPrimitives.Multiply(ro x o n, c, sp y o n)))
        | I32 _ -> notInt "mulScalar"

    let powScalar (s: Storage) (c: float) =
        match s with
        | F32 a ->
            if c = 2.0 then F32(map 1 a (fun x y o n -> TensorPrimitives.Multiply(ro x o n, x, sp y o n)))
            elif c = 1.0 then F32(Array.copy a)
            elif c = 0.5 then F32(map 4 a (fun x y o n -> TensorPrimitives.Sqrt(ro x o n, sp y o n)))
            elif c = -1.0 then F32(map 2 a (fun x y o n -> TensorPrimitives.Reciprocal(ro x o n, sp y o n)))
            else let c = float32 c in F32(map 16 a (fun x y o n -> TensorPrimitives.Pow(ro x o n, c, sp y o n)))
        | F64 a ->
            if c = 2.0 then F64(map 1 a (fun x y o n -> TensorPrimitives.Multiply(ro x o n, x, sp y o n)))
            elif c = 1.0 then F64(Array.copy a)
            elif c = 0.5 then F64(map 4 a (fun x y o n -> TensorPrimitives.Sqrt(ro x o n, sp y o n)))
            elif c = -1.0 then F64(map 2 a (fun x y o n -> TensorPrimitives.Reciprocal(ro x o n, sp y o n)))
            else F64(map 16 a (fun x y o n -> TensorPrimitives.Pow(ro x o n, c, sp y o n)))
        | I32 _ -> notInt "powScalar"

    let gtScalar (s: Storage) (c: float) =
        match s with
        | F32 a -> let c = float32 c in F32(a |> Array.map (fun v -> if v > c then 1.0f else 0.0f))
        | F64 a -> F64(a |> Array.map (fun v -> if v > c then 1.0 else 0.0))
        | I32 _ -> notInt "gtScalar"

    /// a + b with b broadcast to a's shape, run by run: a run covers the trailing dimensions
    /// along which b is either constant (a bias over H×W) or contiguous (a bias over features).
    let inline private addBroadcastArr
        (a: 'T[])
        (aShape: int[])
        (b: 'T[])
        (bShape: int[])
        ([<InlineIfLambda>] addRun: 'T[] -> int -> 'T[] -> int -> 'T[] -> int -> unit)
        ([<InlineIfLambda>] addScalarRun: 'T[] -> int -> 'T -> 'T[] -> int -> unit)
        =
        let r = aShape.Length
        let off = r - bShape.Length
        let bst = Shape.strides bShape
        let st = Array.init r (fun i -> if i < off || bShape.[i - off] = 1 then 0 else bst.[i - off])
        let dst = Storage.Uninit a.Length

        if a.Length > 0 then
            // merge trailing dimensions into one run while b's stride pattern allows
            let mutable merged = min 1 r
            let mutable inner = if r = 0 then 1 else aShape.[r - 1]

            if r > 0 && (st.[r - 1] = 0 || st.[r - 1] = 1) then
                let constant = st.[r - 1] = 0

                while merged < r && st.[r - 1 - merged] = (if constant then 0 else inner) do
                    inner <- inner * aShape.[r - 1 - merged]
                    merged <- merged + 1

            let innerStride = if r = 0 then 0 else st.[r - 1]
            let outer = r - merged
            // runs are independent: each chunk of runs starts its own odometer
            Threading.forRanges (a.Length / inner) (int64 a.Length) (fun lo hi ->
                let idx = Array.zeroCreate (max 0 outer)
                let mutable boff = 0
                let mutable q = lo

                for k in outer - 1 .. -1 .. 0 do
                    idx.[k] <- q % aShape.[k]
                    boff <- boff + idx.[k] * st.[k]
                    q <- q / aShape.[k]

                let mutable aoff = lo * inner

                while aoff < hi * inner do
                    if innerStride = 1 then addRun a aoff b boff dst inner else addScalarRun a aoff b.[boff] dst inner
                    aoff <- aoff + inner
                    let mutable k = outer - 1
                    let mutable carry = true

                    while carry && k >= 0 do
                        idx.[k] <- idx.[k] + 1
                        boff <- boff + st.[k]

                        if idx.[k] = aShape.[k] then
                            boff <- boff - st.[k] * aShape.[k]
                            idx.[k] <- 0
                            k <- k - 1
                        else
                            carry <- false)

        dst

    /// a + b with b broadcast to a's shape, on arrays of either float type.
    let inline private addBroadcastOf<'T when 'T :> Numerics.INumber<'T>> (x: 'T[]) aShape (y: 'T[]) bShape =
        addBroadcastArr
            x
            aShape
            y
            bShape
            (fun p po q qo d n -> TensorPrimitives.Add<'T>(ro p po n, ro q qo n, sp d po n))
            (fun p po c d n -> TensorPrimitives.Add<'T>(ro p po n, c, sp d po n))

    let addBroadcast (a: Storage) (aShape: int[]) (b: Storage) (bShape: int[]) =
        match a, b with
        | F32 x, F32 y -> F32(addBroadcastOf x aShape y bShape)
        | F64 x, F64 y -> F64(addBroadcastOf x aShape y bShape)
        | _ -> Fail.dtype "add" (sprintf "operands of dtypes %O and %O" a.Dtype b.Dtype)

    /// a + beta·b in one pass.
    let addScaled (a: Storage) (b: Storage) (beta: float) =
        match a, b with
        | F32 x, F32 y ->
            let c = float32 beta in F32(zip y x (fun q p r o n -> TensorPrimitives.MultiplyAdd(ro q o n, c, ro p o n, sp r o n)))
        | F64 x, F64 y -> F64(zip y x (fun q p r o n -> TensorPrimitives.MultiplyAdd(ro q o n, beta, ro p o n, sp r o n)))
        | _ -> Fail.dtype "addScaled" (sprintf "operands of dtypes %O and %O" a.Dtype b.Dtype)

    let inline private tanhGradArr (y: 'T[]) (t: 'T[]) (one: 'T) =
        let r: 'T[] = Storage.Uninit y.Length
        let w = Numerics.Vector<'T>.Count
        let vOne = Numerics.Vector<'T>(one)
        // chunks of whole vectors, so the split never changes which elements go through SIMD
        let vectors = (y.Length + w - 1) / w

        Threading.forRanges vectors (int64 y.Length * 3L) (fun lo hi ->
            let stop = min y.Length (hi * w)
            let mutable i = lo * w

            while i + w <= stop do
                let yv = Numerics.Vector<'T>(y, i)
                (Numerics.Vector<'T>(t, i) * (vOne - yv * yv)).CopyTo(r, i)
                i <- i + w

            while i < stop do
                r.[i] <- t.[i] * (one - y.[i] * y.[i])
                i <- i + 1)

        r

    /// t ⊙ (1 − y²) in one pass.
    let tanhGrad (y: Storage) (t: Storage) =
        match y, t with
        | F32 a, F32 b -> F32(tanhGradArr a b 1.0f)
        | F64 a, F64 b -> F64(tanhGradArr a b 1.0)
        | _ -> Fail.dtype "tanhGrad" (sprintf "operands of dtypes %O and %O" y.Dtype t.Dtype)
