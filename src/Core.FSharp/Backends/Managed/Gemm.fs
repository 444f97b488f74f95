#nowarn "9"   // nativeptr, as in Gemm.KernelInterface.fs

namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.CompilerServices
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop

/// One product C = op(A)·op(B) in row-major storage, C overwritten (not accumulated); op(X) is
/// Xᵀ when the flag is set. A is m×k (k×m when TransA), read from AOff with row stride Lda; B
/// is k×n (n×k when TransB) from BOff with stride Ldb; C is m×n from COff with stride Ldc.
/// The managed kernel, OpenBLAS and the provider that picks between them all take it.
[<Struct>]
type internal GemmCall<'T> = {
    TransA: bool
    TransB: bool
    M: int
    N: int
    K: int
    A: 'T[]
    AOff: int
    Lda: int
    B: 'T[]
    BOff: int
    Ldb: int
    C: 'T[]
    COff: int
    Ldc: int
}

module internal GemmCall =
    /// The call from positional arguments, in the order of the BLAS interface.
    let ofArgs (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc) : GemmCall<'T> = {
        TransA = transA
        TransB = transB
        M = m
        N = n
        K = k
        A = a
        AOff = aOff
        Lda = lda
        B = b
        BOff = bOff
        Ldb = ldb
        C = c
        COff = cOff
        Ldc = ldc
    }

    /// m·n·k, the multiply-adds of the product.
    let work (g: GemmCall<'T>) = int64 g.M * int64 g.N * int64 g.K

/// The blocked driver (GotoBLAS/BLIS loop order): jc over Nc columns → pc over Kc depth
/// (pack B block) → ic over Mc rows (pack A block) → jr over Nr columns → ir over 6 rows
/// (micro-kernel). The k blocking depends on k alone, so each C element sees the same
/// operations in the same order whatever the tile position and thread split.
[<AbstractClass; Sealed>]
type internal GemmDriver<'T, 'K when 'T: unmanaged and 'K: struct and 'K :> IMicroKernel<'T>> =

    static member inline private Align64(bytes: int) = (bytes + 63) &&& ~~~63

    /// Computes the C block rows [i0, i1) × columns [j0, j1) of `g` on the calling thread; a,
    /// b and c point at the operands' first elements (g's offsets already applied).
    static member Block(g: GemmCall<'T>, a: nativeptr<'T>, b: nativeptr<'T>, c: nativeptr<'T>, i0: int, i1: int, j0: int, j1: int) =
        let transA, transB, k, lda, ldb, ldc = g.TransA, g.TransB, g.K, g.Lda, g.Ldb, g.Ldc
        let mutable kern = Unchecked.defaultof<'K>
        let nr = kern.Nr
        let mcB = kern.Mc
        let kcB = kern.Kc
        let ncB = kern.Nc
        let sz = sizeof<'T>
        let kcMax = min kcB k
        let mcMax = (min mcB (i1 - i0) + 5) / 6 * 6
        let ncMax = (min ncB (j1 - j0) + nr - 1) / nr * nr
        let aBytes = GemmDriver<'T, 'K>.Align64(mcMax * kcMax * sz + 64) // + slack: see GemmPack.SixRows
        let bBytes = GemmDriver<'T, 'K>.Align64(ncMax * kcMax * sz)
        let tBytes = 6 * nr * sz
        let buf = GemmBuffers.Get(aBytes + bBytes + tBytes)
        let packA = NativePtr.ofNativeInt<'T> buf
        let packB = NativePtr.ofNativeInt<'T>(buf + nativeint aBytes)
        let tile = NativePtr.ofNativeInt<'T>(buf + nativeint (aBytes + bBytes))
        // Blocks of (nearly) equal size rather than full blocks and a thin remainder: k = 784
        // runs as 4 × 196 instead of 3 × 256 + 16. The k blocks depend on k alone, so the
        // operations applied to a C element never depend on the thread split.
        let balanced (len: int) (block: int) (multiple: int) =
            let count = (len + block - 1) / block
            ((len + count - 1) / count + multiple - 1) / multiple * multiple

        let kcStep = balanced k kcB 8
        let mcStep = balanced (i1 - i0) mcB 6
        let ncStep = balanced (j1 - j0) ncB nr
        let mutable jc = j0

        while jc < j1 do
            let nc = min ncStep (j1 - jc)
            let mutable pc = 0

            while pc < k do
                let kc = min kcStep (k - pc)
                let accumulate = pc > 0
                GemmPack.B<'T>(transB, b, ldb, pc, kc, jc, nc, nr, packB)
                let mutable ic = i0

                while ic < i1 do
                    let mc = min mcStep (i1 - ic)
                    GemmPack.A<'T>(transA, a, lda, ic, mc, pc, kc, packA)
                    let mutable jr = 0

                    while jr < nc do
                        let cols = min nr (nc - jr)
                        let pb = NativePtr.add packB (jr * kc)
                        let cBase = NativePtr.add c (ic * ldc + jc + jr)
                        let mutable ir = 0

                        while ir < mc do
                            let rows = min 6 (mc - ir)
                            let pa = NativePtr.add packA (ir * kc)
                            let pcT = NativePtr.add cBase (ir * ldc)

                            if cols = nr then
                                kern.Run(rows, kc, pa, pb, pcT, ldc, accumulate)
                            else
                                // a right-edge tile goes through a scratch tile, then its corner into C
                                kern.Run(rows, kc, pa, pb, tile, nr, false)
                                kern.StoreEdge(tile, pcT, ldc, rows, cols, accumulate)

                            ir <- ir + 6

                        jr <- jr + nr

                    ic <- ic + mcStep

                pc <- pc + kcStep

            jc <- jc + ncStep

    /// C = op(A)·op(B) for k ≥ 1, split over `threads` when the product is big enough. The
    /// split is along n (chunks of whole Nr tiles) when n ≥ m, else along m (whole 6-row
    /// tiles); chunk bounds depend only on the sizes and the thread count.
    static member Run(g: GemmCall<'T>, a: nativeptr<'T>, b: nativeptr<'T>, c: nativeptr<'T>, threads: int) =
        let m, n, k = g.M, g.N, g.K
        let nr = Unchecked.defaultof<'K>.Nr
        let work = int64 m * int64 n * int64 k
        let splitN = n >= m
        let unit = if splitN then nr else 6
        let len = if splitN then n else m
        let tiles = (len + unit - 1) / unit
        let t = min threads tiles

        if t <= 1 || work < 64L * 64L * 64L then
            GemmDriver<'T, 'K>.Block(g, a, b, c, 0, m, 0, n)
        else
            let chunk = (tiles + t - 1) / t * unit
            let parts = (len + chunk - 1) / chunk

            let body (part: int) =
                let lo = part * chunk
                let hi = min len (lo + chunk)

                if splitN then
                    GemmDriver<'T, 'K>.Block(g, a, b, c, 0, m, lo, hi)
                else
                    GemmDriver<'T, 'K>.Block(g, a, b, c, lo, hi, 0, n)

            Threading.forParts parts body

/// Managed GEMM: C = op(A)·op(B), row-major, C overwritten (not accumulated).
///
/// GotoBLAS-style: op(B) is packed in Kc×Nc blocks (Nr-column micro-panels), op(A) in Mc×Kc
/// blocks (6-row micro-panels), transposes being absorbed by the packing, and a
/// register-tiled FMA micro-kernel computes 6×Nr tiles of C:
///   AVX2+FMA  float32 6×16, float64 6×8 (12 ymm accumulators), Mc 144 / 72, Kc 256, Nc 4096;
///   AVX-512   float32 6×32, float64 6×16 (only when Vector512 is hardware accelerated);
///   otherwise a scalar kernel on the same packed layout.
/// Bottom-edge tiles with fewer than 6 rows use row-reduced kernels; tiles narrower than Nr
/// go through a scratch tile. Work is split over up to `threads` threads (Threading.forParts)
/// once m·n·k ≥ 64³; every C element is computed by the same operations whatever the
/// split, so results are reproducible (and equal across thread counts).
/// Note: F# does not emit MethodImplOptions.AggressiveOptimization, so the kernels start
/// as tier-0 code: the first call or two are slow, steady state is reached quickly.
module internal Gemm =

    /// The micro-kernel family the hardware supports: "avx512", "avx2" or "scalar".
    let internal detectedKernel =
        if Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Fma.IsSupported then "avx512"
        elif Avx2.IsSupported && Fma.IsSupported then "avx2"
        else "scalar"

    let mutable private kernelChoice = detectedKernel

    /// The micro-kernel family in use.
    let internal kernel () = kernelChoice

    /// Forces a micro-kernel family (tests): "avx512" runs in software emulation when the
    /// hardware lacks it, which is slow but exact; "avx2" needs FMA; "auto" restores detection.
    let internal setKernel (name: string) =
        match name with
        | ""
        | "auto" -> kernelChoice <- detectedKernel
        | "avx512"
        | "scalar" -> kernelChoice <- name
        | "avx2" when Fma.IsSupported -> kernelChoice <- name
        | _ -> invalidArg "name" (sprintf "unsupported GEMM kernel '%s' on this machine" name)

    let private check (name: string) (len: int) (off: int) (rows: int) (cols: int) (ld: int) =
        if off < 0 then
            invalidArg name (sprintf "gemm: negative offset %d" off)

        if rows > 0 && cols > 0 then
            if rows > 1 && ld < cols then
                invalidArg name (sprintf "gemm: leading dimension %d is smaller than the row length %d" ld cols)

            let last = int64 off + int64 (rows - 1) * int64 ld + int64 cols

            if last > int64 len then
                invalidArg
                    name
                    (sprintf "gemm: a %dx%d operand with stride %d at offset %d does not fit in %d elements" rows cols ld off len)

    /// Raises ArgumentException naming the operand when a size, offset or stride does not fit.
    let internal validate (g: GemmCall<'T>) threads =
        if g.M < 0 || g.N < 0 || g.K < 0 then
            invalidArg "m" (sprintf "gemm: negative size m=%d n=%d k=%d" g.M g.N g.K)

        if threads < 1 then
            invalidArg "threads" (sprintf "gemm: thread count must be at least 1, got %d" threads)

        if g.M > 0 && g.N > 0 && g.K > 0 then
            if g.TransA then
                check "a" g.A.Length g.AOff g.K g.M g.Lda
            else
                check "a" g.A.Length g.AOff g.M g.K g.Lda

            if g.TransB then
                check "b" g.B.Length g.BOff g.N g.K g.Ldb
            else
                check "b" g.B.Length g.BOff g.K g.N g.Ldb

        check "c" g.C.Length g.COff g.M g.N g.Ldc

    /// C = 0, for k = 0.
    let internal zeroC (g: GemmCall<'T>) =
        for i in 0 .. g.M - 1 do
            Span<'T>(g.C, g.COff + i * g.Ldc, g.N).Clear()

    let private drive<'T, 'K when 'T: unmanaged and 'K: struct and 'K :> IMicroKernel<'T>> (g: GemmCall<'T>) threads =
        use pa = fixed g.A
        use pb = fixed g.B
        use pc = fixed g.C
        let a, b, c = NativePtr.add pa g.AOff, NativePtr.add pb g.BOff, NativePtr.add pc g.COff
        GemmDriver<'T, 'K>.Run(g, a, b, c, threads)

    /// The same call over another element type of the same size (float32 or float64 for 'T).
    let inline private retype<'T, 'U> (g: GemmCall<'T>) =
        let mutable g = g
        Unsafe.As<GemmCall<'T>, GemmCall<'U>>(&g)

    /// C = op(A)·op(B) (see GemmCall) for float32 or float64, on up to `threads` threads.
    let run<'T when 'T: unmanaged> (g: GemmCall<'T>) (threads: int) : unit =
        validate g threads

        if g.M > 0 && g.N > 0 then
            if g.K = 0 then
                zeroC g
            elif typeof<'T> = typeof<float32> then
                match kernelChoice with
                | "avx2" -> drive<float32, KernelF32Avx2> (retype g) threads
                | "avx512" -> drive<float32, KernelF32Avx512> (retype g) threads
                | _ -> drive<float32, KernelF32Scalar> (retype g) threads
            elif typeof<'T> = typeof<float> then
                match kernelChoice with
                | "avx2" -> drive<float, KernelF64Avx2> (retype g) threads
                | "avx512" -> drive<float, KernelF64Avx512> (retype g) threads
                | _ -> drive<float, KernelF64Scalar> (retype g) threads
            else
                invalidArg "g" (sprintf "gemm: element type %s is not float32 or float64" typeof<'T>.Name)
