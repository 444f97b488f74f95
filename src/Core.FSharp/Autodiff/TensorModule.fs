namespace GroupedNewton

open System
open GroupedNewton.Autodiff

/// Creating, reading and transforming tensors. Every transforming function is
/// differentiable at any nesting depth.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Tensor =
    let internal wrap (d: Dual) = Tensor d
    let private backend () = BackendRegistry.defaultBackend ()
    let private ofRaw (r: RawTensor) = Tensor(Const r)

    // ---- creation ----

    /// A float64 scalar.
    let scalar (v: float) = ofRaw (backend().OfArray([| v |], [||]))
    /// A float32 scalar.
    let scalar32 (v: float32) = ofRaw (backend().OfArray([| v |], [||]))
    /// A float64 vector.
    let ofArray (values: float[]) = ofRaw (backend().OfArray(values, [| values.Length |]))
    /// A float32 vector.
    let ofArray32 (values: float32[]) = ofRaw (backend().OfArray(values, [| values.Length |]))
    /// An int32 vector (labels, indices).
    let ofInts (values: int[]) = ofRaw (backend().OfArray(values, [| values.Length |]))

    /// A float64 matrix.
    let ofArray2D (values: float[,]) =
        let r, c = Array2D.length1 values, Array2D.length2 values
        ofRaw (backend().OfArray(Array.init (r * c) (fun i -> values.[i / c, i % c]), [| r; c |]))

    /// A tensor of the given shape from row-major values (float32[], float[] or int[]).
    let ofArrayShape (values: Array) (shape: int[]) =
        Shape.validate "ofArrayShape" shape
        ofRaw (backend().OfArray(values, shape))

    /// A tensor of `shape` whose values `fill` writes, all of them, into a fresh array:
    /// recycled storage that the managed backend keeps as the tensor's own (no copy; a loop
    /// that builds the same shape every step then allocates nothing); other backends copy it.
    let internal filled<'T> (shape: int[]) (fill: 'T[] -> unit) =
        Shape.validate "ofArrayShape" shape

        match backend () with
        | :? global.GroupedNewton.Backends.Managed.ManagedBackend as m -> ofRaw (m.Filled(shape, fill))
        | b ->
            let values = Array.zeroCreate<'T>(Shape.numel shape)
            fill values
            ofRaw (b.OfArray(values, shape))

    let zerosOf (dtype: Dtype) (shape: int[]) =
        Shape.validate "zeros" shape
        ofRaw (backend().Zeros(shape, dtype))

    let fullOf (dtype: Dtype) (shape: int[]) (value: float) =
        Shape.validate "full" shape
        ofRaw (backend().Full(shape, value, dtype))

    /// float64 zeros.
    let zeros (shape: int[]) = zerosOf Dtype.Float64 shape
    /// float64 ones.
    let ones (shape: int[]) = fullOf Dtype.Float64 shape 1.0
    let zerosLike (t: Tensor) = zerosOf t.Dtype t.Raw.Shape
    let onesLike (t: Tensor) = fullOf t.Dtype t.Raw.Shape 1.0

    /// Standard normal values from an explicit seed (same seed, same values).
    let randnOf (dtype: Dtype) (seed: int) (shape: int[]) =
        let rng = Random(seed)
        let n = Shape.numel shape

        let vals =
            Array.init n (fun _ ->
                let u1 = 1.0 - rng.NextDouble()
                let u2 = rng.NextDouble()
                Math.Sqrt(-2.0 * Math.Log u1) * Math.Cos(2.0 * Math.PI * u2))

        let t = ofRaw (backend().OfArray(vals, shape))
        if dtype = Dtype.Float64 then t else wrap (Layout.cast dtype t.Node)

    /// Uniform values in [lo, hi) from an explicit seed.
    let randOf (dtype: Dtype) (seed: int) (lo: float) (hi: float) (shape: int[]) =
        let rng = Random(seed)
        let vals = Array.init (Shape.numel shape) (fun _ -> lo + (hi - lo) * rng.NextDouble())
        let t = ofRaw (backend().OfArray(vals, shape))
        if dtype = Dtype.Float64 then t else wrap (Layout.cast dtype t.Node)

    let randn seed shape = randnOf Dtype.Float64 seed shape

    // ---- reading ----

    /// The values as float64, row-major (converting float32 and int32).
    let toArray (t: Tensor) : float[] =
        let r = t.Raw
        r.Backend.ToArray(r.Backend.Cast(r, Dtype.Float64)) :?> float[]

    let toArray32 (t: Tensor) : float32[] =
        let r = t.Raw
        r.Backend.ToArray(r.Backend.Cast(r, Dtype.Float32)) :?> float32[]

    let toInts (t: Tensor) : int[] =
        let r = t.Raw
        r.Backend.ToArray(r.Backend.Cast(r, Dtype.Int32)) :?> int[]

    let toArray2D (t: Tensor) : float[,] =
        if t.Rank <> 2 then
            Fail.shape "toArray2D" (sprintf "needs a 2-D tensor, got %s" (Shape.str t.Raw.Shape))

        let s = t.Raw.Shape
        let a = toArray t
        Array2D.init s.[0] s.[1] (fun i j -> a.[i * s.[1] + j])

    /// The single value of a one-element tensor.
    let toScalar (t: Tensor) : float =
        if t.Numel <> 1 then
            Fail.shape "toScalar" (sprintf "needs a one-element tensor, got shape %s" (Shape.str t.Raw.Shape))

        (toArray t).[0]

    /// The value without any derivative (a constant at every level).
    let detach (t: Tensor) = ofRaw t.Raw

    // ---- elementwise ----

    let add (a: Tensor) (b: Tensor) = a + b
    let sub (a: Tensor) (b: Tensor) = a - b
    let mul (a: Tensor) (b: Tensor) = a * b
    let div (a: Tensor) (b: Tensor) = a / b
    let neg (a: Tensor) = -a
    let exp (a: Tensor) = wrap (Elementwise.exp a.Node)
    let log (a: Tensor) = wrap (Elementwise.log a.Node)
    let tanh (a: Tensor) = wrap (Elementwise.tanh a.Node)
    let sigmoid (a: Tensor) = wrap (Elementwise.sigmoid a.Node)
    let softplus (a: Tensor) = wrap (Elementwise.softplus a.Node)
    let relu (a: Tensor) = wrap (Elementwise.relu a.Node)
    /// ELU with the given α (1.0 is the usual choice).
    let elu (alpha: float) (a: Tensor) = wrap (Elementwise.elu alpha a.Node)
    let sqrt (a: Tensor) = wrap (Elementwise.sqrt a.Node)
    let abs (a: Tensor) = wrap (Elementwise.abs a.Node)
    /// a^c for a real constant c.
    let powScalar (c: float) (a: Tensor) = wrap (Elementwise.powScalar c a.Node)
    /// aᵇ elementwise (a > 0).
    let pow (a: Tensor) (b: Tensor) = wrap (Elementwise.pow a.Node b.Node)
    let cast (dtype: Dtype) (a: Tensor) = wrap (Layout.cast dtype a.Node)
    /// A copy on another backend, e.g. `Tensor.toBackend (BackendRegistry.get "torch") t`
    /// (differentiable: derivatives flow back to the source backend).
    let toBackend (backend: Backend) (a: Tensor) = wrap (Layout.toBackend backend a.Node)

    /// a + beta·b for tensors of one shape, in one pass (optimizer updates).
    let addScaled (beta: float) (a: Tensor) (b: Tensor) =
        if not (OpDefs.sameShape a.Raw.Shape b.Raw.Shape) then
            Fail.shape "addScaled" (sprintf "shapes %s and %s differ" (Shape.str a.Raw.Shape) (Shape.str b.Raw.Shape))

        OpDefs.checkSameDtype "addScaled" a.Node b.Node
        wrap (Elementwise.addScaled beta a.Node b.Node)

    // ---- reductions ----

    let sum (a: Tensor) = wrap (Layout.sum a.Node)
    let sumDim (dim: int) (keepDim: bool) (a: Tensor) = wrap (Layout.sumDim dim keepDim a.Node)
    let mean (a: Tensor) = wrap (Elementwise.mulScalar (1.0 / float a.Numel) (Layout.sum a.Node))

    let meanDim (dim: int) (keepDim: bool) (a: Tensor) =
        let d = Shape.dim "meanDim" a.Rank dim
        wrap (Elementwise.mulScalar (1.0 / float a.Raw.Shape.[d]) (Layout.sumDim d keepDim a.Node))

    /// Σ a·b over all elements (shapes must match).
    let dot (a: Tensor) (b: Tensor) =
        if not (OpDefs.sameShape a.Raw.Shape b.Raw.Shape) then
            Fail.shape "dot" (sprintf "shapes %s and %s differ" (Shape.str a.Raw.Shape) (Shape.str b.Raw.Shape))

        sum (a * b)

    let logsumexp (dim: int) (keepDim: bool) (a: Tensor) = wrap (Losses.logsumexp dim keepDim a.Node)
    let logSoftmax (dim: int) (a: Tensor) = wrap (Losses.logSoftmax dim a.Node)

    // ---- layout ----

    /// Reshape (one entry may be -1).
    let view (shape: int[]) (a: Tensor) = wrap (Layout.view (Shape.resolveView "view" a.Raw.Shape shape) a.Node)
    let reshape shape a = view shape a
    let flatten (a: Tensor) = view [| a.Numel |] a

    let permute (perm: int[]) (a: Tensor) =
        Shape.checkPermutation "permute" a.Rank perm
        wrap (Layout.permute perm a.Node)

    let transpose (a: Tensor) =
        if a.Rank <> 2 then
            Fail.shape "transpose" (sprintf "needs a 2-D tensor, got %s" (Shape.str a.Raw.Shape))

        permute [| 1; 0 |] a

    let expand (shape: int[]) (a: Tensor) = wrap (Layout.expand shape a.Node)

    let unsqueeze (dim: int) (a: Tensor) =
        let s = a.Raw.Shape
        let d = Shape.dim "unsqueeze" (s.Length + 1) dim
        view (Array.insertAt d 1 s) a

    let squeeze (dim: int) (a: Tensor) =
        let s = a.Raw.Shape
        let d = Shape.dim "squeeze" s.Length dim

        if s.[d] <> 1 then
            Fail.shape "squeeze" (sprintf "dimension %d of %s is not 1" dim (Shape.str s))

        view (Array.removeAt d s) a

    let slice (starts: int[]) (lengths: int[]) (a: Tensor) = wrap (Layout.slice starts lengths a.Node)

    /// Elements [start, start + length) along one dimension.
    let narrow (dim: int) (start: int) (length: int) (a: Tensor) =
        let s = a.Raw.Shape
        let d = Shape.dim "narrow" s.Length dim
        slice (Array.init s.Length (fun i -> if i = d then start else 0)) (s |> Array.mapi (fun i n -> if i = d then length else n)) a

    let pad (starts: int[]) (outShape: int[]) (a: Tensor) = wrap (Layout.pad starts outShape a.Node)
    let cat (dim: int) (xs: Tensor seq) = wrap (Layout.cat dim (xs |> Seq.map (fun x -> x.Node) |> Array.ofSeq))
    let stack (dim: int) (xs: Tensor seq) = xs |> Seq.map (unsqueeze dim) |> cat dim

    /// Splits along `dim` into pieces of the given sizes.
    let split (dim: int) (sizes: int[]) (a: Tensor) =
        let s = a.Raw.Shape
        let d = Shape.dim "split" s.Length dim

        if Array.sum sizes <> s.[d] then
            Fail.shape "split" (sprintf "sizes %s do not add up to dimension %d of %s" (Shape.str sizes) dim (Shape.str s))

        let offsets = Array.scan (+) 0 sizes
        Array.init sizes.Length (fun i -> narrow d offsets.[i] sizes.[i] a)

    // ---- linear algebra, convolution, pooling ----

    /// op(a)·op(b), op = transpose when its flag is set (no transpose is materialised).
    let matmulT (transA: bool) (transB: bool) (a: Tensor) (b: Tensor) =
        match a.Shift, b.Shift with
        | ValueNone, ValueSome s when b.Node.Shape.Length = 2 && a.Node.Shape.Length = 2 -> wrap (Shift.matmulRight transA transB a.Node s)
        | ValueSome s, ValueNone when a.Node.Shape.Length = 2 && b.Node.Shape.Length = 2 -> wrap (Shift.matmulLeft transA transB s b.Node)
        | _ -> wrap (LinearAlgebra.matmulT transA transB a.Node b.Node)

    let matmul (a: Tensor) (b: Tensor) = matmulT false false a b

    let conv2d (stride: int * int) (padding: int * int) (x: Tensor) (weight: Tensor) (bias: Tensor option) =
        match x.Shift, weight.Shift with
        | ValueNone, ValueSome s ->
            Convolution.checkConv2d stride padding x.Node weight.Node (bias |> Option.map (fun b -> b.Node))

            Convolution.addBias (Shift.conv2d stride padding x.Node s) (bias |> Option.map (fun b -> b.Node))
            |> wrap
        | _ -> wrap (Convolution.conv2d stride padding x.Node weight.Node (bias |> Option.map (fun b -> b.Node)))

    let maxPool2d (kernel: int) (stride: int) (padding: int) (x: Tensor) = wrap (Convolution.maxPool2d kernel stride padding x.Node)
    let avgPool2d (kernel: int) (stride: int) (padding: int) (x: Tensor) = wrap (Convolution.avgPool2d kernel stride padding x.Node)

    /// im2col: [N, C, H, W] to [C·kh·kw, N·oh·ow].
    let unfold2d (kernel: int * int) (stride: int * int) (padding: int * int) (x: Tensor) =
        wrap (Convolution.unfold2d kernel stride padding x.Node)

    /// col2im (accumulating), the adjoint of unfold2d.
    let fold2d (outShape: int[]) (kernel: int * int) (stride: int * int) (padding: int * int) (cols: Tensor) =
        wrap (Convolution.fold2d outShape kernel stride padding cols.Node)

    // ---- indexing ----

    let private indices op (idx: Tensor) =
        if idx.IsDifferentiated then
            Fail.diff op "indices cannot carry derivatives"

        idx.Raw

    let gather (dim: int) (idx: Tensor) (a: Tensor) = wrap (Indexing.gather dim (indices "gather" idx) a.Node)

    let scatterAdd (dim: int) (idx: Tensor) (outShape: int[]) (a: Tensor) =
        wrap (Indexing.scatterAdd dim (indices "scatterAdd" idx) outShape a.Node)

    /// One-hot rows [N, n] (a constant) of int32 labels [N].
    let oneHot (n: int) (dtype: Dtype) (labels: Tensor) =
        let r = indices "oneHot" labels

        if r.Dtype <> Dtype.Int32 || r.Rank <> 1 then
            Fail.dtype "oneHot" (sprintf "needs int32 labels of shape [N], got %O %s" r.Dtype (Shape.str r.Shape))

        ofRaw (r.Backend.OneHot(r, n, dtype))

    /// Index of the largest entry along `dim` (int32, a constant).
    let argMax (dim: int) (a: Tensor) =
        let r = a.Raw
        ofRaw (r.Backend.ArgMaxDim(r, Shape.dim "argMax" r.Rank dim))

    /// Largest entry along `dim` (a constant: no derivative).
    let maxDim (dim: int) (keepDim: bool) (a: Tensor) =
        let r = a.Raw
        ofRaw (r.Backend.MaxDim(r, Shape.dim "maxDim" r.Rank dim, keepDim))

    // ---- losses ----

    /// Mean cross-entropy of int32 labels [N] under logits [N, K].
    let crossEntropy (logits: Tensor) (labels: Tensor) = wrap (Losses.crossEntropy logits.Node (indices "crossEntropy" labels))
    /// Mean negative log-likelihood of int32 labels [N] under log-probabilities [N, K].
    let nll (logProbs: Tensor) (labels: Tensor) = wrap (Losses.nll logProbs.Node (indices "nll" labels))
    /// Mean squared error (shapes must agree).
    let mse (prediction: Tensor) (target: Tensor) = wrap (Losses.mse prediction.Node target.Node)
