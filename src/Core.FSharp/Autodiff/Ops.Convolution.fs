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

        unary
            "unfold2d"
            (box ("unfold2d", kh, kw, sh, sw, ph, pw))
            (fun r -> r.Backend.Unfold2d(r, kh, kw, sh, sw, ph, pw))
            (fun _ t _ -> unfold2d (kh, kw) (sh, sw) (ph, pw) t)
            (fun _ _ adj -> fold2d src (kh, kw) (sh, sw) (ph, pw) adj)
            x

    /// Columns [C·kh·kw, N·oh·ow] back to `outShape` = [N, C, H, W], accumulating overlaps.
    and fold2d (outShape: int[]) (kh, kw) (sh, sw) (ph, pw) (cols: Dual) : Dual =
        let oh, ow = Shape.window2d "fold2d" outShape.[2] outShape.[3] kh kw sh sw ph pw
        let expected = [| outShape.[1] * kh * kw; outShape.[0] * oh * ow |]

        if not (sameShape cols.Shape expected) then
            Fail.shape
                "fold2d"
                (sprintf "columns %s do not match %s for output %s" (Shape.str cols.Shape) (Shape.str expected) (Shape.str outShape))

        unary
            "fold2d"
            (box ("fold2d", outShape, kh, kw, sh, sw, ph, pw))
            (fun r -> r.Backend.Fold2d(r, outShape, kh, kw, sh, sw, ph, pw))
            (fun _ t _ -> fold2d outShape (kh, kw) (sh, sw) (ph, pw) t)
            (fun _ _ adj -> unfold2d (kh, kw) (sh, sw) (ph, pw) adj)
            cols

    /// Convolution C(x, w), its adjoint in x T(g, w) and its adjoint in w W(x, g): a triad
    /// of bilinear ops, each differentiated by the other two, so every nesting closes.
    let rec convC (stride: int * int) (padding: int * int) (x: Dual) (w: Dual) : Dual =
        let sh, sw = stride
        let ph, pw = padding
        let xShape, wShape = x.Shape, w.Shape

        bilinear
            "conv2d"
            (box ("conv2d", stride, padding))
            Elementwise.addS
            (fun x y -> x.Backend.Conv2d(x, y, sh, sw, ph, pw))
            (convC stride padding)
            (fun p adj i -> if i = 0 then convT xShape stride padding adj p.[1] else convW wShape stride padding p.[0] adj)
            x
            w

    and convT (xShape: int[]) (stride: int * int) (padding: int * int) (g: Dual) (w: Dual) : Dual =
        let sh, sw = stride
        let ph, pw = padding
        let wShape = w.Shape

        bilinear
            "conv2dInputGrad"
            (box ("conv2dInputGrad", xShape, stride, padding))
            Elementwise.addS
            (fun x y -> x.Backend.Conv2dInputGrad(x, y, xShape, sh, sw, ph, pw))
            (convT xShape stride padding)
            (fun p adj i -> if i = 0 then convC stride padding adj p.[1] else convW wShape stride padding adj p.[0])
            g
            w

    and convW (wShape: int[]) (stride: int * int) (padding: int * int) (x: Dual) (g: Dual) : Dual =
        let sh, sw = stride
        let ph, pw = padding
        let xShape = x.Shape

        bilinear
            "conv2dWeightGrad"
            (box ("conv2dWeightGrad", wShape, stride, padding))
            Elementwise.addS
            (fun x y -> x.Backend.Conv2dWeightGrad(x, y, wShape, sh, sw, ph, pw))
            (convW wShape stride padding)
            (fun p adj i -> if i = 0 then convT xShape stride padding p.[1] adj else convC stride padding p.[0] adj)
            x
            g

    /// The checks of conv2d: input, weight and bias shapes, dtypes and the window.
    let checkConv2d (stride: int * int) (padding: int * int) (x: Dual) (w: Dual) (bias: Dual option) =
        checkInput "conv2d" x
        let xs, ws = x.Shape, w.Shape

        if ws.Length <> 4 || ws.[1] <> xs.[1] then
            Fail.shape "conv2d" (sprintf "weight %s does not fit input %s (expected [K; %d; kh; kw])" (Shape.str ws) (Shape.str xs) xs.[1])

        checkSameDtype "conv2d" x w
        checkFloat "conv2d" x
        let sh, sw = stride
        let ph, pw = padding
        Shape.window2d "conv2d" xs.[2] xs.[3] ws.[2] ws.[3] sh sw ph pw |> ignore

        match bias with
        | Some b when not (sameShape b.Shape [| ws.[0] |]) ->
            Fail.shape "conv2d" (sprintf "bias %s does not match %d output channels" (Shape.str b.Shape) ws.[0])
        | _ -> ()

    /// y [N, K, oh, ow] plus an optional bias [K] per channel.
    let addBias (y: Dual) (bias: Dual option) =
        match bias with
        | None -> y
        | Some b -> Elementwise.add y (Layout.view [| 1; b.Shape.[0]; 1; 1 |] b)

    /// 2-D convolution (cross-correlation) of x [N, C, H, W] with w [K, C, kh, kw] and an
    /// optional bias [K].
    let conv2d (stride: int * int) (padding: int * int) (x: Dual) (w: Dual) (bias: Dual option) : Dual =
        checkConv2d stride padding x w bias
        addBias (convC stride padding x w) bias

    let private windows op (kernel: int) (stride: int) (padding: int) (x: Dual) =
        checkInput op x
        let s = x.Shape

        if padding * 2 > kernel then
            Fail.shape op (sprintf "padding %d exceeds half the kernel %d" padding kernel)

        let oh, ow = Shape.window2d op s.[2] s.[3] kernel kernel stride stride padding padding
        let planes = Layout.view [| s.[0] * s.[1]; 1; s.[2]; s.[3] |] x
        unfold2d (kernel, kernel) (stride, stride) (padding, padding) planes, [| s.[0]; s.[1]; oh; ow |]

    /// Max over k×k windows. The argmax is taken on the values (a constant at every level);
    /// the result gathers those entries, so the adjoint scatter-adds: a pixel that is the
    /// maximum of several windows receives the sum of their adjoints.
    let maxPool2d (kernel: int) (stride: int) (padding: int) (x: Dual) : Dual =
        checkInput "maxPool2d" x
        checkFloat "maxPool2d" x
        let s = x.Shape

        if padding * 2 > kernel then
            Fail.shape "maxPool2d" (sprintf "padding %d exceeds half the kernel %d" padding kernel)

        let oh, ow = Shape.window2d "maxPool2d" s.[2] s.[3] kernel kernel stride stride padding padding
        let raw = x.Raw
        let b = raw.Backend

        let idx =
            Dispatch.memoRaw (box ("maxPool2dIndices", kernel, stride, padding)) [| raw |] (fun () ->
                b.MaxPool2dIndices(raw, kernel, stride, padding))

        let flat = Dispatch.memoRaw "flatIndices" [| idx |] (fun () -> b.View(idx, [| idx.Numel |]))
        Indexing.gather 0 flat (Layout.view [| raw.Numel |] x) |> Layout.view [| s.[0]; s.[1]; oh; ow |]

    /// Mean over k×k windows (padding counts as zeros in the mean).
    let avgPool2d (kernel: int) (stride: int) (padding: int) (x: Dual) : Dual =
        let cols, outShape = windows "avgPool2d" kernel stride padding x

        cols
        |> Layout.sumDim 0 false
        |> Elementwise.mulScalar (1.0 / float (kernel * kernel))
        |> Layout.view outShape
