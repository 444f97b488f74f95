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

    /// m⁻¹ by Cholesky for a small matrix (row-major), or None.
    let private tryInvertSmall (n: int) (m: float[]) : float[] option =
        match tryCholesky n m with
        | None -> None
        | Some l ->
            let li = lowerInverse n l
            // (L⁻¹)ᵀL⁻¹, entry (i, j) = Σ_{k ≥ max(i,j)} X[k,i]·X[k,j]
            let inv = Array.zeroCreate<float> (n * n)
            for k in 0 .. n - 1 do
                let rk = k * n
                for i in 0 .. k do
                    let c = li.[rk + i]
                    if c <> 0.0 then axpyNeg -c li rk inv (i * n) (k + 1)
            for i in 0 .. n - 1 do
                for j in 0 .. i - 1 do inv.[i * n + j] <- inv.[j * n + i]
            Some inv

    /// Block size below which the inverse is computed by Cholesky directly.
    [<Literal>]
    let BaseSize = 96

    /// The inverse of a float64 SPD tensor [n; n] by recursive 2×2 blocking: with
    /// M = [[A, B], [Bᵀ, C]], S = C − BᵀA⁻¹B (SPD when M is), X = A⁻¹B,
    /// M⁻¹ = [[A⁻¹ + X S⁻¹ Xᵀ, −X S⁻¹], [−S⁻¹Xᵀ, S⁻¹]]. The work is in GEMMs (about
    /// 1.3·n³ flops); None when a diagonal block fails to factorise.
    let rec private tryInvertTensor (m: Tensor) : Tensor option =
        let n = m.Shape.[0]
        if n <= BaseSize then
            tryInvertSmall n (Tensor.toArray m) |> Option.map (fun v -> Tensor.ofArrayShape v [| n; n |])
        else
            let h = n / 2
            let r = n - h
            let a = Tensor.slice [| 0; 0 |] [| h; h |] m
            let b = Tensor.slice [| 0; h |] [| h; r |] m
            let c = Tensor.slice [| h; h |] [| r; r |] m
            match tryInvertTensor a with
            | None -> None
            | Some ai ->
                let x = Tensor.matmul ai b
                let s = c - Tensor.matmulT true false b x
                let s = 0.5 * (s + Tensor.transpose s)
                match tryInvertTensor s with
                | None -> None
                | Some si ->
                    let xs = Tensor.matmul x si
                    let tl = ai + Tensor.matmulT false true xs x
                    let tl = 0.5 * (tl + Tensor.transpose tl)
                    Some (Tensor.cat 0 [ Tensor.cat 1 [ tl; -xs ]; Tensor.cat 1 [ -(Tensor.transpose xs); si ] ])

    /// m⁻¹ (row-major, symmetric) for a symmetric positive definite m (row-major n×n), or
    /// None when a factorisation fails or the result is not finite.
    let tryInvert (n: int) (m: float[]) : float[] option =
        if m.Length <> n * n then invalidArg "m" (sprintf "SpdInverse: %d values for a %d×%d matrix" m.Length n n)
        if not (Array.forall Double.IsFinite m) then None
        else
            let inv =
                if n <= BaseSize then tryInvertSmall n m
                else tryInvertTensor (Tensor.ofArrayShape m [| n; n |]) |> Option.map Tensor.toArray
            match inv with
            | Some v when Array.forall Double.IsFinite v -> Some v
            | _ -> None
