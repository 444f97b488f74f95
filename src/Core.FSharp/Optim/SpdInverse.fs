namespace GroupedNewton

open System
open System.Numerics

/// Inverses of symmetric positive definite float64 matrices of moderate size (Kronecker
/// factors: up to a few thousand rows), stored row-major in flat arrays. Cholesky
/// factorisation and the triangular inverse run on contiguous rows with SIMD dot products
/// and axpys; the final product L⁻ᵀL⁻¹ goes through the backend's float64 GEMM.
[<RequireQualifiedAccess>]
module SpdInverse =
    let private dotRows (a: float[]) (aOff: int) (b: float[]) (bOff: int) (len: int) =
        let mutable acc = Vector<float>.Zero
        let w = Vector<float>.Count
        let mutable k = 0
        let sa = ReadOnlySpan<float>(a, aOff, len)
        let sb = ReadOnlySpan<float>(b, bOff, len)
        while k + w <= len do
            acc <- acc + Vector<float>(sa.Slice(k, w)) * Vector<float>(sb.Slice(k, w))
            k <- k + w
        let mutable s = Vector.Dot(acc, Vector<float>.One)
        while k < len do
            s <- s + sa.[k] * sb.[k]
            k <- k + 1
        s

    /// y[yOff ..] −= c · x[xOff ..] over len entries.
    let private axpyNeg (c: float) (x: float[]) (xOff: int) (y: float[]) (yOff: int) (len: int) =
        let w = Vector<float>.Count
        let sx = ReadOnlySpan<float>(x, xOff, len)
        let sy = Span<float>(y, yOff, len)
        let vc = Vector<float>(c)
        let mutable k = 0
        while k + w <= len do
            let r = Vector<float>(sy.Slice(k, w)) - vc * Vector<float>(sx.Slice(k, w))
            r.CopyTo(sy.Slice(k, w))
            k <- k + w
        while k < len do
            sy.[k] <- sy.[k] - c * sx.[k]
            k <- k + 1

    /// The lower Cholesky factor L (row-major n×n, upper part zero) of m, or None when a
    /// pivot is not positive and finite (m not positive definite to working precision).
    let tryCholesky (n: int) (m: float[]) : float[] option =
        if m.Length <> n * n then invalidArg "m" (sprintf "SpdInverse: %d values for a %d×%d matrix" m.Length n n)
        let l = Array.zeroCreate<float> (n * n)
        let mutable ok = true
        let mutable i = 0
        while ok && i < n do
            let ri = i * n
            for j in 0 .. i - 1 do
                let rj = j * n
                let s = m.[ri + j] - dotRows l ri l rj j
                l.[ri + j] <- s / l.[rj + j]
            let d = m.[ri + i] - dotRows l ri l ri i
            if d > 0.0 && Double.IsFinite d then l.[ri + i] <- sqrt d else ok <- false
            i <- i + 1
        if ok then Some l else None

    /// X = L⁻¹ for a lower-triangular L with a positive diagonal (row-major n×n).
    let lowerInverse (n: int) (l: float[]) : float[] =
        let x = Array.zeroCreate<float> (n * n)
        for i in 0 .. n - 1 do
            let ri = i * n
            // row i of X: (e_i − Σ_{k<i} L[i,k] X[k,:]) / L[i,i]; X[k,:] is zero beyond column k
            x.[ri + i] <- 1.0
            for k in 0 .. i - 1 do
                let c = l.[ri + k]
                if c <> 0.0 then axpyNeg c x (k * n) x ri (k + 1)
            let inv = 1.0 / l.[ri + i]
            for j in 0 .. i do x.[ri + j] <- x.[ri + j] * inv
        x

    /// m⁻¹ (row-major, symmetric) for a symmetric positive definite m, or None when its
    /// Cholesky factorisation fails.
    let tryInvert (n: int) (m: float[]) : float[] option =
        match tryCholesky n m with
        | None -> None
        | Some l ->
            let li = Tensor.ofArrayShape (lowerInverse n l) [| n; n |]
            let inv = Tensor.toArray (Tensor.matmulT true false li li)
            // symmetrise: the GEMM's rounding differs between the two triangles
            for i in 0 .. n - 1 do
                for j in 0 .. i - 1 do
                    let v = 0.5 * (inv.[i * n + j] + inv.[j * n + i])
                    inv.[i * n + j] <- v
                    inv.[j * n + i] <- v
            if Array.forall Double.IsFinite inv then Some inv else None
