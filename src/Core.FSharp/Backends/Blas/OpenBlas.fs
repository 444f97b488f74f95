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
/// Nothing is loaded until `isAvailable`, `coreName`, `config`, `sgemm` or `dgemm` is
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

    /// The checks, the k = 0 case, the thread count, the ld fix-up and the pinning that
    /// sgemm and dgemm share. `call` gets the API, the two transpose codes and the three
    /// operand start addresses with their (fixed) leading dimensions.
    let private viaCblas<'T when 'T: unmanaged>
        (
            transA: bool,
            transB: bool,
            m: int,
            n: int,
            k: int,
            a: 'T[],
            aOff: int,
            lda: int,
            b: 'T[],
            bOff: int,
            ldb: int,
            c: 'T[],
            cOff: int,
            ldc: int,
            threads: int
        )
        (call: Api -> int -> int -> nativeint -> int -> nativeint -> int -> nativeint -> int -> unit)
        : unit =
        Gemm.validate transA transB m n k a.Length aOff lda b.Length bOff ldb c.Length cOff ldc threads
        let api = get ()

        if m > 0 && n > 0 then
            if k = 0 then
                for i in 0 .. m - 1 do
                    Span<'T>(c, cOff + i * ldc, n).Clear()
            else
                setThreads api threads
                let lda = if transA then fixLd k m lda else fixLd m k lda
                let ldb = if transB then fixLd n k ldb else fixLd k n ldb
                let ldc = fixLd m n ldc
                use pa = fixed a
                use pb = fixed b
                use pc = fixed c

                call
                    api
                    (if transA then Trans else NoTrans)
                    (if transB then Trans else NoTrans)
                    (NativePtr.toNativeInt (NativePtr.add pa aOff))
                    lda
                    (NativePtr.toNativeInt (NativePtr.add pb bOff))
                    ldb
                    (NativePtr.toNativeInt (NativePtr.add pc cOff))
                    ldc

    /// Same contract as Gemm.sgemm (C = op(A)·op(B), row-major, overwritten), through cblas_sgemm.
    let sgemm
        (
            transA: bool,
            transB: bool,
            m: int,
            n: int,
            k: int,
            a: float32[],
            aOff: int,
            lda: int,
            b: float32[],
            bOff: int,
            ldb: int,
            c: float32[],
            cOff: int,
            ldc: int,
            threads: int
        ) : unit =
        viaCblas (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, threads) (fun api ta tb pa lda pb ldb pc ldc ->
            api.Sgemm.Invoke(RowMajor, ta, tb, m, n, k, 1.0f, pa, lda, pb, ldb, 0.0f, pc, ldc))

    /// Same contract as Gemm.dgemm, through cblas_dgemm.
    let dgemm
        (
            transA: bool,
            transB: bool,
            m: int,
            n: int,
            k: int,
            a: float[],
            aOff: int,
            lda: int,
            b: float[],
            bOff: int,
            ldb: int,
            c: float[],
            cOff: int,
            ldc: int,
            threads: int
        ) : unit =
        viaCblas (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, threads) (fun api ta tb pa lda pb ldb pc ldc ->
            api.Dgemm.Invoke(RowMajor, ta, tb, m, n, k, 1.0, pa, lda, pb, ldb, 0.0, pc, ldc))
