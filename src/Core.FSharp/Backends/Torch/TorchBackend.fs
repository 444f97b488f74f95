#nowarn "9"   // pinned arrays handed to the shim

namespace GroupedNewton.Backends.Torch

open System
open System.Collections.Concurrent
open System.Runtime.InteropServices
open Microsoft.FSharp.NativeInterop
open GroupedNewton
open GroupedNewton.Backends.Managed
open GroupedNewton.Backends.Torch.TorchNative

/// The raw Backend over libtorch (through the shim in native/torchshim), one instance per
/// device. Created only on request (TorchBackend.Get, GROUPEDNEWTON_BACKEND=torch), so a
/// process that never asks for it loads nothing native.
[<Sealed>]
type TorchBackend private (device: TorchDevice) as this =
    inherit Backend()

    let devType, devIndex = device.Code

    let name =
        match device with
        | TorchDevice.Cpu -> "torch"
        | TorchDevice.Cuda i -> sprintf "torch:cuda:%d" i

    static let instances = ConcurrentDictionary<TorchDevice, TorchBackend>()

    let dtypeCode (d: Dtype) =
        match d with
        | Dtype.Float32 -> 0
        | Dtype.Float64 -> 1
        | Dtype.Int32 -> 2

    let describe (ts: RawTensor list) = String.Join(", ", ts |> List.map (fun t -> sprintf "%O %s" t.Dtype (Shape.str t.Shape)))

    let h (t: RawTensor) =
        match t with
        | :? TorchTensor as tt when Object.ReferenceEquals(tt.Backend, this) -> tt.Handle
        | _ ->
            Fail.backend (
                sprintf
                    "the %s backend was given a tensor of backend '%s' (%O %s); move it first (Tensor.toBackend)"
                    name
                    t.Backend.Name
                    t.Dtype
                    (Shape.str t.Shape)
            )

    /// Turns a handle returned by the shim into a tensor (or the shim's error into a
    /// BackendException naming the op and its operands). `owns`: the result has its own
    /// storage (reported to the GC as memory pressure); views share their source's.
    let make (op: string) (inputs: RawTensor list) (owns: bool) (r: TorchHandle) : RawTensor =
        if r.IsInvalid then
            Fail.backend (sprintf "torch %s on %s (%s): %s" op (describe inputs) name (TorchNative.lastError ()))

        let mutable shape = Array.zeroCreate 8
        let mutable code = 0
        let mutable rank = gn_meta (r, shape, shape.Length, &code)

        if rank > shape.Length then
            shape <- Array.zeroCreate rank
            rank <- gn_meta (r, shape, shape.Length, &code)

        let shape = if rank = shape.Length then shape else Array.sub shape 0 rank

        let dtype =
            match code with
            | 0 -> Dtype.Float32
            | 1 -> Dtype.Float64
            | 2 -> Dtype.Int32
            | _ ->
                r.Dispose()

                Fail.dtype
                    ("torch " + op)
                    (sprintf "libtorch returned a tensor of an unsupported dtype (code %d) for %s" code (describe inputs))

        let dtypeT: Dtype = dtype

        if owns then
            r.SetPressure(int64 (Shape.numel shape) * int64 dtypeT.ByteSize)

        match TorchScope.Current with
        | null -> ()
        | s -> s.Add r

        new TorchTensor(this, r, shape, dtypeT) :> RawTensor

    /// The value as stored in a one-element tensor of this dtype (None for int32).
    let storedAs (dtype: Dtype) (v: float) =
        match dtype with
        | Dtype.Float64 -> ValueSome v
        | Dtype.Float32 -> ValueSome(float (float32 v))
        | Dtype.Int32 -> ValueNone

    /// Records the host value of a one-element float result.
    let knowing (v: float voption) (r: RawTensor) =
        match r, v with
        | :? TorchTensor as tt, ValueSome x when r.Numel = 1 -> tt.Known <- storedAs r.Dtype x
        | _ -> ()

        r

    /// The backend on this device (one instance per device); loads the shim on first use
    /// and fails with a BackendException that says how to build it when it is missing.
    static member Get(device: TorchDevice) =
        TorchNative.ensure ()

        match device with
        | TorchDevice.Cuda i ->
            let n = gn_cuda_device_count ()

            if i >= n then
                Fail.backend (
                    sprintf
                        "torch device cuda:%d was requested but libtorch sees %d CUDA device(s)%s"
                        i
                        n
                        (if n = 0 then " (a CPU-only libtorch, such as Debian's, has none)" else "")
                )
        | TorchDevice.Cpu -> ()

        instances.GetOrAdd(
            device,
            fun d ->
                // libtorch follows the library's thread count (GROUPEDNEWTON_THREADS, setThreads)
                gn_set_num_threads (Threading.get ())
                // float32 products and convolutions at full precision, as on the CPU (PyTorch's
                // own default lets cuDNN use TF32, about 3 decimal digits)
                if d <> TorchDevice.Cpu && gn_set_allow_tf32 0 <> 0 then
                    Fail.backend (sprintf "torch %O: could not turn TF32 off: %s" d (TorchNative.lastError ()))

                TorchBackend d
        )

    /// The backend on a device named "cpu", "cuda" or "cuda:N".
    static member Get(device: string) = TorchBackend.Get(TorchDevice.Parse device)

    /// True when the shim and libtorch load on this machine.
    static member IsAvailable = TorchNative.isAvailable ()

    /// Why the torch backend cannot be used here, or None.
    static member UnavailableReason = TorchNative.unavailableReason ()

    /// Native tensors created through the shim and not yet freed (all devices).
    static member LiveTensors = if TorchNative.isLoaded () then gn_live_tensors () else 0L

    /// Threads libtorch uses for its CPU kernels.
    static member Threads
        with get () =
            TorchNative.ensure ()
            gn_get_num_threads ()
        and set (n: int) =
            if n < 1 then
                Fail.backend (sprintf "thread count must be at least 1, got %d" n)

            TorchNative.ensure ()
            gn_set_num_threads n

    /// Device-to-host reads of tensor values so far (all devices); a read of a one-element
    /// tensor whose value is already known on the host is not counted (it is not made).
    static member DeviceReads = System.Threading.Interlocked.Read(&TorchNative.deviceReads.[0])

    /// The libtorch version the shim was compiled against.
    static member TorchVersion =
        TorchNative.ensure ()

        match Marshal.PtrToStringUTF8(gn_torch_version ()) with
        | null -> "unknown"
        | v -> v

    member _.Device = device

    /// Waits until every kernel queued on this backend's device has finished: CUDA runs
    /// kernels asynchronously, so a timing must synchronise before reading the clock. A
    /// no-op on the CPU.
    member _.Synchronize() =
        if gn_synchronize (devType, devIndex) <> 0 then
            Fail.backend (sprintf "torch synchronize on %s: %s" name (TorchNative.lastError ()))

    override _.Name = name

    /// libtorch runs its own intra-op threads (or a device queue): a summary's passes stay one
    /// after another. No fused optimizer kernels: FusedMoment and MulScalar2 keep the defaults.
    override _.ConcurrentPasses = false

    // ---- creation and data ----

    override _.Zeros(shape, dtype) = make "zeros" [] true (gn_zeros (shape, shape.Length, dtypeCode dtype, devType, devIndex))

    override _.Full(shape, value, dtype) =
        make "full" [] true (gn_full (shape, shape.Length, value, dtypeCode dtype, devType, devIndex))
        |> knowing (ValueSome value)

    override _.OfArray(data, shape) =
        let dtype =
            match data with
            | :? (float32[]) -> Dtype.Float32
            | :? (float[]) -> Dtype.Float64
            | :? (int[]) -> Dtype.Int32
            | _ -> Fail.dtype "ofArray" (sprintf "unsupported element type %s (use float32, float or int)" (data.GetType().Name))

        if data.Length <> Shape.numel shape then
            Fail.shape "ofArray" (sprintf "%d values do not fill shape %s" data.Length (Shape.str shape))

        let first =
            match data with
            | :? (float32[]) as a when a.Length = 1 -> ValueSome(float a.[0])
            | :? (float[]) as a when a.Length = 1 -> ValueSome a.[0]
            | _ -> ValueNone

        let pin = GCHandle.Alloc(data, GCHandleType.Pinned)

        try
            make "ofArray" [] true (gn_from_data (pin.AddrOfPinnedObject(), shape, shape.Length, dtypeCode dtype, devType, devIndex))
            |> knowing first
        finally
            pin.Free()

    override _.ToArray t =
        let hd = h t
        let tt = t :?> TorchTensor

        match tt.Known with
        | ValueSome v ->
            if hd.IsClosed then
                raise (ObjectDisposedException("TorchTensor", "this torch tensor was disposed"))

            match t.Dtype with
            | Dtype.Float32 -> [| float32 v |] :> Array
            | _ -> [| v |] :> Array
        | ValueNone ->
            let out: Array =
                match t.Dtype with
                | Dtype.Float32 -> Array.zeroCreate<float32> t.Numel
                | Dtype.Float64 -> Array.zeroCreate<float> t.Numel
                | Dtype.Int32 -> Array.zeroCreate<int> t.Numel

            let pin = GCHandle.Alloc(out, GCHandleType.Pinned)

            try
                System.Threading.Interlocked.Increment(&TorchNative.deviceReads.[0]) |> ignore

                if gn_to_data (hd, pin.AddrOfPinnedObject(), int64 t.Numel * int64 t.Dtype.ByteSize) <> 0 then
                    Fail.backend (sprintf "torch toArray on %s (%s): %s" (describe [ t ]) name (TorchNative.lastError ()))
            finally
                pin.Free()

            match out with
            | :? (float32[]) as a when a.Length = 1 -> tt.Known <- ValueSome(float a.[0])
            | :? (float[]) as a when a.Length = 1 -> tt.Known <- ValueSome a.[0]
            | _ -> ()

            out

    override _.Cast(t, dtype) =
        if t.Dtype = dtype then
            t
        else
            make "cast" [ t ] true (gn_cast (h t, dtypeCode dtype)) |> knowing (t :?> TorchTensor).Known

    /// A copy of a tensor of any backend on this backend's device.
    member b.MoveFrom(t: RawTensor) : RawTensor =
        match t with
        | :? TorchTensor as tt when Object.ReferenceEquals(tt.Backend, b) -> t
        | :? TorchTensor as tt -> make "toDevice" [ t ] true (gn_to_device (tt.Handle, devType, devIndex))
        | _ -> b.OfArray(t.Backend.ToArray t, t.Shape)

    // ---- layout ----

    override _.View(t, shape) = make "view" [ t ] false (gn_view (h t, shape, shape.Length))
    override _.Permute(t, perm) = make "permute" [ t ] false (gn_permute (h t, perm, perm.Length))
    override _.Expand(t, shape) = make "expand" [ t ] false (gn_expand (h t, shape, shape.Length))
    override _.Slice(t, starts, lengths) = make "slice" [ t ] true (gn_slice (h t, starts, lengths, starts.Length))
    override _.Pad(t, starts, outShape) = make "pad" [ t ] true (gn_pad (h t, starts, outShape, outShape.Length))

    override _.Cat(ts, dim) =
        let handles = ts |> Array.map h
        let refs = Array.zeroCreate handles.Length

        try
            for i in 0 .. handles.Length - 1 do
                handles.[i].DangerousAddRef(&refs.[i])

            let ptrs = handles |> Array.map (fun x -> x.DangerousGetHandle())
            make "cat" (List.ofArray ts) true (gn_cat (ptrs, ptrs.Length, dim))
        finally
            for i in 0 .. handles.Length - 1 do
                if refs.[i] then
                    handles.[i].DangerousRelease()

    // ---- elementwise ----

    override _.Unary(kind, t) =
        let k, op =
            match kind with
            | UnaryKind.Neg -> 0, "neg"
            | UnaryKind.Exp -> 1, "exp"
            | UnaryKind.Log -> 2, "log"
            | UnaryKind.Tanh -> 3, "tanh"
            | UnaryKind.Sigmoid -> 4, "sigmoid"
            | UnaryKind.Softplus -> 5, "softplus"
            | UnaryKind.Relu -> 6, "relu"
            | UnaryKind.Sqrt -> 7, "sqrt"
            | UnaryKind.Abs -> 8, "abs"
            | UnaryKind.Sign -> 9, "sign"

        make op [ t ] true (gn_unary (k, h t))

    override _.Binary(kind, a, b) =
        let k, op =
            match kind with
            | BinaryKind.Add -> 0, "add"
            | BinaryKind.Sub -> 1, "sub"
            | BinaryKind.Mul -> 2, "mul"
            | BinaryKind.Div -> 3, "div"

        make op [ a; b ] true (gn_binary (k, h a, h b))

    override _.AddBroadcast(a, b) = make "addBroadcast" [ a; b ] true (gn_binary (0, h a, h b))
    override _.AddScaled(a, b, beta) = make "addScaled" [ a; b ] true (gn_add_scaled (h a, h b, beta))
    override _.TanhGrad(y, t) = make "tanhGrad" [ y; t ] true (gn_tanh_grad (h y, h t))
    override _.AddScalar(t, c) = make "addScalar" [ t ] true (gn_add_scalar (h t, c))
    override _.MulScalar(t, c) = make "mulScalar" [ t ] true (gn_mul_scalar (h t, c))
    override _.PowScalar(t, c) = make "powScalar" [ t ] true (gn_pow_scalar (h t, c))
    override _.GtScalar(t, c) = make "gtScalar" [ t ] true (gn_gt_scalar (h t, c))

    // ---- reductions ----

    override _.Sum t = make "sum" [ t ] true (gn_sum (h t))
    override _.SumDim(t, dim, keepDim) = make "sumDim" [ t ] true (gn_sum_dim (h t, dim, (if keepDim then 1 else 0)))
    override _.MaxDim(t, dim, keepDim) = make "maxDim" [ t ] true (gn_max_dim (h t, dim, (if keepDim then 1 else 0)))
    override _.ArgMaxDim(t, dim) = make "argMaxDim" [ t ] true (gn_argmax_dim (h t, dim))

    // ---- linear algebra and convolution ----

    override _.MatMul(a, b, transA, transB) =
        make "matmul" [ a; b ] true (gn_matmul (h a, h b, (if transA then 1 else 0), (if transB then 1 else 0)))

    override _.Unfold2d(x, kh, kw, sh, sw, ph, pw) =
        Shape.window2d "unfold2d" x.Shape.[2] x.Shape.[3] kh kw sh sw ph pw |> ignore
        make "unfold2d" [ x ] true (gn_unfold2d (h x, kh, kw, sh, sw, ph, pw))

    override _.Fold2d(cols, outShape, kh, kw, sh, sw, ph, pw) =
        make "fold2d" [ cols ] true (gn_fold2d (h cols, outShape, kh, kw, sh, sw, ph, pw))

    override _.Conv2d(x, w, sh, sw, ph, pw) =
        Shape.window2d "conv2d" x.Shape.[2] x.Shape.[3] w.Shape.[2] w.Shape.[3] sh sw ph pw |> ignore
        make "conv2d" [ x; w ] true (gn_conv2d (h x, h w, sh, sw, ph, pw))

    override _.Conv2dInputGrad(g, w, xShape, sh, sw, ph, pw) =
        make "conv2dInputGrad" [ g; w ] true (gn_conv2d_input_grad (h g, h w, xShape, sh, sw, ph, pw))

    override _.Conv2dWeightGrad(x, g, wShape, sh, sw, ph, pw) =
        make "conv2dWeightGrad" [ x; g ] true (gn_conv2d_weight_grad (h x, h g, wShape, sh, sw, ph, pw))

    override _.MaxPool2dIndices(x, k, s, p) =
        Shape.window2d "maxPool2d" x.Shape.[2] x.Shape.[3] k k s s p p |> ignore
        make "maxPool2dIndices" [ x ] true (gn_maxpool2d_indices (h x, k, s, p))

    // ---- indexing ----

    override _.OneHot(idx, n, dtype) = make "oneHot" [ idx ] true (gn_one_hot (h idx, n, dtypeCode dtype))
    override _.Gather(t, dim, idx) = make "gather" [ t; idx ] true (gn_gather (h t, dim, h idx))

    override _.ScatterAdd(src, dim, idx, outShape) =
        make "scatterAdd" [ src; idx ] true (gn_scatter_add (h src, dim, h idx, outShape, outShape.Length))
