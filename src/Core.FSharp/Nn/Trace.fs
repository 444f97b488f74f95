namespace GroupedNewton

/// What one trainable layer (Linear or Conv2d) saw in a forward pass and the gradient of
/// the loss with respect to its output: the statistics Kronecker-factored methods build on
/// (for a Linear layer, the weight gradient is OutputGradientᵀ · Input).
type LayerTrace =
    { Layer: Layer
      /// The layer's input (a constant).
      Input: Tensor
      /// The layer's output, bias included (a constant).
      Output: Tensor
      /// ∂L/∂Output, same shape as Output.
      OutputGradient: Tensor }

/// The loss value, the parameter gradients and the per-layer traces of one forward and
/// reverse pass.
type ModelTrace =
    { Loss: float
      Gradient: Parameters
      Layers: LayerTrace[] }

[<RequireQualifiedAccess>]
module Trace =
    /// Runs the model on x under ps, computes loss(output) and, in the same reverse pass, the
    /// parameter gradients and ∂L/∂(output) of every trainable layer. The output gradients
    /// come from a zero perturbation added to each such output, differentiated with the
    /// parameters, so no second pass is needed.
    let run (model: Model) (ps: Parameters) (x: Tensor) (loss: Tensor -> Tensor) : ModelTrace =
        // a first forward pass finds the output shapes of the trainable layers
        let shapes = ResizeArray<int[]>()
        let inputs = ResizeArray<Tensor>()
        let outputs = ResizeArray<Tensor>()
        let mutable h = x
        for l in model.Layers do
            let y = Layer.forward l ps h
            if l.Weight.IsSome then
                inputs.Add(Tensor.detach h)
                outputs.Add(Tensor.detach y)
                shapes.Add y.Shape
            h <- y
        let trainable = model.Layers |> Array.filter (fun l -> l.Weight.IsSome)
        let n = ps.Count
        let zeros = shapes.ToArray() |> Array.map (fun s -> Tensor.zerosOf x.Dtype s)
        let f (vs: Tensor[]) =
            let q = ps.WithValues vs.[.. n - 1]
            let mutable h = x
            let mutable k = 0
            for l in model.Layers do
                let y = Layer.forward l q h
                h <- if l.Weight.IsSome then (k <- k + 1; y + vs.[n + k - 1]) else y
            loss h
        let value, grads = Ad.valueAndGradMany f (Array.append ps.Values zeros)
        { Loss = Tensor.toScalar value
          Gradient = ps.WithValues grads.[.. n - 1]
          Layers =
            Array.init trainable.Length (fun i ->
                { Layer = trainable.[i]; Input = inputs.[i]; Output = outputs.[i]; OutputGradient = grads.[n + i] }) }
