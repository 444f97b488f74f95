namespace GroupedNewton.Backends.Managed

open System
open System.Numerics.Tensors
open System.Runtime.Intrinsics

/// Vectorised float32 tanh and sigmoid. System.Numerics.Tensors evaluates these two
/// element by element for float32 (~30 ns each) but has a vectorised Exp, so both are
/// written around it, a chunk at a time so the temporaries stay in cache:
///   tanh x  = sign(x)·(1 − e)/(1 + e) with e = exp(−2|x|) for |x| ≥ 0.3, and the odd
///             Taylor polynomial to x⁹ below (relative error < 1e-7 on both pieces);
///   sigmoid x = 1/(1 + exp(−x)).
type private Scratch =
    [<ThreadStatic; DefaultValue>]
    static val mutable private buf: float32[]

    /// A per-thread buffer of at least n floats.
    static member Get(n: int) =
        let b = Scratch.buf
        if isNull b || b.Length < n then
            let nb = Array.zeroCreate n
            Scratch.buf <- nb
            nb
        else b

module Transcendental =
    [<Literal>]
    let private Chunk = 2048

    let private buffer () = Scratch.Get Chunk

    /// Odd polynomial for tanh on |x| < 0.3.
    let inline private tanhSmall (x: float32) =
        let x2 = x * x
        x + x * x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f + x2 * (62.0f / 2835.0f))))

    let tanh32 (src: float32[]) (dst: float32[]) (offset: int) (count: int) =
        let tmp = buffer ()
        let mutable start = offset
        let stop = offset + count
        while start < stop do
            let n = min Chunk (stop - start)
            let s = ReadOnlySpan(src, start, n)
            let t = Span(tmp, 0, n)
            // t = exp(−2|x|)
            TensorPrimitives.Abs(s, t)
            TensorPrimitives.Multiply(ReadOnlySpan(tmp, 0, n), -2.0f, t)
            TensorPrimitives.Exp(ReadOnlySpan(tmp, 0, n), t)
            let mutable i = 0
            if Vector256.IsHardwareAccelerated then
                let one = Vector256.Create 1.0f
                let third = Vector256.Create 0.3f
                let signMask = Vector256.Create -0.0f
                let c3 = Vector256.Create(-1.0f / 3.0f)
                let c5 = Vector256.Create(2.0f / 15.0f)
                let c7 = Vector256.Create(-17.0f / 315.0f)
                let c9 = Vector256.Create(62.0f / 2835.0f)
                while i + 8 <= n do
                    let x = Vector256.Create(src, start + i)
                    let e = Vector256.Create(tmp, i)
                    let big = Vector256.Abs((one - e) / (one + e))
                    let large = Vector256.BitwiseOr(big, Vector256.BitwiseAnd(x, signMask))
                    let x2 = x * x
                    let small = x + x * x2 * (c3 + x2 * (c5 + x2 * (c7 + x2 * c9)))
                    let useSmall = Vector256.LessThan(Vector256.Abs x, third)
                    Vector256.ConditionalSelect(useSmall, small, large).CopyTo(dst, start + i)
                    i <- i + 8
            while i < n do
                let x = src.[start + i]
                let e = tmp.[i]
                dst.[start + i] <-
                    if MathF.Abs x < 0.3f then tanhSmall x
                    else MathF.CopySign((1.0f - e) / (1.0f + e), x)
                i <- i + 1
            start <- start + n

    let sigmoid32 (src: float32[]) (dst: float32[]) (offset: int) (count: int) =
        let tmp = buffer ()
        let mutable start = offset
        let stop = offset + count
        while start < stop do
            let n = min Chunk (stop - start)
            let t = Span(tmp, 0, n)
            TensorPrimitives.Negate(ReadOnlySpan(src, start, n), t)
            TensorPrimitives.Exp(ReadOnlySpan(tmp, 0, n), t)
            TensorPrimitives.Add(ReadOnlySpan(tmp, 0, n), 1.0f, t)
            TensorPrimitives.Reciprocal(ReadOnlySpan(tmp, 0, n), Span(dst, start, n))
            start <- start + n
