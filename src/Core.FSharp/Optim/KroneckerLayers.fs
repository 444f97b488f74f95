namespace GroupedNewton

/// One Linear or Conv2d layer's batch statistics in the matrix form Kronecker-factored
/// methods work with. Rows are samples (Linear) or sample-locations (Conv2d, sample-major,
/// then output row, then output column). The weight of the layer is viewed as the matrix
/// [W | b] of shape d_g × d_a, the bias (when present) as its last column.
type KroneckerLayer = {
    Layer: Layer
    /// Number of samples N in the batch.
    BatchSize: int
    /// Output locations per sample (1 for Linear, oh·ow for Conv2d).
    Locations: int
    /// ā: the layer's inputs (patches for Conv2d) with a trailing column of ones when the
    /// layer has a bias; shape [N·Locations, d_a].
    Activations: Tensor
    /// h: the layer's outputs (pre-activations, bias included); shape [N·Locations, d_g].
    PreActivations: Tensor
    /// ∂L/∂h of the batch loss L (a mean over samples); shape [N·Locations, d_g].
    OutputGradients: Tensor
} with

    /// Rows of the weight matrix (output features or channels).
    member k.OutputDim = k.PreActivations.Shape.[1]
    /// Columns of the weight matrix (fan-in, plus one with a bias).
    member k.InputDim = k.Activations.Shape.[1]

[<RequireQualifiedAccess>]
module KroneckerLayers =
    /// Whether a layer is one Kronecker-factored methods precondition.
    let supports (layer: Layer) =
        match layer.Spec with
        | LayerSpec.Linear _
        | LayerSpec.Conv2d _ -> layer.Weight.IsSome
        | _ -> false

    let private withOnes (hasBias: bool) (a: Tensor) =
        if hasBias then Tensor.cat 1 [ a; Tensor.fullOf a.Dtype [| a.Shape.[0]; 1 |] 1.0 ] else a

    /// ā as rows: for Linear the input (flattened per sample), for Conv2d the im2col patches.
    let activationRows (layer: Layer) (input: Tensor) =
        let hasBias = layer.Bias.IsSome

        match layer.Spec with
        | LayerSpec.Linear _ -> withOnes hasBias (Tensor.view [| input.Shape.[0]; -1 |] input)
        | LayerSpec.Conv2d(_, _, k, s, p, _) ->
            let cols = Tensor.unfold2d (k, k) (s, s) (p, p) input
            withOnes hasBias (Tensor.transpose cols)
        | spec -> invalidArg "layer" (sprintf "layer %d (%O) has no Kronecker factors" layer.Index spec)

    /// An output-shaped tensor ([N, d_g] or [N, d_g, oh, ow]) as rows [N·Locations, d_g].
    let outputRows (t: Tensor) =
        match t.Shape.Length with
        | 2 -> t
        | 4 -> Tensor.view [| -1; t.Shape.[1] |] (Tensor.permute [| 0; 2; 3; 1 |] t)
        | _ -> invalidArg "t" (sprintf "expected a [N, d] or [N, C, H, W] layer output, got %s" (Shape.str t.Shape))

    /// The matrix form of one layer's trace.
    let ofTrace (trace: LayerTrace) : KroneckerLayer =
        let n = trace.Input.Shape.[0]
        let h = outputRows trace.Output

        {
            Layer = trace.Layer
            BatchSize = n
            Locations = h.Shape.[0] / n
            Activations = activationRows trace.Layer trace.Input
            PreActivations = h
            OutputGradients = outputRows trace.OutputGradient
        }

    /// The layer's parameters as one d_g × d_a matrix [W | b].
    let weightMatrix (layer: Layer) (ps: Parameters) =
        let w = ps.[layer.Weight.Value]
        let w2 = Tensor.view [| w.Shape.[0]; -1 |] w

        match layer.Bias with
        | Some b -> Tensor.cat 1 [ w2; Tensor.view [| -1; 1 |] ps.[b] ]
        | None -> w2

    /// Splits a d_g × d_a matrix back into the layer's weight and bias shapes.
    let splitMatrix (layer: Layer) (ps: Parameters) (m: Tensor) : (ParameterKey * Tensor) list =
        let w = ps.[layer.Weight.Value]
        let fanIn = Shape.numel w.Shape / w.Shape.[0]
        let dg = w.Shape.[0]
        let wPart = Tensor.view w.Shape (Tensor.slice [| 0; 0 |] [| dg; fanIn |] m)

        match layer.Bias with
        | Some b -> [ layer.Weight.Value, wPart; b, Tensor.view [| dg |] (Tensor.slice [| 0; fanIn |] [| dg; 1 |] m) ]
        | None -> [ layer.Weight.Value, wPart ]
