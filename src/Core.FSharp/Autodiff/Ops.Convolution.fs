namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Convolution and pooling from the unfold/fold pair (im2col/col2im): conv2d is a matrix
/// product with the unfolded input, pooling a reduction over the window dimension. Fold
/// accumulates, so overlapping windows get the sum of their contributions.
module internal Convolution =
    let private checkInput op (x: Dual) =
        if x.Shape.Length <> 4 then
            Fail.shape op (sprintf "needs an input of shape [N; C; H; W], got %s" (Shape.str x.Shape))

    /// x [N, C, H, W] to columns [C·kh·kw, N·oh·ow].
    let rec unfold2d (kh, kw) (sh, sw) (ph, pw) (x: Dual) : Dual =
        checkInput "unfold2d" x
        let src = x.Shape
        Shape.window2d "unfold2d" src.[2] src.[3] kh kw sh sw ph pw |> ignore
        unary "unfold2d" (fun r -> r.Backend.Unfold2d(r, kh, kw, sh, sw, ph, pw))
            (fun _ t _ -> unfold2d (kh, kw) (sh, sw) (ph, pw) t)
            (fun _ _ adj -> fold2d src (kh, kw) (sh, sw) (ph, pw) adj) x

    /// Columns [C·kh·kw, N·oh·ow] back to `outShape` = [N, C, H, W], accumulating overlaps.
    and fold2d (outShape: int[]) (kh, kw) (sh, sw) (ph, pw) (cols: Dual) : Dual =
        let oh, ow = Shape.window2d "fold2d" outShape.[2] outShape.[3] kh kw sh sw ph pw
        let expected = [| outShape.[1] * kh * kw; outShape.[0] * oh * ow |]
        if not (sameShape cols.Shape expected) then
            Fail.shape "fold2d" (sprintf "columns %s do not match %s for output %s" (Shape.str cols.Shape) (Shape.str expected) (Shape.str outShape))
        unary "fold2d" (fun r -> r.Backend.Fold2d(r, outShape, kh, kw, sh, sw, ph, pw))
            (fun _ t _ -> fold2d outShape (kh, kw) (sh, sw) (ph, pw) t)
            (fun _ _ adj -> unfold2d (kh, kw) (sh, sw) (ph, pw) adj) cols

    /// 2-D convolution (cross-correlation) of x [N, C, H, W] with w [K, C, kh, kw] and an
    /// optional bias [K].
    let conv2d (stride: int * int) (padding: int * int) (x: Dual) (w: Dual) (bias: Dual option) : Dual =
        checkInput "conv2d" x
        let xs, ws = x.Shape, w.Shape
        if ws.Length <> 4 || ws.[1] <> xs.[1] then
            Fail.shape "conv2d" (sprintf "weight %s does not fit input %s (expected [K; %d; kh; kw])" (Shape.str ws) (Shape.str xs) xs.[1])
        checkSameDtype "conv2d" x w
        let k, kh, kw = ws.[0], ws.[2], ws.[3]
        let sh, sw = stride
        let ph, pw = padding
        let oh, ow = Shape.window2d "conv2d" xs.[2] xs.[3] kh kw sh sw ph pw
        let cols = unfold2d (kh, kw) stride padding x
        let y = LinearAlgebra.matmul (Layout.view [| k; ws.[1] * kh * kw |] w) cols
        let y = y |> Layout.view [| k; xs.[0]; oh; ow |] |> Layout.permute [| 1; 0; 2; 3 |]
        match bias with
        | None -> y
        | Some b ->
            if not (sameShape b.Shape [| k |]) then
                Fail.shape "conv2d" (sprintf "bias %s does not match %d output channels" (Shape.str b.Shape) k)
            Elementwise.add y (Layout.view [| 1; k; 1; 1 |] b)

    let private windows op (kernel: int) (stride: int) (padding: int) (x: Dual) =
        checkInput op x
        let s = x.Shape
        if padding * 2 > kernel then Fail.shape op (sprintf "padding %d exceeds half the kernel %d" padding kernel)
        let oh, ow = Shape.window2d op s.[2] s.[3] kernel kernel stride stride padding padding
        let planes = Layout.view [| s.[0] * s.[1]; 1; s.[2]; s.[3] |] x
        unfold2d (kernel, kernel) (stride, stride) (padding, padding) planes, [| s.[0]; s.[1]; oh; ow |]

    /// Max over k×k windows. The argmax is taken on the values (a constant at every level);
    /// the result gathers those entries, so the adjoint scatter-adds and folds: a pixel that
    /// is the maximum of several windows receives the sum of their adjoints.
    let maxPool2d (kernel: int) (stride: int) (padding: int) (x: Dual) : Dual =
        let cols, outShape = windows "maxPool2d" kernel stride padding x
        let raw = cols.Raw
        let b = raw.Backend
        let scored =
            if padding = 0 then raw
            else
                // shift values above zero so the zero padding never wins a window
                let xr = x.Raw
                let lo = b.MaxDim(b.View(b.Unary(UnaryKind.Neg, xr), [| xr.Numel |]), 0, false)
                let shift = -(b.ToArray(b.Cast(lo, Dtype.Float64)) :?> float[]).[0]
                let shifted = b.AddScalar(b.View(xr, [| xr.Shape.[0] * xr.Shape.[1]; 1; xr.Shape.[2]; xr.Shape.[3] |]), 1.0 - shift)
                b.Unfold2d(shifted, kernel, kernel, stride, stride, padding, padding)
        let idx = b.View(b.ArgMaxDim(scored, 0), [| 1; raw.Shape.[1] |])
        Indexing.gather 0 idx cols |> Layout.view outShape

    /// Mean over k×k windows (padding counts as zeros in the mean).
    let avgPool2d (kernel: int) (stride: int) (padding: int) (x: Dual) : Dual =
        let cols, outShape = windows "avgPool2d" kernel stride padding x
        cols |> Layout.sumDim 0 false |> Elementwise.mulScalar (1.0 / float (kernel * kernel)) |> Layout.view outShape
