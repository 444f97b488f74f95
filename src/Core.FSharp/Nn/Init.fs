namespace GroupedNewton

open System

/// How a layer's weights and biases are drawn.
[<RequireQualifiedAccess>]
type InitScheme =
    /// PyTorch's defaults for Linear and Conv2d: weights and biases ~ U(−1/√fan_in, 1/√fan_in).
    | PyTorchDefault
    /// Weights ~ N(0, σ_w² / fan_in), biases ~ N(0, σ_b²): the GroupedNewton reference code
    /// (σ_w = 1, σ_b = 0 for the MLP and LeNet; σ_w = √2 for VGG and the deep ELU MLP).
    | ScaledNormal of sigmaW: float * sigmaB: float

/// Initialisation of a model: the scheme, the dtype of the values and the seed from which
/// every parameter's values are derived.
type InitOptions = { Scheme: InitScheme; Dtype: Dtype; Seed: int }

module Init =
    /// The reference code's N(0, 1)/√fan_in weights with zero biases, float32.
    let reference seed = { Scheme = InitScheme.ScaledNormal(1.0, 0.0); Dtype = Dtype.Float32; Seed = seed }

    /// PyTorch's default initialisation, float32.
    let pytorch seed = { Scheme = InitScheme.PyTorchDefault; Dtype = Dtype.Float32; Seed = seed }

    /// A per-parameter seed derived from the model seed and the parameter's position.
    let internal derive (seed: int) (index: int) = Seeds.mix seed index

    /// PyTorch's default: uniform in ±1/√fanIn.
    let private uniformFanIn (o: InitOptions) (seed: int) (shape: int[]) (fanIn: int) =
        let b = 1.0 / Math.Sqrt(float fanIn)
        Tensor.randOf o.Dtype seed -b b shape

    let internal weight (o: InitOptions) (index: int) (shape: int[]) (fanIn: int) =
        let seed = derive o.Seed index

        match o.Scheme with
        | InitScheme.PyTorchDefault -> uniformFanIn o seed shape fanIn
        | InitScheme.ScaledNormal(sw, _) -> Tensor.randnOf o.Dtype seed shape * (sw / Math.Sqrt(float fanIn))

    let internal bias (o: InitOptions) (index: int) (shape: int[]) (fanIn: int) =
        let seed = derive o.Seed index

        match o.Scheme with
        | InitScheme.PyTorchDefault -> uniformFanIn o seed shape fanIn
        | InitScheme.ScaledNormal(_, 0.0) -> Tensor.zerosOf o.Dtype shape
        | InitScheme.ScaledNormal(_, sb) -> Tensor.randnOf o.Dtype seed shape * sb
