namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Gather and scatter-add, an adjoint pair: repeated indices accumulate in the adjoint.
module internal Indexing =
    let private checkIdx op (idx: RawTensor) =
        if idx.Dtype <> Dtype.Int32 then
            Fail.dtype op (sprintf "indices must be int32, got %O of shape %s" idx.Dtype (Shape.str idx.Shape))

    let private checkShapes op (data: int[]) (dim: int) (idx: int[]) =
        if idx.Length <> data.Length then
            Fail.shape op (sprintf "index shape %s and tensor shape %s differ in rank" (Shape.str idx) (Shape.str data))

        for d in 0 .. data.Length - 1 do
            if d <> dim && idx.[d] > data.[d] then
                Fail.shape op (sprintf "index shape %s exceeds tensor shape %s in dimension %d" (Shape.str idx) (Shape.str data) d)

    let rec gather (dim: int) (idx: RawTensor) (a: Dual) : Dual =
        checkIdx "gather" idx
        let src = a.Shape
        let dim = Shape.dim "gather" src.Length dim
        checkShapes "gather" src dim idx.Shape

        linear "gather" (box ("gather", dim, idx)) (fun r -> r.Backend.Gather(r, dim, idx)) (gather dim idx) (scatterAdd dim idx src) a

    and scatterAdd (dim: int) (idx: RawTensor) (outShape: int[]) (a: Dual) : Dual =
        checkIdx "scatterAdd" idx
        let dim = Shape.dim "scatterAdd" outShape.Length dim

        if not (sameShape a.Shape idx.Shape) then
            Fail.shape "scatterAdd" (sprintf "source %s and index %s must have one shape" (Shape.str a.Shape) (Shape.str idx.Shape))

        checkShapes "scatterAdd" outShape dim idx.Shape

        linear
            "scatterAdd"
            (box ("scatterAdd", dim, idx, outShape))
            (fun r -> r.Backend.ScatterAdd(r, dim, idx, outShape))
            (scatterAdd dim idx outShape)
            (gather dim idx)
            a
