namespace GroupedNewton

/// What one trainable layer (Linear or Conv2d) saw in a forward pass and the gradient of
/// the loss with respect to its output: the statistics Kronecker-factored methods build on
/// (for a Linear layer, the weight gradient is OutputGradientᵀ · Input).
type LayerTrace = {
    Layer: Layer
    /// The layer's input (a constant).
    Input: Tensor
    /// The layer's output, bias included (a constant).
    Output: Tensor
    /// ∂L/∂Output, same shape as Output.
    OutputGradient: Tensor
}

/// The loss value, the parameter gradients and the per-layer traces of one forward and
/// reverse pass.
type ModelTrace = { Loss: float; Gradient: Parameters; Layers: LayerTrace[] }

[<RequireQualifiedAccess>]
module Trace =
    /// Runs the model on x under ps, computes loss(output) and, in the same reverse pass, the
    /// parameter gradients and ∂L/∂(output) of every trainable layer. The output gradients
    /// come from a zero perturbation added to each such output, differentiated with the
    /// parameters, so no second pass is needed.
    let run (model: Model) (ps: Parameters) (x: Tensor) (loss: Tensor -> Tensor) : ModelTrace =
        let trainable = Model.trainableLayers model
        model.CheckInput x
        // the zero perturbations take the trainable layers' output shapes from the specs
        let mutable shape = model.InputShape
        let zeros = ResizeArray<Tensor>()

        for l in model.Layers do
            shape <- Layer.outputShape l.Spec shape

            if l.Weight.IsSome then
                zeros.Add(Tensor.zerosOf x.Dtype (Array.append [| x.Shape.[0] |] shape))

        let n = ps.Count
        let inputs = Array.zeroCreate<Tensor> trainable.Length
        let outputs = Array.zeroCreate<Tensor> trainable.Length

        let f (vs: Tensor[]) =
            let q = ps.WithValues vs.[.. n - 1]
            let mutable h = x
            let mutable k = 0

            for l in model.Layers do
                let y = Layer.forward l q h

                if l.Weight.IsSome then
                    inputs.[k] <- Tensor.detach h
                    outputs.[k] <- Tensor.detach y
                    h <- y + vs.[n + k]
                    k <- k + 1
                else
                    h <- y

            loss h

        let value, grads = Ad.valueAndGradMany f (Array.append ps.Values (zeros.ToArray()))

        {
            Loss = Tensor.toScalar value
            Gradient = ps.WithValues grads.[.. n - 1]
            Layers =
                Array.init trainable.Length (fun i -> {
                    Layer = trainable.[i]
                    Input = inputs.[i]
                    Output = outputs.[i]
                    OutputGradient = grads.[n + i]
                })
        }
