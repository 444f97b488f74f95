namespace GroupedNewton

open System
open System.Numerics

/// The project's one home for dense float64 linear algebra: for the S-dimensional problems
/// of the summaries and the solver (S is the number of subsets: tens at most), symmetric
/// eigen-decomposition by cyclic Jacobi rotations, Cholesky and eigen-based solves; for the
/// Kronecker factors of K-FAC and K-BFGS (up to a few thousand rows), inverses of symmetric
/// positive definite matrices. One Cholesky factorisation (`tryCholesky`, row-major in a flat
/// array, SIMD dot products on contiguous rows) serves both.
module DenseAlgebra =
    let identity n = Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)

    let matVec (a: float[,]) (x: float[]) =
        Array.init (Array2D.length1 a) (fun i -> Seq.sum (seq { for j in 0 .. x.Length - 1 -> a.[i, j] * x.[j] }))

    let dot (a: float[]) (b: float[]) = Array.fold2 (fun acc x y -> acc + x * y) 0.0 a b
    let norm (a: float[]) = sqrt (dot a a)

    /// Eigenvalues (ascending) and eigenvectors (columns of the second result) of a
    /// symmetric matrix.
    let symmetricEigen (m: float[,]) : float[] * float[,] =
        let n = Array2D.length1 m
        let a = Array2D.init n n (fun i j -> 0.5 * (m.[i, j] + m.[j, i]))
        let v = identity n

        let offNorm () =
            let mutable s = 0.0

            for i in 0 .. n - 1 do
                for j in 0 .. n - 1 do
                    if i <> j then
                        s <- s + a.[i, j] * a.[i, j]

            sqrt s

        let scale =
            max
                1e-300
                (sqrt (
                    Seq.sum (
                        seq {
                            for i in 0 .. n - 1 do
                                for j in 0 .. n - 1 -> a.[i, j] * a.[i, j]
                        }
                    )
                ))

        let mutable sweeps = 0

        while sweeps < 100 && offNorm () > 1e-15 * scale do
            sweeps <- sweeps + 1

            for p in 0 .. n - 2 do
                for q in p + 1 .. n - 1 do
                    let apq = a.[p, q]

                    if abs apq > 1e-300 then
                        let theta = (a.[q, q] - a.[p, p]) / (2.0 * apq)
                        let t = (if theta >= 0.0 then 1.0 else -1.0) / (abs theta + sqrt (theta * theta + 1.0))
                        let c = 1.0 / sqrt (t * t + 1.0)
                        let s = t * c

                        for k in 0 .. n - 1 do
                            let akp, akq = a.[k, p], a.[k, q]
                            a.[k, p] <- c * akp - s * akq
                            a.[k, q] <- s * akp + c * akq

                        for k in 0 .. n - 1 do
                            let apk, aqk = a.[p, k], a.[q, k]
                            a.[p, k] <- c * apk - s * aqk
                            a.[q, k] <- s * apk + c * aqk

                        for k in 0 .. n - 1 do
                            let vkp, vkq = v.[k, p], v.[k, q]
                            v.[k, p] <- c * vkp - s * vkq
                            v.[k, q] <- s * vkp + c * vkq

        let order = Array.init n id |> Array.sortBy (fun i -> a.[i, i])
        order |> Array.map (fun i -> a.[i, i]), Array2D.init n n (fun r c -> v.[r, order.[c]])

    let minEigenvalue (m: float[,]) = (fst (symmetricEigen m)).[0]

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
        if m.Length <> n * n then
            invalidArg "m" (sprintf "DenseAlgebra: %d values for a %d×%d matrix" m.Length n n)

        let l = Array.zeroCreate<float>(n * n)
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
        let x = Array.zeroCreate<float>(n * n)

        for i in 0 .. n - 1 do
            let ri = i * n
            // row i of X: (e_i − Σ_{k<i} L[i,k] X[k,:]) / L[i,i]; X[k,:] is zero beyond column k
            x.[ri + i] <- 1.0

            for k in 0 .. i - 1 do
                let c = l.[ri + k]

                if c <> 0.0 then
                    axpyNeg c x (k * n) x ri (k + 1)

            let inv = 1.0 / l.[ri + i]

            for j in 0..i do
                x.[ri + j] <- x.[ri + j] * inv

        x

    /// m⁻¹ by Cholesky for a small matrix (row-major), or None.
    let private trySpdInverseSmall (n: int) (m: float[]) : float[] option =
        match tryCholesky n m with
        | None -> None
        | Some l ->
            let li = lowerInverse n l
            // (L⁻¹)ᵀL⁻¹, entry (i, j) = Σ_{k ≥ max(i,j)} X[k,i]·X[k,j]
            let inv = Array.zeroCreate<float>(n * n)

            for k in 0 .. n - 1 do
                let rk = k * n

                for i in 0..k do
                    let c = li.[rk + i]

                    if c <> 0.0 then
                        axpyNeg -c li rk inv (i * n) (k + 1)

            for i in 0 .. n - 1 do
                for j in 0 .. i - 1 do
                    inv.[i * n + j] <- inv.[j * n + i]

            Some inv

    /// Block size below which the inverse is computed by Cholesky directly.
    [<Literal>]
    let SpdBlockSize = 96

    /// The inverse of a float64 SPD tensor [n; n] by recursive 2×2 blocking: with
    /// M = [[A, B], [Bᵀ, C]], S = C − BᵀA⁻¹B (SPD when M is), X = A⁻¹B,
    /// M⁻¹ = [[A⁻¹ + X S⁻¹ Xᵀ, −X S⁻¹], [−S⁻¹Xᵀ, S⁻¹]]. The work is in GEMMs (about
    /// 1.3·n³ flops); None when a diagonal block fails to factorise.
    let rec private trySpdInverseTensor (m: Tensor) : Tensor option =
        let n = m.Shape.[0]

        if n <= SpdBlockSize then
            trySpdInverseSmall n (Tensor.toArray m) |> Option.map (fun v -> Tensor.ofArrayShape v [| n; n |])
        else
            let h = n / 2
            let r = n - h
            let a = Tensor.slice [| 0; 0 |] [| h; h |] m
            let b = Tensor.slice [| 0; h |] [| h; r |] m
            let c = Tensor.slice [| h; h |] [| r; r |] m

            match trySpdInverseTensor a with
            | None -> None
            | Some ai ->
                let x = Tensor.matmul ai b
                let s = c - Tensor.matmulT true false b x
                let s = 0.5 * (s + Tensor.transpose s)

                match trySpdInverseTensor s with
                | None -> None
                | Some si ->
                    let xs = Tensor.matmul x si
                    let tl = ai + Tensor.matmulT false true xs x
                    let tl = 0.5 * (tl + Tensor.transpose tl)
                    Some(Tensor.cat 0 [ Tensor.cat 1 [ tl; -xs ]; Tensor.cat 1 [ -(Tensor.transpose xs); si ] ])

    /// m⁻¹ (row-major, symmetric) for a symmetric positive definite m (row-major n×n), or
    /// None when a factorisation fails or the result is not finite.
    let trySpdInverse (n: int) (m: float[]) : float[] option =
        if m.Length <> n * n then
            invalidArg "m" (sprintf "DenseAlgebra: %d values for a %d×%d matrix" m.Length n n)

        if not (Array.forall Double.IsFinite m) then
            None
        else
            let inv =
                if n <= SpdBlockSize then
                    trySpdInverseSmall n m
                else
                    trySpdInverseTensor (Tensor.ofArrayShape m [| n; n |]) |> Option.map Tensor.toArray

            match inv with
            | Some v when Array.forall Double.IsFinite v -> Some v
            | _ -> None

    /// Solves m x = b for symmetric positive definite m; None when the factorisation fails.
    let tryCholeskySolve (m: float[,]) (b: float[]) : float[] option =
        let n = b.Length

        match tryCholesky n (Array.init (n * n) (fun k -> m.[k / n, k % n])) with
        | None -> None
        | Some l ->
            let y = Array.zeroCreate n

            for i in 0 .. n - 1 do
                let mutable s = b.[i]

                for k in 0 .. i - 1 do
                    s <- s - l.[i * n + k] * y.[k]

                y.[i] <- s / l.[i * n + i]

            let x = Array.zeroCreate n

            for i in n - 1 .. -1 .. 0 do
                let mutable s = y.[i]

                for k in i + 1 .. n - 1 do
                    s <- s - l.[k * n + i] * x.[k]

                x.[i] <- s / l.[i * n + i]

            Some x

    /// The largest |m[i, j]| over the leading n×n block, at least 1e-300 (a scale to compare
    /// pivots and cut-offs with).
    let internal maxAbs (n: int) (m: float[,]) : float =
        let mutable s = 0.0

        for i in 0 .. n - 1 do
            for j in 0 .. n - 1 do
                let v = abs m.[i, j]

                if v > s then // NaN entries are passed over
                    s <- v

        max 1e-300 s

    /// Solves m x = b by Gaussian elimination with partial pivoting; None when m is
    /// singular to working precision (a pivot below 1e-14 of the largest entry).
    let trySolve (m: float[,]) (b: float[]) : float[] option =
        let n = b.Length
        let a = Array2D.init n (n + 1) (fun i j -> if j < n then m.[i, j] else b.[i])

        let scale = maxAbs n m

        let mutable ok = true

        for c in 0 .. n - 1 do
            if ok then
                let mutable p = c

                for r in c + 1 .. n - 1 do
                    if abs a.[r, c] > abs a.[p, c] then
                        p <- r

                if not (abs a.[p, c] > 1e-14 * scale) then
                    ok <- false
                else
                    for j in 0..n do
                        let tmp = a.[c, j]
                        a.[c, j] <- a.[p, j]
                        a.[p, j] <- tmp

                    for r in c + 1 .. n - 1 do
                        let f = a.[r, c] / a.[c, c]

                        for j in c..n do
                            a.[r, j] <- a.[r, j] - f * a.[c, j]

        if not ok then
            None
        else
            let x = Array.zeroCreate n

            for i in n - 1 .. -1 .. 0 do
                let mutable s = a.[i, n]

                for k in i + 1 .. n - 1 do
                    s <- s - a.[i, k] * x.[k]

                x.[i] <- s / a.[i, i]

            if Array.forall Double.IsFinite x then Some x else None

    /// Solves a symmetric system through its eigen-decomposition; eigenvalues below
    /// `cutoff` in magnitude are treated as zero (minimum-norm solution on that subspace).
    let eigenSolve (m: float[,]) (b: float[]) (cutoff: float) =
        let w, v = symmetricEigen m
        let n = b.Length
        let x = Array.zeroCreate n

        for k in 0 .. n - 1 do
            if abs w.[k] > cutoff then
                let mutable c = 0.0

                for i in 0 .. n - 1 do
                    c <- c + v.[i, k] * b.[i]

                c <- c / w.[k]

                for i in 0 .. n - 1 do
                    x.[i] <- x.[i] + c * v.[i, k]

        x

    /// A root of f in [a, b] where f(a) and f(b) have opposite signs (Brent's method).
    /// Returns (root, iterations, converged).
    let brent (f: float -> float) (a0: float) (b0: float) (tol: float) (maxIter: int) =
        let mutable a, b = a0, b0
        let mutable fa, fb = f a, f b
        let mutable c, fc = a, fa
        let mutable d = b - a
        let mutable e = d
        let mutable iter = 0
        let mutable converged = fb = 0.0

        if fa = 0.0 then
            b <- a
            converged <- true

        while not converged && iter < maxIter do
            iter <- iter + 1

            if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) then
                c <- a
                fc <- fa
                d <- b - a
                e <- d

            if abs fc < abs fb then
                a <- b
                b <- c
                c <- a
                fa <- fb
                fb <- fc
                fc <- fa

            let tol1 = 2.0 * 2.2e-16 * abs b + 0.5 * tol
            let xm = 0.5 * (c - b)

            if abs xm <= tol1 || fb = 0.0 then
                converged <- true
            else
                if abs e >= tol1 && abs fa > abs fb then
                    let s = fb / fa
                    let mutable p = 0.0
                    let mutable q = 0.0

                    if a = c then
                        p <- 2.0 * xm * s
                        q <- 1.0 - s
                    else
                        let q0 = fa / fc
                        let r = fb / fc
                        p <- s * (2.0 * xm * q0 * (q0 - r) - (b - a) * (r - 1.0))
                        q <- (q0 - 1.0) * (r - 1.0) * (s - 1.0)

                    if p > 0.0 then
                        q <- -q

                    p <- abs p

                    if 2.0 * p < min (3.0 * xm * q - abs (tol1 * q)) (abs (e * q)) then
                        e <- d
                        d <- p / q
                    else
                        d <- xm
                        e <- d
                else
                    d <- xm
                    e <- d

                a <- b
                fa <- fb
                b <- b + (if abs d > tol1 then d else (if xm > 0.0 then tol1 else -tol1))
                fb <- f b

        b, iter, converged
