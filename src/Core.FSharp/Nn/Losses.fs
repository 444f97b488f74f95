namespace GroupedNewton

module Losses =
    let crossEntropy (logits: Tensor) (labels: Tensor) = Tensor.crossEntropy logits labels

    let nll (logProbs: Tensor) (labels: Tensor) = Tensor.nll logProbs labels

    let mse (prediction: Tensor) (target: Tensor) = Tensor.mse prediction target

    let private checkSame op (a: Tensor) (b: Tensor) =
        if a.Shape <> b.Shape then
            raise (ShapeMismatchException(sprintf "%s: output %s and target %s differ in shape" op (Shape.str a.Shape) (Shape.str b.Shape)))

    let bceWithLogits (logits: Tensor) (targets: Tensor) =
        checkSame "bceWithLogits" logits targets
        let perElement = Tensor.softplus logits - targets * logits
        Tensor.sum perElement / float logits.Shape.[0]

    let halfSquaredError (output: Tensor) (targets: Tensor) =
        checkSame "halfSquaredError" output targets
        let d = output - targets
        0.5 * Tensor.sum (d * d) / float output.Shape.[0]

    let accuracy (logits: Tensor) (labels: Tensor) =
        let pred = Tensor.toInts (Tensor.argMax 1 logits)
        let y = Tensor.toInts labels

        if pred.Length <> y.Length then
            raise (ShapeMismatchException(sprintf "accuracy: %d predictions for %d labels" pred.Length y.Length))

        let classes = logits.Shape.[1]

        y
        |> Array.iteri (fun i label ->
            if label < 0 || label >= classes then
                Fail.index "accuracy" (sprintf "label %d of sample %d out of range [0, %d)" label i classes))

        if y.Length = 0 then
            0.0
        else
            float (Array.fold2 (fun acc p t -> if p = t then acc + 1 else acc) 0 pred y) / float y.Length
