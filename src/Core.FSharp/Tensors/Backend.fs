namespace GroupedNewton

open System

/// Elementwise unary kernels of the raw interface.
[<RequireQualifiedAccess>]
type UnaryKind =
    | Neg
    | Exp
    | Log
    | Tanh
    | Sigmoid
    | Softplus
    | Relu
    | Sqrt
    | Abs
    | Sign

/// Elementwise binary kernels of the raw interface (operands of one shape and dtype).
[<RequireQualifiedAccess>]
type BinaryKind =
    | Add
    | Sub
    | Mul
    | Div

/// A dense, row-major, immutable tensor owned by a backend. Raw tensors carry no
/// derivatives: the differentiable `Tensor` sits on top of them.
[<AbstractClass>]
type RawTensor() =
    /// Dimensions, outermost first; [||] for a scalar.
    abstract Shape: int[]
    abstract Dtype: Dtype
    abstract Backend: Backend
    member t.Numel = Shape.numel t.Shape
    member t.Rank = t.Shape.Length
    /// A number identifying this tensor to memo tables; 0 until a memo records it.
    member val internal MemoId = 0L with get, set
    override t.ToString() = sprintf "RawTensor(%s, %O, %s)" (Shape.str t.Shape) t.Dtype t.Backend.Name

/// The raw backend interface: about 40 kernels from which every differentiable op and
/// every derivative rule of the library is built. Callers (the differentiable layer)
/// validate shapes and dtypes before calling; a backend may assume consistent inputs.
/// Results are always fresh tensors: inputs are never modified.
and [<AbstractClass>] Backend() =
    abstract Name: string

    // ---- creation and data ----
    abstract Zeros: shape: int[] * dtype: Dtype -> RawTensor
    abstract Full: shape: int[] * value: float * dtype: Dtype -> RawTensor
    /// Copies a float32[], float[] or int[] (row-major) into a tensor of the given shape.
    abstract OfArray: data: Array * shape: int[] -> RawTensor
    /// A fresh row-major copy: float32[], float[] or int[] according to the dtype.
    abstract ToArray: t: RawTensor -> Array
    abstract Cast: t: RawTensor * dtype: Dtype -> RawTensor

    // ---- layout ----
    /// Reshape to a shape with the same number of elements.
    abstract View: t: RawTensor * shape: int[] -> RawTensor
    abstract Permute: t: RawTensor * perm: int[] -> RawTensor
    /// Broadcast to a larger shape (NumPy rules).
    abstract Expand: t: RawTensor * shape: int[] -> RawTensor
    abstract Slice: t: RawTensor * starts: int[] * lengths: int[] -> RawTensor
    /// Embed into zeros of `outShape` with the tensor's first element at `starts`.
    abstract Pad: t: RawTensor * starts: int[] * outShape: int[] -> RawTensor
    abstract Cat: ts: RawTensor[] * dim: int -> RawTensor

    // ---- elementwise ----
    abstract Unary: kind: UnaryKind * t: RawTensor -> RawTensor
    abstract Binary: kind: BinaryKind * a: RawTensor * b: RawTensor -> RawTensor
    /// a + b where b broadcasts to a's shape (NumPy rules); b is never materialised.
    abstract AddBroadcast: a: RawTensor * b: RawTensor -> RawTensor
    /// a + beta·b for operands of one shape (one pass: optimizer updates).
    abstract AddScaled: a: RawTensor * b: RawTensor * beta: float -> RawTensor
    /// t ⊙ (1 − y²) for operands of one shape (tanh's derivative applied to t, one pass).
    abstract TanhGrad: y: RawTensor * t: RawTensor -> RawTensor
    abstract AddScalar: t: RawTensor * c: float -> RawTensor
    abstract MulScalar: t: RawTensor * c: float -> RawTensor
    abstract PowScalar: t: RawTensor * c: float -> RawTensor
    /// 1 where the element is greater than c, 0 elsewhere (same dtype).
    abstract GtScalar: t: RawTensor * c: float -> RawTensor

    // ---- reductions ----
    /// Sum of all elements as a scalar tensor.
    abstract Sum: t: RawTensor -> RawTensor
    abstract SumDim: t: RawTensor * dim: int * keepDim: bool -> RawTensor
    abstract MaxDim: t: RawTensor * dim: int * keepDim: bool -> RawTensor
    /// Int32 index of the first maximum along `dim` (dimension removed).
    abstract ArgMaxDim: t: RawTensor * dim: int -> RawTensor

    // ---- linear algebra ----
    /// op(a) · op(b) for 2-D operands, op = transpose when the flag is set.
    abstract MatMul: a: RawTensor * b: RawTensor * transA: bool * transB: bool -> RawTensor

    // ---- convolution support ----
    /// im2col: x [N, C, H, W] to columns [C·kh·kw, N·oh·ow] (zero padding).
    abstract Unfold2d: x: RawTensor * kh: int * kw: int * sh: int * sw: int * ph: int * pw: int -> RawTensor
    /// col2im, the adjoint of Unfold2d: columns [C·kh·kw, N·oh·ow] to [N, C, H, W];
    /// overlapping windows accumulate.
    abstract Fold2d: cols: RawTensor * outShape: int[] * kh: int * kw: int * sh: int * sw: int * ph: int * pw: int -> RawTensor

    /// 2-D convolution (cross-correlation) of x [N, C, H, W] with w [K, C, kh, kw], no bias:
    /// [N, K, oh, ow].
    abstract Conv2d: x: RawTensor * w: RawTensor * sh: int * sw: int * ph: int * pw: int -> RawTensor
    /// The adjoint of Conv2d in x (a transposed convolution): from g [N, K, oh, ow] and w to
    /// a tensor of `xShape`; overlapping windows accumulate.
    abstract Conv2dInputGrad: g: RawTensor * w: RawTensor * xShape: int[] * sh: int * sw: int * ph: int * pw: int -> RawTensor
    /// The adjoint of Conv2d in w: from x and g [N, K, oh, ow] to a tensor of `wShape`.
    abstract Conv2dWeightGrad: x: RawTensor * g: RawTensor * wShape: int[] * sh: int * sw: int * ph: int * pw: int -> RawTensor
    /// Int32 tensor [N, C, oh, ow] of flat indices into x (as a vector) of each k×k window's
    /// first maximum; padding never wins.
    abstract MaxPool2dIndices: x: RawTensor * k: int * s: int * p: int -> RawTensor

    // ---- indexing ----
    /// One-hot rows [N, n] of an Int32 index vector [N].
    abstract OneHot: idx: RawTensor * n: int * dtype: Dtype -> RawTensor
    /// out[i..] = t[i.. with coordinate `dim` replaced by idx[i..]]; idx has the output's shape.
    abstract Gather: t: RawTensor * dim: int * idx: RawTensor -> RawTensor
    /// The adjoint of Gather: zeros of `outShape` into which src is added at the indexed places.
    abstract ScatterAdd: src: RawTensor * dim: int * idx: RawTensor * outShape: int[] -> RawTensor

    // ---- capabilities ----
    /// Whether independent passes over this backend's tensors (a summary's row passes) may run
    /// side by side on the managed worker team, each pass's kernels then running on its
    /// thread alone. False by default: a backend that runs its own threads (or a device
    /// queue) keeps the passes one after another.
    abstract ConcurrentPasses: bool

    default _.ConcurrentPasses = false

    // ---- fused optimizer kernels (optional: the defaults compose the kernels above) ----
    /// A moment update and its norm in one pass over operands of one shape and dtype:
    /// m = (θ·weightDecay + g)·(1 − β) + prev·β (no θ term when weightDecay = 0, no prev term
    /// when prev is None), each product and sum rounded in the dtype in that order, returned
    /// with Σ (m·scale)² accumulated in float64. None (the default) when the backend has no
    /// such kernel for these operands; the caller then composes the update from other kernels.
    abstract FusedMoment:
        theta: RawTensor * g: RawTensor * prev: RawTensor option * weightDecay: float * beta: float * scale: float ->
            (RawTensor * float) option

    default _.FusedMoment(_, _, _, _, _, _) = None

    /// (t·a)·b, rounded after each product: one pass where the backend has a kernel for it,
    /// two MulScalar passes by default.
    abstract MulScalar2: t: RawTensor * a: float * b: float -> RawTensor

    default this.MulScalar2(t, a, b) = this.MulScalar(this.MulScalar(t, a), b)
