namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Layout and reduction ops, in adjoint pairs: view/view, permute/inverse permute,
/// expand/sum-to-shape, sum/expand, slice/pad, cat/slice.
module internal Layout =
    let private keepShape (shape: int[]) (dim: int) = shape |> Array.mapi (fun i d -> if i = dim then 1 else d)

    let rec view (shape: int[]) (a: Dual) : Dual =
        if sameShape a.Shape shape then
            a
        else
            let src = a.Shape

            linear "view" (box ("view", shape)) (fun r -> r.Backend.View(r, shape)) (view shape) (view src) a

    let rec permute (perm: int[]) (a: Dual) : Dual =
        if perm |> Array.mapi (fun i p -> i = p) |> Array.forall id then
            a
        else
            let inv = Array.zeroCreate perm.Length
            perm |> Array.iteri (fun i p -> inv.[p] <- i)

            linear "permute" (box ("permute", perm)) (fun r -> r.Backend.Permute(r, perm)) (permute perm) (permute inv) a

    /// Broadcast to `shape` (NumPy rules); its adjoint sums over the broadcast dimensions.
    let rec expand (shape: int[]) (a: Dual) : Dual =
        if sameShape a.Shape shape then
            a
        else
            if not (Shape.canExpand a.Shape shape) then
                Fail.shape "expand" (sprintf "cannot expand %s to %s" (Shape.str a.Shape) (Shape.str shape))

            let src = a.Shape

            linear "expand" (box ("expand", shape)) (fun r -> r.Backend.Expand(r, shape)) (expand shape) (sumTo src) a

    /// Sum of all elements (a scalar).
    and sum (a: Dual) : Dual =
        let src = a.Shape
        unary "sum" "sum" (fun r -> r.Backend.Sum r) (fun _ t _ -> sum t) (fun _ _ adj -> expand src adj) a

    and sumDim (dim: int) (keepDim: bool) (a: Dual) : Dual =
        let src = a.Shape
        let dim = Shape.dim "sumDim" src.Length dim

        unary
            "sumDim"
            (box ("sumDim", dim, keepDim))
            (fun r -> r.Backend.SumDim(r, dim, keepDim))
            (fun _ t _ -> sumDim dim keepDim t)
            (fun _ _ adj -> expand src (if keepDim then adj else view (keepShape src dim) adj))
            a

    /// Sums a broadcast result back to `shape` (the adjoint of expand).
    and sumTo (shape: int[]) (a: Dual) : Dual =
        let mutable r = a

        while r.Shape.Length > shape.Length do
            r <- sumDim 0 false r

        for i in 0 .. shape.Length - 1 do
            if shape.[i] = 1 && r.Shape.[i] <> 1 then
                r <- sumDim i true r

        r

    let rec slice (starts: int[]) (lengths: int[]) (a: Dual) : Dual =
        let src = a.Shape

        if starts.Length <> src.Length || lengths.Length <> src.Length then
            Fail.shape
                "slice"
                (sprintf
                    "starts %s and lengths %s must have one entry per dimension of %s"
                    (Shape.str starts)
                    (Shape.str lengths)
                    (Shape.str src))

        for i in 0 .. src.Length - 1 do
            if starts.[i] < 0 || lengths.[i] < 0 || starts.[i] + lengths.[i] > src.[i] then
                Fail.index
                    "slice"
                    (sprintf "range [%d, %d) of dimension %d is outside shape %s" starts.[i] (starts.[i] + lengths.[i]) i (Shape.str src))

        if sameShape lengths src then
            a
        else
            linear
                "slice"
                (box ("slice", starts, lengths))
                (fun r -> r.Backend.Slice(r, starts, lengths))
                (slice starts lengths)
                (pad starts src)
                a

    /// Embeds a into zeros of `outShape`, its first element at `starts`.
    and pad (starts: int[]) (outShape: int[]) (a: Dual) : Dual =
        let src = a.Shape

        if starts.Length <> src.Length || outShape.Length <> src.Length then
            Fail.shape
                "pad"
                (sprintf
                    "starts %s and output shape %s must have one entry per dimension of %s"
                    (Shape.str starts)
                    (Shape.str outShape)
                    (Shape.str src))

        for i in 0 .. src.Length - 1 do
            if starts.[i] < 0 || starts.[i] + src.[i] > outShape.[i] then
                Fail.index "pad" (sprintf "%s placed at %s does not fit in %s" (Shape.str src) (Shape.str starts) (Shape.str outShape))

        if sameShape outShape src then
            a
        else
            linear
                "pad"
                (box ("pad", starts, outShape))
                (fun r -> r.Backend.Pad(r, starts, outShape))
                (pad starts outShape)
                (slice starts src)
                a

    let rec cat (dim: int) (xs: Dual[]) : Dual =
        if xs.Length = 0 then
            Fail.shape "cat" "needs at least one tensor"

        let s0 = xs.[0].Shape
        let dim = Shape.dim "cat" s0.Length dim

        for x in xs do
            checkSameDtype "cat" xs.[0] x

            if
                x.Shape.Length <> s0.Length
                || (x.Shape |> Array.mapi (fun i d -> i = dim || d = s0.[i]) |> Array.forall id |> not)
            then
                Fail.shape "cat" (sprintf "shapes %s and %s differ outside dimension %d" (Shape.str s0) (Shape.str x.Shape) dim)

        if xs.Length = 1 then
            xs.[0]
        else
            let shapes = xs |> Array.map (fun x -> x.Shape)
            let offsets = shapes |> Array.scan (fun acc s -> acc + s.[dim]) 0

            Dispatch.apply
                {
                    new Op("cat", box ("cat", dim)) with
                        member _.Raw rs = rs.[0].Backend.Cat(rs, dim)

                        member _.Jvp(p, t, _) =
                            cat
                                dim
                                (Array.init p.Length (fun i ->
                                    match t.[i] with
                                    | ValueSome v -> v
                                    | ValueNone -> zerosOf p.[i] shapes.[i]))

                        member _.Vjp(_, _, adj, i) =
                            let starts = Array.zeroCreate s0.Length
                            starts.[dim] <- offsets.[i]
                            slice starts shapes.[i] adj
                }
                xs

    /// Conversion between float32 and float64 (differentiable: the adjoint converts back).
    let rec cast (dtype: Dtype) (a: Dual) : Dual =
        let src = a.Dtype

        if src = dtype then
            a
        elif not (src.IsFloat && dtype.IsFloat) then
            let r = a.Raw

            if a.Level <> 0L then
                Fail.dtype "cast" (sprintf "cannot differentiate a cast from %O to %O" src dtype)

            Const(r.Backend.Cast(r, dtype))
        else
            linear "cast" (box ("cast", dtype)) (fun r -> r.Backend.Cast(r, dtype)) (cast dtype) (cast src) a

    /// A copy on another backend (differentiable: tangents follow the value, adjoints go back).
    let rec toBackend (target: Backend) (a: Dual) : Dual =
        let src = a.Raw.Backend

        if obj.ReferenceEquals(src, target) then
            a
        elif a.Level = 0L then
            Const(BackendRegistry.moveRaw target a.Raw)
        else
            unary
                "toBackend"
                null
                (fun r -> BackendRegistry.moveRaw target r)
                (fun _ t _ -> toBackend target t)
                (fun _ _ adj -> toBackend src adj)
                a
