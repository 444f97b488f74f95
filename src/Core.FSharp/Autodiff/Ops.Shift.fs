namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// A parameter moved along a direction by a scalar: p + η·w, with p and w constants. A
/// summary differentiates the loss in η only, so a product with such a parameter is better
/// split by bilinearity: op(a)·op(p + ηw) = op(a)·op(p) + η·op(a)·op(w). The first term has a
/// constant weight, so no reverse pass ever forms a weight-shaped adjoint; the η-derivative
/// is the contraction Σ adj ⊙ op(a)·op(w), whose product with the primal `a` is the same in
/// every pass (and memoised).
type internal ShiftInfo = { Base: RawTensor; Direction: RawTensor; Eta: Dual }

/// A linear map a ↦ P(a) with a constant operand, and its adjoint g ↦ Pᵀ(g).
type internal LinearMap = {
    Key: obj | null
    Transposed: bool
    Apply: Dual -> Dual
    Adjoint: Dual -> Dual
    OutShape: int[]
} with

    member m.Transpose(inShape: int[]) = {
        Key = m.Key
        Transposed = not m.Transposed
        Apply = m.Adjoint
        Adjoint = m.Apply
        OutShape = inShape
    }

module internal Shift =
    /// The value of a one-element tensor as a float.
    let scalarValue (r: RawTensor) = (r.Backend.ToArray(r.Backend.Cast(r, Dtype.Float64)) :?> float[]).[0]

    let private zeros (like: RawTensor) (shape: int[]) =
        Dispatch.memoRaw (box ("zeros", shape, like.Dtype)) [||] (fun () -> like.Backend.Zeros(shape, like.Dtype))

    /// η·P(a) for a scalar η: at η = 0 no product is formed.
    let rec etaLinear (lin: LinearMap) (eta: Dual) (a: Dual) : Dual =
        let inShape = a.Shape

        Dispatch.apply
            {
                new Op("etaLinear", box ("etaLinear", lin.Key, lin.Transposed)) with
                    member _.Raw rs =
                        match scalarValue rs.[0] with
                        | 0.0 -> zeros rs.[1] lin.OutShape
                        | 1.0 -> (lin.Apply(Const rs.[1])).Raw
                        | e -> let r = (lin.Apply(Const rs.[1])).Raw in r.Backend.MulScalar(r, e)

                    member _.Jvp(p, t, _) = bilinearJvp Elementwise.addS (etaLinear lin) p t

                    member _.Vjp(p, _, adj, i) =
                        if i = 0 then
                            Layout.sum (Elementwise.mulS adj (lin.Apply p.[1]))
                        else
                            etaLinear (lin.Transpose inShape) p.[0] adj
            }
            [| eta; a |]

    /// y + η·P(a): at η = 0 the value is y itself.
    let rec plusEtaLinear (lin: LinearMap) (y: Dual) (eta: Dual) (a: Dual) : Dual =
        let inShape = a.Shape

        Dispatch.apply
            {
                new Op("plusEtaLinear", box ("plusEtaLinear", lin.Key, lin.Transposed)) with
                    member _.Raw rs =
                        match scalarValue rs.[1] with
                        | 0.0 ->
                            // while a memo records the primal, the product every pass contracts
                            // the η-adjoint with is recorded with it
                            let memo = MemoScope.Current

                            if not (isNull memo) && memo.Recording then
                                lin.Apply(Const rs.[2]) |> ignore

                            rs.[0]
                        | e -> rs.[0].Backend.AddScaled(rs.[0], (lin.Apply(Const rs.[2])).Raw, e)

                    member _.Jvp(p, t, _) =
                        [
                            t.[0]
                            t.[1] |> ValueOption.map (fun de -> etaLinear lin de p.[2])
                            t.[2] |> ValueOption.map (fun da -> etaLinear lin p.[1] da)
                        ]
                        |> List.choose ValueOption.toOption
                        |> List.reduce Elementwise.addS

                    member _.Vjp(p, _, adj, i) =
                        match i with
                        | 0 -> adj
                        | 1 -> Layout.sum (Elementwise.mulS adj (lin.Apply p.[2]))
                        | _ -> etaLinear (lin.Transpose inShape) p.[1] adj
            }
            [| y; eta; a |]

    /// y + η·P(a) for a product y with the moved parameter's base, P the same product with
    /// its direction in the parameter's place and adjoint its transpose.
    let private split (key: obj | null) (y: Dual) (apply: Dual -> Dual) (adjoint: Dual -> Dual) (s: ShiftInfo) (a: Dual) =
        plusEtaLinear
            {
                Key = box (key, s.Direction)
                Transposed = false
                Apply = apply
                Adjoint = adjoint
                OutShape = y.Shape
            }
            y
            s.Eta
            a

    /// op(a)·op(p + ηw) with the shift on the right operand.
    let matmulRight (transA: bool) (transB: bool) (a: Dual) (s: ShiftInfo) : Dual =
        let w = Const s.Direction

        split
            (box ("matmulRight", transA, transB))
            (LinearAlgebra.matmulT transA transB a (Const s.Base))
            (fun v -> LinearAlgebra.matmulT transA transB v w)
            (fun g -> LinearAlgebra.adjointLeft transA transB g w)
            s
            a

    /// op(p + ηw)·op(b) with the shift on the left operand.
    let matmulLeft (transA: bool) (transB: bool) (s: ShiftInfo) (b: Dual) : Dual =
        let w = Const s.Direction

        split
            (box ("matmulLeft", transA, transB))
            (LinearAlgebra.matmulT transA transB (Const s.Base) b)
            (fun v -> LinearAlgebra.matmulT transA transB w v)
            (fun g -> LinearAlgebra.adjointRight transA transB w g)
            s
            b

    /// conv(x, p + ηw) without bias.
    let conv2d (stride: int * int) (padding: int * int) (x: Dual) (s: ShiftInfo) : Dual =
        let w = Const s.Direction
        let xShape = x.Shape

        split
            (box ("conv2d", stride, padding, xShape))
            (Convolution.convC stride padding x (Const s.Base))
            (fun v -> Convolution.convC stride padding v w)
            (fun g -> Convolution.convT xShape stride padding g w)
            s
            x
