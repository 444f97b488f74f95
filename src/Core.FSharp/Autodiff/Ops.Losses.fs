namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Log-sum-exp, log-softmax and the losses, composed from differentiable ops (so exact
/// at every order).
module internal Losses =
    /// log Σ exp(x) along `dim`, shifted by the per-row maximum taken as a constant: the
    /// shift cancels exactly, so every derivative is that of the unshifted expression.
    let logsumexp (dim: int) (keepDim: bool) (x: Dual) : Dual =
        checkFloat "logsumexp" x
        let s = x.Shape
        let dim = Shape.dim "logsumexp" s.Length dim
        let r = x.Raw
        let m = Const(Dispatch.memoRaw (box ("maxDim", dim)) [| r |] (fun () -> r.Backend.MaxDim(r, dim, true)))

        let lse =
            Elementwise.add m (Elementwise.log (Layout.sumDim dim true (Elementwise.exp (Elementwise.sub x m))))

        if keepDim then lse else Layout.view (s |> Array.removeAt dim) lse

    let logSoftmax (dim: int) (x: Dual) : Dual = Elementwise.sub x (logsumexp dim true x)

    let private checkLabels op (logits: Dual) (labels: RawTensor) =
        let s = logits.Shape

        if s.Length <> 2 then
            Fail.shape op (sprintf "needs scores of shape [N; classes], got %s" (Shape.str s))

        if labels.Dtype <> Dtype.Int32 then
            Fail.dtype op (sprintf "labels must be int32, got %O" labels.Dtype)

        if not (sameShape labels.Shape [| s.[0] |]) then
            Fail.shape op (sprintf "labels %s do not match scores %s (expected [%d])" (Shape.str labels.Shape) (Shape.str s) s.[0])

    /// Mean negative log-likelihood of integer labels [N] under log-probabilities [N, K].
    let nll (logProbs: Dual) (labels: RawTensor) : Dual =
        checkLabels "nll" logProbs labels
        let s = logProbs.Shape

        let oneHot =
            Const(
                Dispatch.memoRaw (box ("oneHot", s.[1], logProbs.Dtype)) [| labels |] (fun () ->
                    labels.Backend.OneHot(labels, s.[1], logProbs.Dtype))
            )

        Elementwise.mulScalar (-1.0 / float s.[0]) (Layout.sum (Elementwise.mulS oneHot logProbs))

    /// Mean cross-entropy of integer labels [N] under logits [N, K].
    let crossEntropy (logits: Dual) (labels: RawTensor) : Dual =
        checkLabels "crossEntropy" logits labels
        nll (logSoftmax 1 logits) labels

    /// Mean squared error; the shapes must agree exactly (no broadcasting).
    let mse (prediction: Dual) (target: Dual) : Dual =
        if not (sameShape prediction.Shape target.Shape) then
            Fail.shape "mse" (sprintf "prediction %s and target %s differ in shape" (Shape.str prediction.Shape) (Shape.str target.Shape))

        let d = Elementwise.sub prediction target
        Elementwise.mulScalar (1.0 / float (Shape.numel d.Shape)) (Layout.sum (Elementwise.mulS d d))
