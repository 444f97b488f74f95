namespace GroupedNewton

open System

/// Small dense float64 linear algebra for the S-dimensional problems (S is the number of
/// subsets: tens at most): symmetric eigen-decomposition by cyclic Jacobi rotations,
/// Cholesky and eigen-based solves.
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
                    if i <> j then s <- s + a.[i, j] * a.[i, j]
            sqrt s
        let scale = max 1e-300 (sqrt (Seq.sum (seq { for i in 0 .. n - 1 do for j in 0 .. n - 1 -> a.[i, j] * a.[i, j] })))
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

    /// Solves m x = b for symmetric positive definite m; None when the factorisation fails.
    let tryCholeskySolve (m: float[,]) (b: float[]) : float[] option =
        let n = b.Length
        let l = Array2D.zeroCreate n n
        let mutable ok = true
        for j in 0 .. n - 1 do
            if ok then
                let mutable s = m.[j, j]
                for k in 0 .. j - 1 do s <- s - l.[j, k] * l.[j, k]
                if not (s > 0.0) || not (Double.IsFinite s) then ok <- false
                else
                    l.[j, j] <- sqrt s
                    for i in j + 1 .. n - 1 do
                        let mutable t = m.[i, j]
                        for k in 0 .. j - 1 do t <- t - l.[i, k] * l.[j, k]
                        l.[i, j] <- t / l.[j, j]
        if not ok then None
        else
            let y = Array.zeroCreate n
            for i in 0 .. n - 1 do
                let mutable s = b.[i]
                for k in 0 .. i - 1 do s <- s - l.[i, k] * y.[k]
                y.[i] <- s / l.[i, i]
            let x = Array.zeroCreate n
            for i in n - 1 .. -1 .. 0 do
                let mutable s = y.[i]
                for k in i + 1 .. n - 1 do s <- s - l.[k, i] * x.[k]
                x.[i] <- s / l.[i, i]
            Some x

    /// Solves m x = b by Gaussian elimination with partial pivoting; None when m is
    /// singular to working precision (a pivot below 1e-14 of the largest entry).
    let trySolve (m: float[,]) (b: float[]) : float[] option =
        let n = b.Length
        let a = Array2D.init n (n + 1) (fun i j -> if j < n then m.[i, j] else b.[i])
        let scale = max 1e-300 (Seq.max (seq { yield 0.0; for i in 0 .. n - 1 do for j in 0 .. n - 1 -> abs m.[i, j] }))
        let mutable ok = true
        for c in 0 .. n - 1 do
            if ok then
                let mutable p = c
                for r in c + 1 .. n - 1 do
                    if abs a.[r, c] > abs a.[p, c] then p <- r
                if not (abs a.[p, c] > 1e-14 * scale) then ok <- false
                else
                    for j in 0 .. n do
                        let tmp = a.[c, j]
                        a.[c, j] <- a.[p, j]
                        a.[p, j] <- tmp
                    for r in c + 1 .. n - 1 do
                        let f = a.[r, c] / a.[c, c]
                        for j in c .. n do a.[r, j] <- a.[r, j] - f * a.[c, j]
        if not ok then None
        else
            let x = Array.zeroCreate n
            for i in n - 1 .. -1 .. 0 do
                let mutable s = a.[i, n]
                for k in i + 1 .. n - 1 do s <- s - a.[i, k] * x.[k]
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
                for i in 0 .. n - 1 do c <- c + v.[i, k] * b.[i]
                c <- c / w.[k]
                for i in 0 .. n - 1 do x.[i] <- x.[i] + c * v.[i, k]
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
                c <- a; fc <- fa; d <- b - a; e <- d
            if abs fc < abs fb then
                a <- b; b <- c; c <- a
                fa <- fb; fb <- fc; fc <- fa
            let tol1 = 2.0 * 2.2e-16 * abs b + 0.5 * tol
            let xm = 0.5 * (c - b)
            if abs xm <= tol1 || fb = 0.0 then converged <- true
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
                    if p > 0.0 then q <- -q
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
