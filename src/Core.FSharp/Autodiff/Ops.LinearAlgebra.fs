namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Matrix products. The transpose flags let every VJP be another product without
/// materialising a transpose.
module internal LinearAlgebra =
    /// op(a) · op(b) for 2-D a and b; op transposes when its flag is set.
    let rec matmulT (transA: bool) (transB: bool) (a: Dual) (b: Dual) : Dual =
        let sa, sb = a.Shape, b.Shape

        if sa.Length <> 2 || sb.Length <> 2 then
            Fail.shape "matmul" (sprintf "needs 2-D operands, got %s and %s" (Shape.str sa) (Shape.str sb))

        checkSameDtype "matmul" a b
        checkFloat "matmul" a
        let ka = if transA then sa.[0] else sa.[1]
        let kb = if transB then sb.[1] else sb.[0]

        if ka <> kb then
            Fail.shape
                "matmul"
                (sprintf
                    "inner dimensions differ: %s%s · %s%s"
                    (Shape.str sa)
                    (if transA then "ᵀ" else "")
                    (Shape.str sb)
                    (if transB then "ᵀ" else ""))

        bilinear
            "matmul"
            (box ("matmul", transA, transB))
            Elementwise.addS
            (fun x y -> x.Backend.MatMul(x, y, transA, transB))
            (matmulT transA transB)
            (fun p adj i -> if i = 0 then adjointLeft transA transB adj p.[1] else adjointRight transA transB p.[0] adj)
            a
            b

    /// The adjoint of op(a)·op(b) in a, for the output adjoint g.
    and adjointLeft (transA: bool) (transB: bool) (g: Dual) (b: Dual) : Dual =
        match transA, transB with
        | false, false -> matmulT false true g b
        | false, true -> matmulT false false g b
        | true, false -> matmulT false true b g
        | true, true -> matmulT true true b g

    /// The adjoint of op(a)·op(b) in b, for the output adjoint g.
    and adjointRight (transA: bool) (transB: bool) (a: Dual) (g: Dual) : Dual =
        match transA, transB with
        | false, false -> matmulT true false a g
        | false, true -> matmulT true false g a
        | true, false -> matmulT false false a g
        | true, true -> matmulT true true g a

    let matmul a b = matmulT false false a b
