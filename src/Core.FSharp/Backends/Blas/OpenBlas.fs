#nowarn "9"   // native pointers passed to the C interface

namespace GroupedNewton.Backends.Blas

open System
open System.Runtime.InteropServices
open Microsoft.FSharp.NativeInterop
open GroupedNewton.Backends.Managed

// The C interface (cblas.h, LP64): enum values and signatures. Pointers travel as nativeint
// so the marshalling stubs stay blittable (no per-call copying or conversion).

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CblasSgemm =
    delegate of
        order: int *
        transA: int *
        transB: int *
        m: int *
        n: int *
        k: int *
        alpha: float32 *
        a: nativeint *
        lda: int *
        b: nativeint *
        ldb: int *
        beta: float32 *
        c: nativeint *
        ldc: int ->
            unit

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CblasDgemm =
    delegate of
        order: int *
        transA: int *
        transB: int *
        m: int *
        n: int *
        k: int *
        alpha: float *
        a: nativeint *
        lda: int *
        b: nativeint *
        ldb: int *
        beta: float *
        c: nativeint *
        ldc: int ->
            unit

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal OpenBlasSetNumThreads = delegate of n: int -> unit

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal OpenBlasGetString = delegate of unit -> nativeint

/// OpenBLAS loaded at run time (NativeLibrary), used through its CBLAS entry points.
/// Nothing is loaded until `isAvailable`, `coreName`, `config` or `gemm` is
/// first called; GemmProvider never calls them when GROUPEDNEWTON_BLAS=managed.
module OpenBlas =

    [<Literal>]
    let private RowMajor = 101

    [<Literal>]
    let private NoTrans = 111

    [<Literal>]
    let private Trans = 112

    type private Api = {
        Library: string
        Sgemm: CblasSgemm
        Dgemm: CblasDgemm
        SetNumThreads: OpenBlasSetNumThreads option
        CoreName: string
        Config: string
    }

    /// Library names tried in order (the pthread, OpenMP and serial Debian/Ubuntu/Fedora
    /// builds all export the LP64 CBLAS symbols used here), then the usual full paths.
    let private candidates = [
        "libopenblas.so.0"
        "libopenblas.so"
        "libopenblasp.so.0"
        "libopenblasp.so"
        "libopenblaso.so.0"
        "libopenblas.so.3"
        "libopenblas.dylib"
        "libopenblas.dll"
        "openblas"
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
        "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0"
        "/usr/lib64/libopenblasp.so.0"
        "/usr/lib64/libopenblas.so.0"
        "/opt/homebrew/opt/openblas/lib/libopenblas.dylib"
        "/usr/local/opt/openblas/lib/libopenblas.dylib"
    ]

    let private readString (lib: nativeint) (name: string) =
        match NativeLibrary.TryGetExport(lib, name) with
        | true, f when f <> 0n ->
            try
                let s = Marshal.GetDelegateForFunctionPointer<OpenBlasGetString>(f).Invoke()

                if s = 0n then
                    "unknown"
                else
                    match Marshal.PtrToStringAnsi s with
                    | null -> "unknown"
                    | str -> str.Trim()
            with _ ->
                "unknown"
        | _ -> "unknown"

    let private tryBind (name: string) (lib: nativeint) : Api option =
        match NativeLibrary.TryGetExport(lib, "cblas_sgemm"), NativeLibrary.TryGetExport(lib, "cblas_dgemm") with
        | (true, s), (true, d) when s <> 0n && d <> 0n ->
            let setThreads =
                match NativeLibrary.TryGetExport(lib, "openblas_set_num_threads") with
                | true, f when f <> 0n -> Some(Marshal.GetDelegateForFunctionPointer<OpenBlasSetNumThreads> f)
                | _ -> None

            Some {
                Library = name
                Sgemm = Marshal.GetDelegateForFunctionPointer<CblasSgemm> s
                Dgemm = Marshal.GetDelegateForFunctionPointer<CblasDgemm> d
                SetNumThreads = setThreads
                CoreName = readString lib "openblas_get_corename"
                Config = readString lib "openblas_get_config"
            }
        | _ -> None

    let private load () : Api option =
        let rec go names =
            match names with
            | [] -> None
            | (name: string) :: rest ->
                let found =
                    try
                        match NativeLibrary.TryLoad name with
                        | true, lib when lib <> 0n ->
                            match tryBind name lib with
                            | Some api -> Some api
                            | None ->
                                NativeLibrary.Free lib
                                None
                        | _ -> None
                    with _ ->
                        None

                match found with
                | Some _ -> found
                | None -> go rest

        go candidates

    let private api =
        lazy
            (try
                load ()
             with _ ->
                 None)

    /// The thread count last handed to openblas_set_num_threads (0: never set).
    let mutable private lastThreads = 0

    /// True when an OpenBLAS library with the CBLAS entry points could be loaded. Loads it on
    /// first call; never throws.
    let isAvailable () : bool =
        try
            api.Force().IsSome
        with _ ->
            false

    /// A text field of the loaded API, or `fallback` when the library did not load.
    let private describe (field: Api -> string) (fallback: string) : string =
        try
            match api.Force() with
            | Some a -> field a
            | None -> fallback
        with _ ->
            fallback

    /// The kernel family OpenBLAS picked (openblas_get_corename, e.g. "Haswell", "Zen"), or "unknown".
    let coreName () : string = describe (fun a -> a.CoreName) "unknown"

    /// The build configuration string (openblas_get_config), or "unknown".
    let config () : string = describe (fun a -> a.Config) "unknown"

    /// The library name that was loaded, or "none".
    let libraryName () : string = describe (fun a -> a.Library) "none"

    let private get () =
        match api.Force() with
        | Some a -> a
        | None ->
            raise (
                GroupedNewton.BackendException
                    "OpenBLAS could not be loaded: apt-get install libopenblas0-pthread, or set GROUPEDNEWTON_BLAS=managed"
            )

    let private setThreads (a: Api) (threads: int) =
        if threads <> lastThreads then
            match a.SetNumThreads with
            | Some f -> f.Invoke threads
            | None -> ()

            lastThreads <- threads

    /// CBLAS wants ld ≥ max(1, row length) even where a single row makes it irrelevant.
    let inline private fixLd (rows: int) (cols: int) (ld: int) = if rows <= 1 then max ld (max 1 cols) else ld

    /// C = op(A)·op(B) (see GemmCall) for float32 or float64 through cblas_sgemm or cblas_dgemm,
    /// OpenBLAS running `threads` threads: the same contract and checks as Gemm.run.
    let internal gemm<'T when 'T: unmanaged> (g: GemmCall<'T>) (threads: int) : unit =
        Gemm.validate g threads
        let api = get ()

        if g.M > 0 && g.N > 0 then
            if g.K = 0 then
                Gemm.zeroC g
            else
                setThreads api threads
                let lda = if g.TransA then fixLd g.K g.M g.Lda else fixLd g.M g.K g.Lda
                let ldb = if g.TransB then fixLd g.N g.K g.Ldb else fixLd g.K g.N g.Ldb
                let ldc = fixLd g.M g.N g.Ldc
                let ta = if g.TransA then Trans else NoTrans
                let tb = if g.TransB then Trans else NoTrans
                use a = fixed g.A
                use b = fixed g.B
                use c = fixed g.C
                let pa = NativePtr.toNativeInt (NativePtr.add a g.AOff)
                let pb = NativePtr.toNativeInt (NativePtr.add b g.BOff)
                let pc = NativePtr.toNativeInt (NativePtr.add c g.COff)

                if typeof<'T> = typeof<float32> then
                    api.Sgemm.Invoke(RowMajor, ta, tb, g.M, g.N, g.K, 1.0f, pa, lda, pb, ldb, 0.0f, pc, ldc)
                elif typeof<'T> = typeof<float> then
                    api.Dgemm.Invoke(RowMajor, ta, tb, g.M, g.N, g.K, 1.0, pa, lda, pb, ldb, 0.0, pc, ldc)
                else
                    invalidArg "g" (sprintf "gemm: element type %s is not float32 or float64" typeof<'T>.Name)
