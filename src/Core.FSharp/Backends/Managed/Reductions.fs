namespace GroupedNewton.Backends.Managed

open System
open System.Numerics.Tensors
open GroupedNewton

/// Reductions along all dimensions or along one dimension, seen as [outer, d, inner].
module internal Reductions =
    let private split (shape: int[]) (dim: int) =
        let outer = Shape.numel shape.[.. dim - 1]
        let inner = Shape.numel shape.[dim + 1 ..]
        outer, shape.[dim], inner

    /// Elements per block of a float32 sum (see `sum32`).
    [<Literal>]
    let private Block32 = 1024

    /// A float32 sum as blocks of Block32 elements, each summed in float32 by the vector
    /// kernel, and the block sums added in float64: the rounding error then grows with the
    /// block length, not with the tensor's length (a million-element sum in float32 alone
    /// loses about as many digits as the reference's pairwise sum keeps).
    let private sum32 (a: float32[]) =
        if a.Length <= Block32 then
            TensorPrimitives.Sum(ReadOnlySpan a)
        else
            let mutable total = 0.0
            let mutable o = 0

            while o < a.Length do
                let n = min Block32 (a.Length - o)
                total <- total + float (TensorPrimitives.Sum(ReadOnlySpan(a, o, n)))
                o <- o + n

            float32 total

    let sum (s: Storage) =
        match s with
        | F32 a -> F32 [| sum32 a |]
        | F64 a -> F64 [| TensorPrimitives.Sum(ReadOnlySpan a) |]
        | I32 _ -> Fail.dtype "sum" "int32 tensors cannot be summed here"

    /// Row-wise combination of [outer, d, inner] into [outer, inner].
    let inline private reduceDim
        (a: 'T[])
        (outer: int)
        (d: int)
        (inner: int)
        ([<InlineIfLambda>] rowAll: 'T[] -> int -> int -> 'T)
        ([<InlineIfLambda>] combine: 'T[] -> 'T[] -> int -> int -> int -> unit)
        =
        // rowAll src offset length; combine acc src accOffset srcOffset length (acc <- acc ⊕ src)
        let r: 'T[] = if d = 0 then StoragePool.zeros (outer * inner) else Storage.Uninit(outer * inner)

        if d > 0 then
            Threading.forRanges outer (int64 a.Length) (fun lo hi ->
                for o in lo .. hi - 1 do
                    if inner = 1 then
                        r.[o] <- rowAll a (o * d) d
                    else
                        Array.Copy(a, o * d * inner, r, o * inner, inner)

                        for j in 1 .. d - 1 do
                            combine r a (o * inner) ((o * d + j) * inner) inner)

        r

    let inline private sumDimOf<'T when 'T :> Numerics.INumber<'T>> (a: 'T[]) outer d inner =
        reduceDim a outer d inner (fun x o n -> TensorPrimitives.Sum<'T>(ReadOnlySpan(x, o, n))) (fun acc x ao xo n ->
            TensorPrimitives.Add<'T>(ReadOnlySpan(acc, ao, n), ReadOnlySpan(x, xo, n), Span(acc, ao, n)))

    let inline private maxDimOf<'T when 'T :> Numerics.INumber<'T>> (a: 'T[]) outer d inner =
        reduceDim a outer d inner (fun x o n -> TensorPrimitives.Max<'T>(ReadOnlySpan(x, o, n))) (fun acc x ao xo n ->
            TensorPrimitives.Max<'T>(ReadOnlySpan(acc, ao, n), ReadOnlySpan(x, xo, n), Span(acc, ao, n)))

    let sumDim (s: Storage) (shape: int[]) (dim: int) =
        let outer, d, inner = split shape dim

        match s with
        | F32 a -> F32(sumDimOf a outer d inner)
        | F64 a -> F64(sumDimOf a outer d inner)
        | I32 _ -> Fail.dtype "sumDim" "int32 tensors cannot be summed here"

    /// split, for a reduction that needs at least one element: an empty dimension is an error.
    let private splitNonEmpty (op: string) (shape: int[]) (dim: int) =
        let outer, d, inner = split shape dim

        if d = 0 then
            Fail.shape op (sprintf "cannot take the max over an empty dimension %d of %s" dim (Shape.str shape))

        outer, d, inner

    let maxDim (s: Storage) (shape: int[]) (dim: int) =
        let outer, d, inner = splitNonEmpty "maxDim" shape dim

        match s with
        | F32 a -> F32(maxDimOf a outer d inner)
        | F64 a -> F64(maxDimOf a outer d inner)
        | I32 _ -> Fail.dtype "maxDim" "int32 tensors are not supported"

    let inline private argmaxArr (a: 'T[]) (outer: int) (d: int) (inner: int) =
        let r = Array.zeroCreate (outer * inner)

        for o in 0 .. outer - 1 do
            for i in 0 .. inner - 1 do
                let mutable best = a.[o * d * inner + i]
                let mutable bi = 0

                for j in 1 .. d - 1 do
                    let v = a.[(o * d + j) * inner + i]

                    if v > best then
                        best <- v
                        bi <- j

                r.[o * inner + i] <- bi

        r

    let argMaxDim (s: Storage) (shape: int[]) (dim: int) =
        let outer, d, inner = splitNonEmpty "argMaxDim" shape dim

        match s with
        | F32 a -> I32(argmaxArr a outer d inner)
        | F64 a -> I32(argmaxArr a outer d inner)
        | I32 a -> I32(argmaxArr a outer d inner)
