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
            Fail.shape "matmul" (sprintf "inner dimensions differ: %s%s · %s%s" (Shape.str sa) (if transA then "ᵀ" else "") (Shape.str sb) (if transB then "ᵀ" else ""))
        Dispatch.apply
            { new Op("matmul", box ("matmul", transA, transB)) with
                member _.Raw rs = rs.[0].Backend.MatMul(rs.[0], rs.[1], transA, transB)
                member _.Jvp(p, t, _) =
                    sumTerms Elementwise.addS
                        (t.[0] |> ValueOption.map (fun da -> matmulT transA transB da p.[1]))
                        (t.[1] |> ValueOption.map (fun db -> matmulT transA transB p.[0] db))
                member _.Vjp(p, _, adj, i) =
                    let a, b = p.[0], p.[1]
                    match transA, transB, i with
                    | false, false, 0 -> matmulT false true adj b
                    | false, false, _ -> matmulT true false a adj
                    | false, true, 0 -> matmulT false false adj b
                    | false, true, _ -> matmulT true false adj a
                    | true, false, 0 -> matmulT false true b adj
                    | true, false, _ -> matmulT false false a adj
                    | true, true, 0 -> matmulT true true b adj
                    | true, true, _ -> matmulT true true adj a }
            [| a; b |]

    let matmul a b = matmulT false false a b
