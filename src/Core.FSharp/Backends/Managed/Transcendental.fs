namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86

/// Single-pass vectorised float32 exp, tanh and sigmoid (System.Numerics.Tensors computes
/// tanh and sigmoid element by element for float32). exp: x = n·ln2 + r with |r| ≤ ln2/2
/// (two-part ln2), eʳ by its degree-7 Taylor polynomial (error below 2e-8 relative), times
/// 2ⁿ built in the exponent bits; inputs beyond the float32 range give +∞ or 0.
///   tanh x    = sign(x)·(1 − e)/(1 + e), e = exp(−2|x|), for |x| ≥ 0.3; the odd Taylor
///               polynomial to x⁹ below;
///   sigmoid x = 1/(1 + exp(−x)).
/// Relative errors stay within a few float32 ulps (checked by the kernel tests).
module internal Transcendental =
    let inline private fma (a: Vector256<float32>) (b: Vector256<float32>) (c: Vector256<float32>) =
        if Fma.IsSupported then Fma.MultiplyAdd(a, b, c) else a * b + c

    let private log2e = Vector256.Create 1.44269504088896341f
    let private ln2hi = Vector256.Create 0.693359375f
    let private ln2lo = Vector256.Create -2.12194440e-4f
    let private hiLimit = Vector256.Create 88.72283f
    let private loLimit = Vector256.Create -87.33654f

    /// eˣ for 8 lanes.
    let inline private exp8 (x: Vector256<float32>) =
        let xc = Vector256.Min(Vector256.Max(x, loLimit), hiLimit)
        let n = Vector256.Round(xc * log2e)
        let r = fma n (Vector256.Create -1.0f * ln2lo) (fma n (Vector256.Create -1.0f * ln2hi) xc)
        let mutable p = Vector256.Create(1.0f / 5040.0f)
        p <- fma p r (Vector256.Create(1.0f / 720.0f))
        p <- fma p r (Vector256.Create(1.0f / 120.0f))
        p <- fma p r (Vector256.Create(1.0f / 24.0f))
        p <- fma p r (Vector256.Create(1.0f / 6.0f))
        p <- fma p r (Vector256.Create 0.5f)
        p <- fma p r (Vector256.Create 1.0f)
        p <- fma p r (Vector256.Create 1.0f)
        // 2ⁿ in two halves so that n = 128 (just below overflow) stays representable
        let ni = Vector256.ConvertToInt32 n
        let half = Vector256.ShiftRightArithmetic(ni, 1)
        let s1 = Vector256.ShiftLeft(half + Vector256.Create 127, 23).AsSingle()
        let s2 = Vector256.ShiftLeft(ni - half + Vector256.Create 127, 23).AsSingle()
        let y = p * s1 * s2

        let y =
            Vector256.ConditionalSelect(Vector256.GreaterThan(x, hiLimit), Vector256.Create Single.PositiveInfinity, y)

        Vector256.ConditionalSelect(Vector256.LessThan(x, loLimit), Vector256<float32>.Zero, y)

    let inline private tanhSmall (x: float32) =
        let x2 = x * x
        x + x * x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f + x2 * (62.0f / 2835.0f))))

    let inline private tanh8 (x: Vector256<float32>) =
        let a = Vector256.Abs x
        let e = exp8 (Vector256.Create -2.0f * a)
        let one = Vector256.Create 1.0f
        let big = (one - e) / (one + e)
        let large = Vector256.BitwiseOr(big, Vector256.BitwiseAnd(x, Vector256.Create -0.0f))
        let x2 = x * x
        let poly = fma x2 (Vector256.Create(62.0f / 2835.0f)) (Vector256.Create(-17.0f / 315.0f))
        let poly = fma x2 poly (Vector256.Create(2.0f / 15.0f))
        let poly = fma x2 poly (Vector256.Create(-1.0f / 3.0f))
        let small = fma (x * x2) poly x
        Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create 0.3f), small, large)

    let inline private sigmoid8 (x: Vector256<float32>) =
        let one = Vector256.Create 1.0f
        one / (one + exp8 (-x))

    let inline private apply
        ([<InlineIfLambda>] f8: Vector256<float32> -> Vector256<float32>)
        ([<InlineIfLambda>] f1: float32 -> float32)
        (src: float32[])
        (dst: float32[])
        (offset: int)
        (count: int)
        =
        let mutable i = offset
        let stop = offset + count

        if Vector256.IsHardwareAccelerated then
            while i + 8 <= stop do
                (f8 (Vector256.Create(src, i))).CopyTo(dst, i)
                i <- i + 8

        while i < stop do
            dst.[i] <- f1 src.[i]
            i <- i + 1

    let exp32 src dst offset count = apply exp8 MathF.Exp src dst offset count

    let tanh32 src dst offset count =
        apply tanh8 (fun x -> if MathF.Abs x < 0.3f then tanhSmall x else MathF.Tanh x) src dst offset count

    let sigmoid32 src dst offset count = apply sigmoid8 (fun x -> 1.0f / (1.0f + MathF.Exp -x)) src dst offset count
