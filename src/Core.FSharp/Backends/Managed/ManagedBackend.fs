namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton
open GroupedNewton.Backends

/// The managed CPU backend: flat arrays, SIMD kernels, packed GEMM (or OpenBLAS when it
/// loads), im2col. Needs no native package.
[<Sealed>]
type internal ManagedBackend() as this =
    inherit Backend()

    let mk (shape: int[]) (s: Storage) = CpuTensor(this, shape, s) :> RawTensor
    // mk for an op's result, keeping the op's inputs reachable until the result exists:
    // StoragePool recycles an array once no tensor holds it, and the kernel that has taken
    // an input's raw array may itself ask the pool for memory
    let mk1 (a: RawTensor) shape s =
        let r = mk shape s in
        GC.KeepAlive a
        r

    let mk2 (a: RawTensor) (b: RawTensor) shape s =
        let r = mk shape s in
        GC.KeepAlive a
        GC.KeepAlive b
        r

    let st (t: RawTensor) =
        match t with
        | :? CpuTensor as c -> c.Storage
        | _ -> Fail.backend (sprintf "the managed backend was given a tensor of backend '%s'; move it first" t.Backend.Name)

    // the float32 array of a managed tensor of this backend holding exactly its elements
    let exact32 (t: RawTensor) =
        match t with
        | :? CpuTensor as c when Object.ReferenceEquals(c.Backend, this) ->
            match c.Storage with
            | F32 a when a.Length = t.Numel -> Some a
            | _ -> None
        | _ -> None

    static member val Instance = ManagedBackend()

    override _.Name = "managed"

    override _.Zeros(shape, dtype) = mk (Array.copy shape) (Storage.Zeros(dtype, Shape.numel shape))

    override _.Full(shape, value, dtype) =
        let n = Shape.numel shape

        let s =
            match dtype with
            | Dtype.Float32 ->
                let a = Storage.Uninit n in
                Array.Fill(a, float32 value)
                F32 a
            | Dtype.Float64 ->
                let a = Storage.Uninit n in
                Array.Fill(a, value)
                F64 a
            | Dtype.Int32 ->
                let a = Storage.Uninit n in
                Array.Fill(a, int value)
                I32 a

        mk (Array.copy shape) s

    override _.OfArray(data, shape) =
        let s =
            match ManagedBackend.Wrap data with
            | F32 a -> F32(ManagedBackend.Copied a)
            | F64 a -> F64(ManagedBackend.Copied a)
            | I32 a -> I32(ManagedBackend.Copied a)

        if s.Length <> Shape.numel shape then
            Fail.shape "ofArray" (sprintf "%d values do not fill shape %s" s.Length (Shape.str shape))

        mk (Array.copy shape) s

    /// A tensor of `shape` whose values `fill` writes, all of them, into recycled storage
    /// that becomes the tensor's own (OfArray without its copy).
    member _.Filled<'T>(shape: int[], fill: 'T[] -> unit) : RawTensor =
        let a = Storage.Uninit<'T>(Shape.numel shape)
        fill a
        mk (Array.copy shape) (ManagedBackend.Wrap a)

    /// The storage over an array of a supported element type.
    static member private Wrap(data: Array) : Storage =
        match data with
        | :? (float32[]) as a -> F32 a
        | :? (float[]) as a -> F64 a
        | :? (int[]) as a -> I32 a
        | _ -> Fail.dtype "ofArray" (sprintf "unsupported element type %s (use float32, float or int)" (data.GetType().Name))

    /// A copy of `a` in recycled storage.
    static member private Copied<'T>(a: 'T[]) : 'T[] =
        let c = Storage.Uninit<'T> a.Length
        Array.Copy(a, c, a.Length)
        c

    override _.ToArray t =
        match st t with
        | F32 a -> Array.copy a :> Array
        | F64 a -> Array.copy a :> Array
        | I32 a -> Array.copy a :> Array

    override _.Cast(t, dtype) =
        let s = st t

        if s.Dtype = dtype then
            t
        else
            let r =
                match s, dtype with
                | F32 a, Dtype.Float64 -> F64(Array.map float a)
                | F32 a, Dtype.Int32 -> I32(Array.map int a)
                | F64 a, Dtype.Float32 -> F32(Array.map float32 a)
                | F64 a, Dtype.Int32 -> I32(Array.map int a)
                | I32 a, Dtype.Float32 -> F32(Array.map float32 a)
                | I32 a, Dtype.Float64 -> F64(Array.map float a)
                | _ -> s

            mk1 t t.Shape r

    override _.View(t, shape) = mk (Array.copy shape) (st t)
    override _.Permute(t, perm) = mk1 t (perm |> Array.map (fun p -> t.Shape.[p])) (Layout.permute (st t) t.Shape perm)
    override _.Expand(t, shape) = mk1 t (Array.copy shape) (Layout.expand (st t) t.Shape shape)
    override _.Slice(t, starts, lengths) = mk1 t (Array.copy lengths) (Layout.slice (st t) t.Shape starts lengths)
    override _.Pad(t, starts, outShape) = mk1 t (Array.copy outShape) (Layout.pad (st t) t.Shape starts outShape)

    override _.Cat(ts, dim) =
        let shapes = ts |> Array.map (fun t -> t.Shape)
        let outShape = Array.copy shapes.[0]
        outShape.[dim] <- shapes |> Array.sumBy (fun s -> s.[dim])
        let r = mk outShape (Layout.cat (ts |> Array.map st) shapes dim outShape)
        GC.KeepAlive ts
        r

    override _.Unary(kind, t) = mk1 t t.Shape (Elementwise.unary kind (st t))
    override _.Binary(kind, a, b) = mk2 a b a.Shape (Elementwise.binary kind (st a) (st b))
    override _.AddBroadcast(a, b) = mk2 a b a.Shape (Elementwise.addBroadcast (st a) a.Shape (st b) b.Shape)
    override _.TanhGrad(y, t) = mk2 y t y.Shape (Elementwise.tanhGrad (st y) (st t))
    override _.AddScaled(a, b, beta) = mk2 a b a.Shape (Elementwise.addScaled (st a) (st b) beta)
    override _.AddScalar(t, c) = mk1 t t.Shape (Elementwise.addScalar (st t) c)
    override _.MulScalar(t, c) = mk1 t t.Shape (Elementwise.mulScalar (st t) c)
    override _.PowScalar(t, c) = mk1 t t.Shape (Elementwise.powScalar (st t) c)
    override _.GtScalar(t, c) = mk1 t t.Shape (Elementwise.gtScalar (st t) c)

    override _.Sum t = mk1 t [||] (Reductions.sum (st t))

    override _.SumDim(t, dim, keepDim) = mk1 t (ManagedBackend.ReducedShape(t.Shape, dim, keepDim)) (Reductions.sumDim (st t) t.Shape dim)

    override _.MaxDim(t, dim, keepDim) = mk1 t (ManagedBackend.ReducedShape(t.Shape, dim, keepDim)) (Reductions.maxDim (st t) t.Shape dim)

    override _.ArgMaxDim(t, dim) = mk1 t (ManagedBackend.ReducedShape(t.Shape, dim, false)) (Reductions.argMaxDim (st t) t.Shape dim)

    override _.MatMul(a, b, transA, transB) =
        let m = if transA then a.Shape.[1] else a.Shape.[0]
        let k = if transA then a.Shape.[0] else a.Shape.[1]
        let n = if transB then b.Shape.[0] else b.Shape.[1]
        let lda, ldb = a.Shape.[1], b.Shape.[1]

        let product (x: 'T[]) (y: 'T[]) : 'T[] =
            let c = Storage.Uninit(m * n)
            GemmProvider.gemm (GemmCall.ofArgs (transA, transB, m, n, k, x, 0, lda, y, 0, ldb, c, 0, n))
            c

        let s =
            match st a, st b with
            | F32 x, F32 y -> F32(product x y)
            | F64 x, F64 y -> F64(product x y)
            | x, y -> Fail.dtype "matmul" (sprintf "operands of dtypes %O and %O" x.Dtype y.Dtype)

        mk2 a b [| m; n |] s

    override _.Unfold2d(x, kh, kw, sh, sw, ph, pw) =
        let n, c, h, w = x.Shape.[0], x.Shape.[1], x.Shape.[2], x.Shape.[3]
        let oh, ow = Shape.window2d "unfold2d" h w kh kw sh sw ph pw
        mk1 x [| c * kh * kw; n * oh * ow |] (Im2col.unfold (st x) x.Shape kh kw sh sw ph pw)

    override _.Fold2d(cols, outShape, kh, kw, sh, sw, ph, pw) =
        mk1 cols (Array.copy outShape) (Im2col.fold (st cols) outShape kh kw sh sw ph pw)

    override _.Conv2d(x, w, sh, sw, ph, pw) =
        let oh, ow = Shape.window2d "conv2d" x.Shape.[2] x.Shape.[3] w.Shape.[2] w.Shape.[3] sh sw ph pw
        mk2 x w [| x.Shape.[0]; w.Shape.[0]; oh; ow |] (ConvKernels.conv2d (st x) x.Shape (st w) w.Shape sh sw ph pw)

    override _.Conv2dInputGrad(g, w, xShape, sh, sw, ph, pw) =
        mk2 g w (Array.copy xShape) (ConvKernels.conv2dInputGrad (st g) (st w) w.Shape xShape sh sw ph pw)

    override _.Conv2dWeightGrad(x, g, wShape, sh, sw, ph, pw) =
        mk2 x g (Array.copy wShape) (ConvKernels.conv2dWeightGrad (st x) x.Shape (st g) wShape sh sw ph pw)

    override _.MaxPool2dIndices(x, k, s, p) =
        let oh, ow = Shape.window2d "maxPool2d" x.Shape.[2] x.Shape.[3] k k s s p p
        mk1 x [| x.Shape.[0]; x.Shape.[1]; oh; ow |] (ConvKernels.maxPool2dIndices (st x) x.Shape k s p)

    override _.OneHot(idx, n, dtype) =
        match st idx with
        | I32 a -> mk1 idx [| a.Length; n |] (Indexing.oneHot a n dtype)
        | s -> Fail.dtype "oneHot" (sprintf "indices must be int32, got %O" s.Dtype)

    override _.Gather(t, dim, idx) =
        match st idx with
        | I32 a -> mk2 t idx idx.Shape (Indexing.gather (st t) t.Shape dim a idx.Shape)
        | s -> Fail.dtype "gather" (sprintf "indices must be int32, got %O" s.Dtype)

    override _.ScatterAdd(src, dim, idx, outShape) =
        match st idx with
        | I32 a -> mk2 src idx (Array.copy outShape) (Indexing.scatterAdd (st src) dim a idx.Shape outShape)
        | s -> Fail.dtype "scatterAdd" (sprintf "indices must be int32, got %O" s.Dtype)

    override _.ConcurrentPasses = true

    override _.FusedMoment(theta, g, prev, weightDecay, beta, scale) =
        let prevArray =
            match prev with
            | None -> Some None
            | Some p -> exact32 p |> Option.map Some

        match exact32 theta, exact32 g, prevArray with
        | Some th, Some ga, Some pa when th.Length = ga.Length && pa |> Option.forall (fun a -> a.Length = ga.Length) ->
            let m, norm2 = OptimizerKernels.moment th ga pa weightDecay beta scale
            GC.KeepAlive theta
            GC.KeepAlive g
            GC.KeepAlive prev
            Some(mk (Array.copy g.Shape) (F32 m), norm2)
        | _ -> None

    override this.MulScalar2(t, a, b) =
        match exact32 t with
        | Some x -> mk1 t (Array.copy t.Shape) (F32(OptimizerKernels.mulScalar2 x a b))
        | None -> this.MulScalar(this.MulScalar(t, a), b)

    static member ReducedShape(shape: int[], dim: int, keepDim: bool) =
        if keepDim then
            shape |> Array.mapi (fun i d -> if i = dim then 1 else d)
        else
            Array.append shape.[.. dim - 1] shape.[dim + 1 ..]
