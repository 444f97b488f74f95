module GroupedNewton.Tests.GemmTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Backends
open GroupedNewton.Backends.Managed
open GroupedNewton.Backends.Blas

// ---------------------------------------------------------------------------------------
// Problem set-up: op(A) is m×k, op(B) is k×n, stored row-major with optional padding of the
// rows (lda/ldb/ldc larger than the row) and a leading offset. Every slot of every array is
// filled (padding included) so that reading outside the operand would show in the result,
// and C starts as garbage so that "overwrite, not accumulate" is checked. Inputs come from
// a seeded generator: every run sees the same numbers.
// ---------------------------------------------------------------------------------------

type private Layout = {
    TransA: bool
    TransB: bool
    M: int
    N: int
    K: int
    AOff: int
    Lda: int
    BOff: int
    Ldb: int
    COff: int
    Ldc: int
    ALen: int
    BLen: int
    CLen: int
}

let private layout (transA, transB, m, n, k, padded) =
    let pad, off = if padded then 3, 5 else 0, 0
    let aRows, aCols = if transA then k, m else m, k
    let bRows, bCols = if transB then n, k else k, n
    let lda, ldb, ldc = aCols + pad, bCols + pad + 2, n + pad + 1
    let len rows ld off = off + rows * ld + pad

    {
        TransA = transA
        TransB = transB
        M = m
        N = n
        K = k
        AOff = off
        Lda = lda
        BOff = off + 2
        Ldb = ldb
        COff = off + 1
        Ldc = ldc
        ALen = len aRows lda off
        BLen = len bRows ldb (off + 2)
        CLen = len m ldc (off + 1)
    }

let private opA (l: Layout) (a: float[]) i p = if l.TransA then a.[l.AOff + p * l.Lda + i] else a.[l.AOff + i * l.Lda + p]

let private opB (l: Layout) (b: float[]) p j = if l.TransB then b.[l.BOff + j * l.Ldb + p] else b.[l.BOff + p * l.Ldb + j]

/// Naive triple loop in float64: the product and Σ|a||b| (the scale of the rounding error).
let private reference (l: Layout) (a: float[]) (b: float[]) =
    let c = Array2D.zeroCreate l.M l.N
    let s = Array2D.zeroCreate l.M l.N

    for i in 0 .. l.M - 1 do
        for j in 0 .. l.N - 1 do
            let mutable acc = 0.0
            let mutable mag = 0.0

            for p in 0 .. l.K - 1 do
                let x = opA l a i p * opB l b p j
                acc <- acc + x
                mag <- mag + abs x

            c.[i, j] <- acc
            s.[i, j] <- mag

    c, s

let private randomArray (rng: Random) len = Array.init len (fun _ -> rng.NextDouble() * 2.0 - 1.0)

/// A C array full of garbage; the slots outside the m×n block must keep it.
let private garbage len = Array.init len (fun i -> 1.0e6 + float i)

/// Checks C against the reference (error ≤ tol·Σ|a||b|, plus a hair for k = 0) and that no
/// slot outside the m×n block was touched.
let private check (l: Layout) (tol: float) (cExpected: float[,]) (scale: float[,]) (c: float[]) =
    let inBlock = Array.zeroCreate<bool> l.CLen
    let mutable worst = -1.0
    let mutable wi, wj = 0, 0

    for i in 0 .. l.M - 1 do
        for j in 0 .. l.N - 1 do
            let idx = l.COff + i * l.Ldc + j
            inBlock.[idx] <- true
            let err = abs (c.[idx] - cExpected.[i, j]) / (scale.[i, j] + 1e-300)

            if Double.IsNaN c.[idx] || err > worst then
                worst <- (if Double.IsNaN c.[idx] then infinity else err)
                wi <- i
                wj <- j

    if l.M > 0 && l.N > 0 then
        let idx = l.COff + wi * l.Ldc + wj
        Assert.That(c.[idx], Is.EqualTo(cExpected.[wi, wj]).Within(tol * scale.[wi, wj] + 1e-300), sprintf "C[%d, %d] of %A" wi wj l)

    let g = garbage l.CLen

    for idx in 0 .. l.CLen - 1 do
        if not inBlock.[idx] && c.[idx] <> g.[idx] then
            Assert.Fail(sprintf "slot %d outside the C block was written (%A)" idx l)

