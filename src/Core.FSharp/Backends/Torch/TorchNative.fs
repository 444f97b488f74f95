namespace GroupedNewton.Backends.Torch

open System
open System.IO
open System.Reflection
open System.Runtime.InteropServices
open System.Threading
open GroupedNewton

/// Owns one tensor of the libtorch shim. Releasing it (Dispose, a TorchScope, or the
/// finalizer as a last resort) frees the native tensor at once and withdraws the memory
/// pressure it reported to the garbage collector.
[<Sealed>]
type TorchHandle() =
    inherit SafeHandle(0n, true)
    let mutable pressure = 0L
    override h.IsInvalid = h.handle = 0n

    /// Bytes reported to the GC with GC.AddMemoryPressure while this handle lives.
    member internal _.SetPressure(bytes: int64) =
        if bytes > 0L then
            GC.AddMemoryPressure bytes
            pressure <- bytes

    override h.ReleaseHandle() =
        TorchHandle.Free h.handle

        if pressure > 0L then
            GC.RemoveMemoryPressure pressure
            pressure <- 0L

        true

    static member val internal Free: nativeint -> unit = ignore with get, set

/// The shim's entry points (native/torchshim/gntorch.h). Resolved on first use only, so
/// nothing native is loaded unless the torch backend is asked for.
module internal TorchNative =
    [<Literal>]
    let Lib = "gntorch"

    [<Literal>]
    let AbiVersion = 2

    // ---- library ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern nativeint gn_last_error()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_abi_version()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int64 gn_live_tensors()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_cuda_device_count()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern void gn_set_num_threads(int n)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_get_num_threads()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern nativeint gn_torch_version()

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_synchronize(int devType, int devIndex)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_set_allow_tf32(int allow)

    // ---- handles and data ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern void gn_free(nativeint t)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_meta(TorchHandle t, int[] shape, int cap, int& dtype)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_zeros(int[] shape, int rank, int dtype, int devType, int devIndex)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_full(int[] shape, int rank, float value, int dtype, int devType, int devIndex)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_from_data(nativeint data, int[] shape, int rank, int dtype, int devType, int devIndex)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern int gn_to_data(TorchHandle t, nativeint out, int64 bytes)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_to_device(TorchHandle t, int devType, int devIndex)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_cast(TorchHandle t, int dtype)

    // ---- layout ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_view(TorchHandle t, int[] shape, int rank)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_permute(TorchHandle t, int[] perm, int rank)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_expand(TorchHandle t, int[] shape, int rank)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_slice(TorchHandle t, int[] starts, int[] lengths, int rank)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_pad(TorchHandle t, int[] starts, int[] outShape, int rank)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_cat(nativeint[] ts, int count, int dim)

    // ---- elementwise ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_unary(int kind, TorchHandle t)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_binary(int kind, TorchHandle a, TorchHandle b)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_add_scaled(TorchHandle a, TorchHandle b, float beta)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_tanh_grad(TorchHandle y, TorchHandle t)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_add_scalar(TorchHandle t, float c)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_mul_scalar(TorchHandle t, float c)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_pow_scalar(TorchHandle t, float c)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_gt_scalar(TorchHandle t, float c)

    // ---- reductions ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_sum(TorchHandle t)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_sum_dim(TorchHandle t, int dim, int keepDim)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_max_dim(TorchHandle t, int dim, int keepDim)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_argmax_dim(TorchHandle t, int dim)

    // ---- linear algebra and convolution ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_matmul(TorchHandle a, TorchHandle b, int transA, int transB)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_unfold2d(TorchHandle x, int kh, int kw, int sh, int sw, int ph, int pw)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_fold2d(TorchHandle cols, int[] outShape4, int kh, int kw, int sh, int sw, int ph, int pw)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_conv2d(TorchHandle x, TorchHandle w, int sh, int sw, int ph, int pw)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_conv2d_input_grad(TorchHandle g, TorchHandle w, int[] xShape4, int sh, int sw, int ph, int pw)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_conv2d_weight_grad(TorchHandle x, TorchHandle g, int[] wShape4, int sh, int sw, int ph, int pw)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_maxpool2d_indices(TorchHandle x, int k, int s, int p)

    // ---- indexing ----
    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_one_hot(TorchHandle idx, int n, int dtype)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_gather(TorchHandle t, int dim, TorchHandle idx)

    [<DllImport(Lib, CallingConvention = CallingConvention.Cdecl)>]
    extern TorchHandle gn_scatter_add(TorchHandle src, int dim, TorchHandle idx, int[] outShape, int rank)

    /// Device-to-host reads made (gn_to_data calls), in one cell for Interlocked.
    let deviceReads = [| 0L |]

    // ---- locating and loading the shim ----

    let private fileName =
        if OperatingSystem.IsWindows() then "gntorch.dll"
        elif OperatingSystem.IsMacOS() then "libgntorch.dylib"
        else "libgntorch.so"

    /// The command that builds the shim (also in the README).
    let buildHint =
        "build it with `native/torchshim/build.sh` from the repository root (needs cmake, a C++17 compiler and libtorch: "
        + "`apt-get install libtorch-dev libopenblas0-pthread` on Debian), or set GROUPEDNEWTON_TORCHSHIM to the library's path"

    /// Places searched for the shim, in order: GROUPEDNEWTON_TORCHSHIM, next to this
    /// assembly, then native/torchshim/build/ in this folder or any parent of the
    /// application's and the current folder (a repository checkout).
    let candidates () =
        [
            match Environment.GetEnvironmentVariable "GROUPEDNEWTON_TORCHSHIM" with
            | null
            | "" -> ()
            | p -> yield p
            yield Path.Combine(AppContext.BaseDirectory, fileName)
            for start in [ AppContext.BaseDirectory; Environment.CurrentDirectory ] do
                let mutable dir = start

                while not (String.IsNullOrEmpty dir) do
                    yield Path.Combine(dir, "native", "torchshim", "build", fileName)

                    dir <-
                        match Path.GetDirectoryName(Path.TrimEndingDirectorySeparator dir) with
                        | null -> ""
                        | d -> d
        ]
        |> List.distinct

    /// The first existing path, or the message saying where it looked and how to build it.
    let locate (tried: string list) =
        match tried |> List.tryFind File.Exists with
        | Some path -> Ok path
        | None -> Error(sprintf "the libtorch shim %s was not found (looked in: %s); %s" fileName (String.Join(", ", tried)) buildHint)

    let private loaded: Lazy<Result<nativeint, string>> =
        lazy
            (match locate (candidates ()) with
             | Error msg -> Error msg
             | Ok path ->
                 match NativeLibrary.TryLoad path with
                 | false, _ ->
                     // load again to obtain the loader's reason (usually a missing libtorch)
                     let why =
                         try
                             NativeLibrary.Load path |> ignore
                             "unknown reason"
                         with e ->
                             e.Message

                     Error(sprintf "the libtorch shim %s exists but could not be loaded (%s); is libtorch installed? %s" path why buildHint)
                 | true, lib ->
                     try
                         NativeLibrary.SetDllImportResolver(
                             Assembly.GetExecutingAssembly(),
                             DllImportResolver(fun name _ _ -> if name = Lib then lib else 0n)
                         )

                         TorchHandle.Free <- (fun p -> gn_free p)
                         let v = gn_abi_version ()

                         if v <> AbiVersion then
                             Error(
                                 sprintf
                                     "the libtorch shim %s has interface version %d, this library needs %d; rebuild it: %s"
                                     path
                                     v
                                     AbiVersion
                                     buildHint
                             )
                         else
                             Ok lib
                     with e ->
                         Error(sprintf "the libtorch shim %s could not be bound: %s" path e.Message))

    /// Loads the shim once; fails with a BackendException that says how to build it.
    let ensure () =
        match loaded.Value with
        | Ok _ -> ()
        | Error msg -> Fail.backend msg

    /// True when the shim and libtorch load (loads them on first call).
    let isAvailable () =
        match loaded.Value with
        | Ok _ -> true
        | Error _ -> false

    /// Why the shim is unavailable, or None when it loads.
    let unavailableReason () =
        match loaded.Value with
        | Ok _ -> None
        | Error m -> Some m

    /// True once the shim has been loaded by this process (never loads it).
    let isLoaded () =
        loaded.IsValueCreated
        && (match loaded.Value with
            | Ok _ -> true
            | _ -> false)

    /// The message the shim left for the last failed call on this thread.
    let lastError () =
        match gn_last_error () with
        | 0n -> "no message from the shim"
        | p ->
            match Marshal.PtrToStringUTF8 p with
            | null -> "no message from the shim"
            | m -> m
