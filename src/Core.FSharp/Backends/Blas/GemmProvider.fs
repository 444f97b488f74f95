namespace GroupedNewton.Backends

open System
open GroupedNewton
open GroupedNewton.Backends.Managed
open GroupedNewton.Backends.Blas

/// Which GEMM implementation a setting asks for.
[<RequireQualifiedAccess>]
type internal BlasSetting =
    /// The managed packed kernel (Backends/Managed/Gemm.fs); OpenBLAS is never loaded.
    | Managed
    /// OpenBLAS, failing with a BackendException when it cannot be loaded.
    | OpenBlas
    /// OpenBLAS when it loads and its kernels are vectorised for this processor, else managed.
    | Auto

/// Chooses the GEMM implementation. GROUPEDNEWTON_BLAS = managed | openblas | auto (or
/// unset: auto). Auto takes OpenBLAS when it loads, unless the managed kernel is vectorised
/// (AVX2 or AVX-512) and OpenBLAS fell back to a kernel family without AVX2: OpenBLAS picks
/// its kernels from the processor's model number, and on a model it does not know (a new
/// Xeon in a virtual machine, for example) it runs SSE3 code ("Prescott") several times
/// slower than the managed kernel. The variable is read on the first GEMM (or `active ()`),
/// not at start-up; `setProvider` overrides it.
module GemmProvider =

    /// Products with fewer than this many multiply-adds (m·n·k) always run on the managed
    /// kernel, even when OpenBLAS is active: below it the pinning and native call overhead is
    /// comparable to the work. (Both paths meet the same accuracy contract; the setting is
    /// still resolved first, so a bad one raises whatever the size.)
    [<Literal>]
    let TinyWork = 4096L

    /// Parses a GROUPEDNEWTON_BLAS value (case-insensitive, surrounding blanks ignored;
    /// null or empty means auto). Raises BackendException for anything else.
    let internal parseSetting (value: string | null) : BlasSetting =
        match value with
        | Null -> BlasSetting.Auto
        | NonNull v ->
            match v.Trim().ToLowerInvariant() with
            | ""
            | "auto" -> BlasSetting.Auto
            | "managed" -> BlasSetting.Managed
            | "openblas" -> BlasSetting.OpenBlas
            | _ -> raise (BackendException(sprintf "GROUPEDNEWTON_BLAS must be 'managed', 'openblas' or 'auto', got '%s'" v))

    /// OpenBLAS kernel families (openblas_get_corename) built on AVX2 (256-bit FMA).
    let private avx2Cores = set [ "haswell"; "zen"; "excavator" ]

    /// OpenBLAS kernel families built on AVX-512.
    let private avx512Cores = set [ "skylakex"; "cooperlake"; "sapphirerapids" ]

    /// Whether Auto takes OpenBLAS, given its core name and the managed kernel family:
    /// only when OpenBLAS's kernels are at least as wide as the managed ones. (OpenBLAS
    /// names a core it does not know by an older family, e.g. Haswell on a newer AVX-512
    /// AMD part, where the managed AVX-512 kernel runs about 1.8x faster.)
    let internal autoPrefersOpenBlas (coreName: string) (managedKernel: string) =
        let core = coreName.Trim().ToLowerInvariant()

        match managedKernel with
        | "scalar" -> true
        | "avx2" -> avx2Cores.Contains core || avx512Cores.Contains core
        | _ -> avx512Cores.Contains core

    /// Whether a setting selects OpenBLAS. Only Auto and OpenBlas ever load the library.
    let internal resolve (setting: BlasSetting) : bool =
        match setting with
        | BlasSetting.Managed -> false
        | BlasSetting.Auto -> OpenBlas.isAvailable () && autoPrefersOpenBlas (OpenBlas.coreName ()) (Gemm.kernel ())
        | BlasSetting.OpenBlas ->
            if OpenBlas.isAvailable () then
                true
            else
                raise (
                    BackendException
                        "GROUPEDNEWTON_BLAS=openblas but OpenBLAS could not be loaded: apt-get install libopenblas0-pthread, or set GROUPEDNEWTON_BLAS=managed"
                )

    // 0 = not decided yet, 1 = managed, 2 = OpenBLAS. A failed decision is not cached, so a
    // bad setting raises on every GEMM until it is fixed or overridden.
    let mutable private state = 0

    let private useOpenBlas () =
        match state with
        | 2 -> true
        | 1 -> false
        | _ ->
            let blas = resolve (parseSetting (Environment.GetEnvironmentVariable "GROUPEDNEWTON_BLAS"))
            state <- (if blas then 2 else 1)
            blas

    /// Overrides GROUPEDNEWTON_BLAS: "managed", "openblas" or "auto". Raises BackendException
    /// for an unknown name, or for "openblas" when the library cannot be loaded.
    let setProvider (name: string) : unit =
        let blas = resolve (parseSetting name)
        state <- (if blas then 2 else 1)

    /// The implementation in use: "openblas" or "managed".
    let active () : string = if useOpenBlas () then "openblas" else "managed"

    /// Products with fewer multiply-adds than this run on one thread.
    [<Literal>]
    let ParallelWork = 262144L

    /// OpenBLAS always runs single-threaded here: a product is split into column (or row)
    /// blocks over the managed backend's worker team, so OpenBLAS's own threads, which spin
    /// long after each call, never compete with the team for the cores.
    let private splitOpenBlas (g: GemmCall<'T>) =
        let t = Threading.get ()

        if t <= 1 || GemmCall.work g < ParallelWork then
            OpenBlas.gemm g 1
        else
            // split the longer side of C into whole 16-wide blocks, one per thread
            let splitN = g.N >= g.M
            let len = if splitN then g.N else g.M
            let chunk = ((len + t - 1) / t + 15) / 16 * 16
            let parts = (len + chunk - 1) / chunk

            Threading.forParts parts (fun p ->
                let lo = p * chunk
                let w = min len (lo + chunk) - lo

                if splitN then
                    let bOff = if g.TransB then g.BOff + lo * g.Ldb else g.BOff + lo
                    OpenBlas.gemm { g with N = w; BOff = bOff; COff = g.COff + lo } 1
                else
                    let aOff = if g.TransA then g.AOff + lo else g.AOff + lo * g.Lda
                    OpenBlas.gemm { g with M = w; AOff = aOff; COff = g.COff + lo * g.Ldc } 1)

    /// C = op(A)·op(B) (see GemmCall), float32 or float64, on the selected implementation
    /// with Threading.get () threads.
    let internal gemm<'T when 'T: unmanaged> (g: GemmCall<'T>) : unit =
        if useOpenBlas () && GemmCall.work g >= TinyWork then
            splitOpenBlas g
        else
            Gemm.run g (Threading.get ())