/// Assert.Throws, with the exception as a non-null value.
let private throws<'E when 'E :> exn and 'E: not struct and 'E: not null> (f: unit -> unit) : 'E =
    match Assert.Throws<'E>(TestDelegate f) with
    | Null -> failwith "Assert.Throws returned null"
    | NonNull e -> e

type private Impl =
    | Managed
    | OpenBlasDirect
    | Provider

let private runOn<'T when 'T: unmanaged> (impl: Impl) (l: Layout) (a: 'T[]) (b: 'T[]) (c: 'T[]) (threads: int) =
    let g =
        GemmCall.ofArgs (l.TransA, l.TransB, l.M, l.N, l.K, a, l.AOff, l.Lda, b, l.BOff, l.Ldb, c, l.COff, l.Ldc)

    match impl with
    | Managed -> Gemm.run g threads
    | OpenBlasDirect -> OpenBlas.gemm g threads
    | Provider -> GemmProvider.gemm g

let private runF32 (impl: Impl) (l: Layout) (a: float[]) (b: float[]) (threads: int) =
    // The garbage values are integers below 2^24, exact in float32.
    let c = garbage l.CLen |> Array.map float32
    runOn impl l (Array.map float32 a) (Array.map float32 b) c threads
    Array.map float c

let private runF64 (impl: Impl) (l: Layout) (a: float[]) (b: float[]) (threads: int) =
    let c = garbage l.CLen
    runOn impl l a b c threads
    c

[<Literal>]
let private TolF32 = 1e-5

[<Literal>]
let private TolF64 = 1e-13

/// Runs one product in both dtypes and checks it against the float64 reference.
let private verify impl (transA, transB, m, n, k, padded) threads =
    let l = layout (transA, transB, m, n, k, padded)
    let rng = Random(1000 * m + 100 * n + k + (if transA then 7 else 0) + (if transB then 13 else 0))
    let a = randomArray rng l.ALen
    let b = randomArray rng l.BLen
    // float32: the reference uses the float32-rounded inputs, exactly as the kernel sees them.
    let a32 = a |> Array.map (fun x -> float (float32 x))
    let b32 = b |> Array.map (fun x -> float (float32 x))
    let ref32, scale32 = reference l a32 b32
    check l TolF32 ref32 scale32 (runF32 impl l a b threads)
    let ref64, scale64 = reference l a b
    check l TolF64 ref64 scale64 (runF64 impl l a b threads)

/// Odd sizes, sizes at and around the tile (6×16 / 6×8) and block (k 256, m 144) edges,
/// rectangular and skinny products, and one with n past the 4096-column block.
let private shapes = [
    1, 1, 1
    7, 7, 7
    13, 13, 13
    33, 33, 33
    65, 65, 65
    129, 129, 129
    1, 129, 65
    129, 1, 33
    7, 65, 129
    65, 13, 300
    33, 129, 7
    6, 16, 256
    12, 32, 257
    150, 40, 520
    129, 33, 129
    2, 4100, 3
    10, 48, 300
    16, 40, 70
]

let shapeCases: TestCaseData seq =
    seq {
        for (m, n, k) in shapes do
            for transA in [ false; true ] do
                for transB in [ false; true ] do
                    for padded in [ false; true ] do
                        for threads in [ 1; 2 ] do
                            yield TestCaseData(m, n, k, transA, transB, padded, threads)
    }

// ---------------------------------------------------------------------------------------
// Managed kernel
// ---------------------------------------------------------------------------------------

[<TestCaseSource(nameof shapeCases)>]
let ``managed GEMM matches the naive product`` (m: int, n: int, k: int, transA: bool, transB: bool, padded: bool, threads: int) =
    verify Managed (transA, transB, m, n, k, padded) threads

/// The portable fallback kernel and the AVX-512 kernel (in software emulation where the
/// hardware lacks it) share the packing and the driver; check them on a few shapes too.
[<TestCase("scalar", 1)>]
[<TestCase("scalar", 2)>]
[<TestCase("avx512", 1)>]
[<TestCase("avx512", 2)>]
let ``every managed micro-kernel family matches the naive product`` (kernel: string, threads: int) =
    let saved = Gemm.kernel ()

    try
        Gemm.setKernel kernel

        for (m, n, k) in [ 1, 1, 1; 7, 13, 33; 65, 33, 13; 13, 70, 260; 70, 65, 20 ] do
            for transA in [ false; true ] do
                for transB in [ false; true ] do
                    verify Managed (transA, transB, m, n, k, true) threads
    finally
        Gemm.setKernel saved

[<TestCase(false)>]
[<TestCase(true)>]
let ``k = 0 gives zeros and leaves the rest of C alone`` (useOpenBlas: bool) =
    if useOpenBlas then
        Assume.That(OpenBlas.isAvailable (), "OpenBLAS is not installed")

    let impl = if useOpenBlas then OpenBlasDirect else Managed

    for (transA, transB) in [ false, false; true, false; false, true; true, true ] do
        for (m, n) in [ 1, 1; 7, 13; 65, 33 ] do
            for padded in [ false; true ] do
                let l = layout (transA, transB, m, n, 0, padded)
                let zeros = Array2D.zeroCreate m n
                let ones = Array2D.create m n 1.0
                let a = randomArray (Random 3) (max 1 l.ALen)
                let b = randomArray (Random 4) (max 1 l.BLen)
                check l 0.0 zeros ones (runF32 impl l a b 1)
                check l 0.0 zeros ones (runF64 impl l a b 2)

[<Test>]
let ``managed results are bit-identical across calls and thread counts`` () =
    let l = layout (false, true, 131, 97, 300, true)
    let rng = Random 11
    let a = randomArray rng l.ALen
    let b = randomArray rng l.BLen
    let r1 = runF64 Managed l a b 1
    let r2 = runF64 Managed l a b 2
    let r2' = runF64 Managed l a b 2
    Assert.That(r2', Is.EqualTo(box (r2)))
    Assert.That(r2, Is.EqualTo(box (r1)))
    let s1 = runF32 Managed l a b 1
    let s2 = runF32 Managed l a b 2
    let s2' = runF32 Managed l a b 2
    Assert.That(s2', Is.EqualTo(box (s2)))
    Assert.That(s2, Is.EqualTo(box (s1)))

[<Test>]
let ``operands that do not fit their arrays are rejected`` () =
    let a = Array.zeroCreate<float32> 10
    let b = Array.zeroCreate<float32> 10
    let c = Array.zeroCreate<float32> 10
    // 4×4 · 4×4 needs 16 elements per operand.
    Assert.Throws<ArgumentException>(fun () -> Gemm.run (GemmCall.ofArgs (false, false, 4, 4, 4, a, 0, 4, b, 0, 4, c, 0, 4)) 1)
    |> ignore

    Assert.Throws<ArgumentException>(fun () -> Gemm.run (GemmCall.ofArgs (false, false, 2, 2, 2, a, 0, 1, b, 0, 2, c, 0, 2)) 1)
    |> ignore

    Assert.Throws<ArgumentException>(fun () -> Gemm.run (GemmCall.ofArgs (false, false, 2, 2, 2, a, 9, 2, b, 0, 2, c, 0, 2)) 1)
    |> ignore

// ---------------------------------------------------------------------------------------
// OpenBLAS (inconclusive when the library is not installed)
// ---------------------------------------------------------------------------------------

[<TestCaseSource(nameof shapeCases)>]
let ``OpenBLAS GEMM matches the naive product`` (m: int, n: int, k: int, transA: bool, transB: bool, padded: bool, threads: int) =
    Assume.That(OpenBlas.isAvailable (), "OpenBLAS is not installed")
    verify OpenBlasDirect (transA, transB, m, n, k, padded) threads

[<Test>]
let ``OpenBLAS reports a core name`` () =
    Assume.That(OpenBlas.isAvailable (), "OpenBLAS is not installed")
    Assert.That(OpenBlas.coreName (), Is.Not.Empty)

// ---------------------------------------------------------------------------------------
// Provider selection
// ---------------------------------------------------------------------------------------

/// Runs f with a provider override, restoring automatic selection afterwards.
let private withProvider (name: string) (f: unit -> unit) =
    try
        GemmProvider.setProvider name
        f ()
    finally
        GemmProvider.setProvider "auto"

[<Test>]
let ``setProvider managed selects the managed kernel`` () =
    withProvider "managed" (fun () ->
        Assert.That(GemmProvider.active (), Is.EqualTo "managed")

        for (m, n, k) in [ 1, 1, 1; 7, 13, 33; 65, 65, 65 ] do
            for transA in [ false; true ] do
                for transB in [ false; true ] do
                    verify Provider (transA, transB, m, n, k, true) 1
        // Same kernel, same thread count: bit-identical to calling it directly.
        let l = layout (false, false, 40, 50, 60, false)
        let rng = Random 5
        let a = randomArray rng l.ALen
        let b = randomArray rng l.BLen
        Assert.That(runF64 Provider l a b 1, Is.EqualTo(box (runF64 Managed l a b (Threading.get ())))))

[<Test>]
let ``setProvider openblas selects OpenBLAS`` () =
    Assume.That(OpenBlas.isAvailable (), "OpenBLAS is not installed")

    withProvider "openblas" (fun () ->
        Assert.That(GemmProvider.active (), Is.EqualTo "openblas")

        for (m, n, k) in [ 1, 1, 1; 7, 13, 33; 65, 65, 65 ] do
            for transA in [ false; true ] do
                for transB in [ false; true ] do
                    verify Provider (transA, transB, m, n, k, true) 1)

[<Test>]
let ``setProvider openblas fails clearly when OpenBLAS is missing`` () =
    Assume.That(not (OpenBlas.isAvailable ()), "OpenBLAS is installed")
    let ex = throws<BackendException>(fun () -> GemmProvider.setProvider "openblas")
    Assert.That(ex.Message, Does.Contain "libopenblas0-pthread")
    Assert.That(ex.Message, Does.Contain "GROUPEDNEWTON_BLAS=managed")

[<Test>]
let ``setProvider auto picks OpenBLAS exactly when it loads with vectorised kernels`` () =
    withProvider "auto" (fun () ->
        let expected =
            if OpenBlas.isAvailable () && GemmProvider.autoPrefersOpenBlas (OpenBlas.coreName ()) (Gemm.kernel ()) then
                "openblas"
            else
                "managed"

        Assert.That(GemmProvider.active (), Is.EqualTo expected))

[<TestCase("Haswell", "avx2", true)>]
[<TestCase("Zen", "avx2", true)>]
[<TestCase("Zen", "avx512", false)>]
[<TestCase("Haswell", "avx512", false)>]
[<TestCase("SkylakeX", "avx512", true)>]
[<TestCase("SAPPHIRERAPIDS", "avx512", true)>]
[<TestCase("Prescott", "avx512", false)>]
[<TestCase("Prescott", "avx2", false)>]
[<TestCase("Sandybridge", "avx2", false)>]
[<TestCase("Prescott", "scalar", true)>]
[<TestCase("NEOVERSEN1", "scalar", true)>]
let ``auto takes OpenBLAS only when its kernels are at least as wide as the managed ones`` (core: string, managed: string, expected: bool) =
    Assert.That(GemmProvider.autoPrefersOpenBlas core managed, Is.EqualTo expected)

[<Test>]
let ``an unknown provider name is rejected`` () =
    let ex = throws<BackendException>(fun () -> GemmProvider.setProvider "mkl")
    Assert.That(ex.Message, Does.Contain "mkl")

[<TestCase("managed", "Managed")>]
[<TestCase("MANAGED", "Managed")>]
[<TestCase(" openblas ", "OpenBlas")>]
[<TestCase("OpenBLAS", "OpenBlas")>]
[<TestCase("auto", "Auto")>]
[<TestCase("", "Auto")>]
let ``GROUPEDNEWTON_BLAS values are parsed`` (value: string, expected: string) =
    Assert.That(sprintf "%A" (GemmProvider.parseSetting value), Is.EqualTo expected)

[<Test>]
let ``an unset GROUPEDNEWTON_BLAS means auto`` () = Assert.That(GemmProvider.parseSetting null, Is.EqualTo BlasSetting.Auto)

[<TestCase("blas")>]
[<TestCase("open-blas")>]
[<TestCase("1")>]
let ``an invalid GROUPEDNEWTON_BLAS value raises BackendException naming it`` (value: string) =
    let ex = throws<BackendException>(fun () -> GemmProvider.parseSetting value |> ignore)
    Assert.That(ex.Message, Does.Contain value)
    Assert.That(ex.Message, Does.Contain "GROUPEDNEWTON_BLAS")
