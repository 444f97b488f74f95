namespace GroupedNewton

open System

open System.Runtime.InteropServices

/// What an attempted BFGS inverse update did (docs/kbfgs.md, "The gated update").
[<RequireQualifiedAccess>]
type BfgsStatus =
    /// H was replaced by the updated matrix.
    | Updated
    /// sᵀy ≤ 0: no positive-definite update exists; H kept.
    | NonPositiveCurvature
    /// 0 < sᵀy ≤ tol·sᵀs·‖g‖: curvature too small against the gate vector; H kept.
    | SmallCurvature
    /// The updated matrix had an infinite or NaN entry; H kept.
    | NonFinite

/// The second stage of the damping of a secant pair (docs/kbfgs.md, "Damping of the secant pair").
[<RequireQualifiedAccess>]
type SecondStageDamping =
    /// Powell's rule against B = I: if sᵀy < μ2·sᵀs, y ← θ₂y + (1−θ₂)s so that sᵀy = μ2·sᵀs
    /// (the NeurIPS 2020 code, "DD"; needs μ2 < 1).
    | Powell
    /// Levenberg–Marquardt: y ← y + μ2·s, i.e. BFGS on G + μ2·I (the CNN paper's "DDV2",
    /// reconstructed).
    | LevenbergMarquardt

/// A secant pair after damping, with which stages changed it.
type DampedPair = {
    S: float[]
    Y: float[]
    /// Powell damping on H replaced s.
    PowellApplied: bool
    /// The second stage changed y (always true for Levenberg–Marquardt with μ2 > 0 and s ≠ 0).
    SecondStageApplied: bool
}

/// BFGS building blocks on small dense float64 matrices (float[,], symmetric): the inverse
/// update with its skip gates, Powell and double damping, and a Cholesky inverse. The
/// matrices here are Kronecker factors (a layer's fan-in or fan-out, about 1000 at most),
/// so all work is O(n²) per update except the inverse, done once per layer.
module Bfgs =
    /// The entries of a non-empty matrix as one row-major span.
    let private entries (m: float[,]) : Span<float> = MemoryMarshal.CreateSpan(&m.[0, 0], m.Length)

    let dot (a: float[]) (b: float[]) =
        if a.Length <> b.Length then
            raise (ShapeMismatchException(sprintf "Bfgs.dot: vectors of lengths %d and %d" a.Length b.Length))

        Numerics.Tensors.TensorPrimitives.Dot(ReadOnlySpan a, ReadOnlySpan b)

    let norm (a: float[]) = sqrt (dot a a)

    /// H v for a matrix.
    let matVec (h: float[,]) (v: float[]) =
        let n, c = Array2D.length1 h, Array2D.length2 h

        if c <> v.Length then
            raise (ShapeMismatchException(sprintf "Bfgs.matVec: a %d×%d matrix times a vector of length %d" n c v.Length))

        let r = Array.zeroCreate n

        if n > 0 && c > 0 then
            let d = entries h

            for i in 0 .. n - 1 do
                r.[i] <- Numerics.Tensors.TensorPrimitives.Dot(Span.op_Implicit (d.Slice(i * c, c)), ReadOnlySpan v)

        r

    /// wa·a + wb·b for two matrices of one shape.
    let blend (wa: float) (a: float[,]) (wb: float) (b: float[,]) =
        if Array2D.length1 a <> Array2D.length1 b || Array2D.length2 a <> Array2D.length2 b then
            raise (
                ShapeMismatchException(
                    sprintf
                        "Bfgs.blend: matrices of %d×%d and %d×%d"
                        (Array2D.length1 a)
                        (Array2D.length2 a)
                        (Array2D.length1 b)
                        (Array2D.length2 b)
                )
            )

        let r = Array2D.zeroCreate (Array2D.length1 a) (Array2D.length2 a)

        if r.Length > 0 then
            let dr = entries r
            Numerics.Tensors.TensorPrimitives.Multiply(Span.op_Implicit (entries a), wa, dr)
            Numerics.Tensors.TensorPrimitives.MultiplyAdd(Span.op_Implicit (entries b), wb, Span.op_Implicit dr, dr)

        r

    /// m ← (m + mᵀ)/2 in place, by tiles (the updates are symmetric in exact arithmetic only).
    let private symmetrise (m: float[,]) =
        let n = Array2D.length1 m

        if n > 0 then
            let d = entries m
            let tile = 64

            for bi in 0..tile .. n - 1 do
                for bj in bi..tile .. n - 1 do
                    for i in bi .. min (bi + tile) n - 1 do
                        for j in max bj (i + 1) .. min (bj + tile) n - 1 do
                            let v = 0.5 * (d.[i * n + j] + d.[j * n + i])
                            d.[i * n + j] <- v
                            d.[j * n + i] <- v

    /// Whether every entry is finite: an infinite or NaN entry makes the sum non-finite (so
    /// does an overflow of the sum, which only entries near 1e308 can cause).
    let private allFinite (h: float[,]) =
        h.Length = 0 || Double.IsFinite(Numerics.Tensors.TensorPrimitives.Sum(Span.op_Implicit (entries h)))

    let private checkPair (op: string) (h: float[,]) (s: float[]) (y: float[]) =
        let n = Array2D.length1 h

        if Array2D.length2 h <> n || s.Length <> n || y.Length <> n then
            raise (ShapeMismatchException(sprintf "%s: H is %d×%d, s has %d entries, y has %d" op n (Array2D.length2 h) s.Length y.Length))

    /// The BFGS inverse update without gates, for sᵀy ≠ 0:
    /// H⁺ = H + (ρ²·yᵀHy + ρ)·ssᵀ − ρ·(s(Hy)ᵀ + (Hy)sᵀ), ρ = 1/sᵀy, which equals
    /// (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ and satisfies H⁺y = s. The result is symmetrised.
    let inverseUpdate (h: float[,]) (s: float[]) (y: float[]) : float[,] =
        checkPair "Bfgs.inverseUpdate" h s y
        let n = s.Length
        let rho = 1.0 / dot s y
        let hy = matVec h y
        let c = rho * rho * dot y hy + rho
        let r = h.Clone() :?> float[,]

        if n > 0 then
            let d = entries r
            // row i gains (c·s_i − ρ·(Hy)_i)·sᵀ − ρ·s_i·(Hy)ᵀ
            for i in 0 .. n - 1 do
                let row = d.Slice(i * n, n)
                Numerics.Tensors.TensorPrimitives.MultiplyAdd(ReadOnlySpan s, c * s.[i] - rho * hy.[i], Span.op_Implicit row, row)
                Numerics.Tensors.TensorPrimitives.MultiplyAdd(ReadOnlySpan hy, -rho * s.[i], Span.op_Implicit row, row)

            symmetrise r

        r

    /// The gated update (docs/kbfgs.md, "The gated update"): skipped when sᵀy ≤ 0, when sᵀy ≤ tol·sᵀs·‖g‖
    /// (g: the gate vector, ḡ for H_g and v for H_a), or when the result is not finite. A
    /// skipped update returns H itself.
    let gatedUpdate (tolerance: float) (h: float[,]) (s: float[]) (y: float[]) (gate: float[]) : BfgsStatus * float[,] =
        checkPair "Bfgs.gatedUpdate" h s y
        let r = dot s y

        if not (r > 0.0) then
            BfgsStatus.NonPositiveCurvature, h
        elif r <= tolerance * dot s s * norm gate then
            BfgsStatus.SmallCurvature, h
        else
            let next = inverseUpdate h s y
            if allFinite next then BfgsStatus.Updated, next else BfgsStatus.NonFinite, h

    /// Powell's rule in both stages: when sᵀy < μ·q, `v` becomes θv + (1−θ)w with
    /// θ = (1−μ)·q/(q − sᵀy) (true: damped), else stays as it is.
    let private powellMix (mu: float) (sy: float) (q: float) (v: float[]) (w: float[]) : float[] * bool =
        if sy < mu * q then
            let theta = (1.0 - mu) * q / (q - sy)
            Array.init v.Length (fun i -> theta * v.[i] + (1.0 - theta) * w.[i]), true
        else
            v, false

    /// Powell damping on H (first stage): if sᵀy < μ1·yᵀHy, s ← θs + (1−θ)Hy with
    /// θ = (1−μ1)·yᵀHy/(yᵀHy − sᵀy), after which sᵀy = μ1·yᵀHy. `hy` is H y.
    let powell (mu1: float) (s: float[]) (y: float[]) (hy: float[]) : float[] * bool = powellMix mu1 (dot s y) (dot y hy) s hy

    /// Powell's rule with B = I (second stage of DD): if sᵀy < μ2·sᵀs,
    /// y ← θ₂y + (1−θ₂)s with θ₂ = (1−μ2)·sᵀs/(sᵀs − sᵀy), after which sᵀy = μ2·sᵀs.
    let powellIdentity (mu2: float) (s: float[]) (y: float[]) : float[] * bool = powellMix mu2 (dot s y) (dot s s) y s

    /// Levenberg–Marquardt damping: y + μ2·s.
    let levenbergMarquardt (mu2: float) (s: float[]) (y: float[]) : float[] = Array.init y.Length (fun i -> y.[i] + mu2 * s.[i])

    /// Both damping stages: Powell on H (μ1, with H y from `hMul`), then the second stage
    /// with μ2.
    let damp (second: SecondStageDamping) (mu1: float) (mu2: float) (hMul: float[] -> float[]) (s: float[]) (y: float[]) : DampedPair =
        let s1, p = powell mu1 s y (hMul y)

        match second with
        | SecondStageDamping.Powell ->
            let y1, q = powellIdentity mu2 s1 y
            { S = s1; Y = y1; PowellApplied = p; SecondStageApplied = q }
        | SecondStageDamping.LevenbergMarquardt -> {
            S = s1
            Y = levenbergMarquardt mu2 s1 y
            PowellApplied = p
            SecondStageApplied = mu2 <> 0.0 && dot s1 s1 > 0.0
          }

    /// (m)⁻¹ for a symmetric positive definite m (its symmetric part is used), through
    /// DenseAlgebra.trySpdInverse; None when m is not numerically positive definite.
    let choleskyInverse (m: float[,]) : float[,] option =
        let n = Array2D.length1 m

        if Array2D.length2 m <> n then
            raise (ShapeMismatchException(sprintf "Bfgs.choleskyInverse: needs a square matrix, got %d×%d" n (Array2D.length2 m)))

        if n = 0 then
            Some(Array2D.zeroCreate 0 0)
        else
            let flat = Array.init (n * n) (fun k -> let i, j = k / n, k % n in 0.5 * (m.[i, j] + m.[j, i]))

            DenseAlgebra.trySpdInverse n flat
            |> Option.map (fun inv ->
                let r = Array2D.zeroCreate n n
                Buffer.BlockCopy(inv, 0, r, 0, n * n * 8)
                symmetrise r
                r)

/// A limited-memory BFGS inverse (docs/kbfgs.md, "K-BFGS(L)"): the last `Capacity` secant pairs, oldest
/// first, with initial matrix γI. Immutable: `push` returns a new memory.
type LbfgsMemory = {
    Capacity: int
    Dimension: int
    /// γ of the initial matrix H⁰ = γI (fixed 1 in K-BFGS(L)).
    Gamma: float
    /// The pairs (s, y), oldest first.
    Pairs: (float[] * float[])[]
}

/// L-BFGS products: the two-loop recursion for vectors and the compact
/// (Byrd–Nocedal–Schnabel) representation for many right-hand sides at once.
module Lbfgs =
    let empty (capacity: int) (dimension: int) (gamma: float) =
        if capacity < 1 then
            invalidArg "capacity" (sprintf "L-BFGS: the memory must hold at least one pair, got %d" capacity)

        if not (gamma > 0.0 && Double.IsFinite gamma) then
            invalidArg "gamma" (sprintf "L-BFGS: γ must be positive, got %g" gamma)

        { Capacity = capacity; Dimension = dimension; Gamma = gamma; Pairs = [||] }

    /// Appends a pair, dropping the oldest when the memory is full (FIFO).
    let push (mem: LbfgsMemory) (s: float[]) (y: float[]) =
        if s.Length <> mem.Dimension || y.Length <> mem.Dimension then
            raise (
                ShapeMismatchException(
                    sprintf "L-BFGS: pair of lengths %d, %d for a memory of dimension %d" s.Length y.Length mem.Dimension
                )
            )

        let kept =
            if mem.Pairs.Length >= mem.Capacity then
                mem.Pairs.[mem.Pairs.Length - mem.Capacity + 1 ..]
            else
                mem.Pairs

        { mem with Pairs = Array.append kept [| (Array.copy s, Array.copy y) |] }

    /// H v by the two-loop recursion.
    let twoLoop (mem: LbfgsMemory) (v: float[]) : float[] =
        let q = Array.copy v
        let k = mem.Pairs.Length
        let alpha = Array.zeroCreate k

        for i in k - 1 .. -1 .. 0 do
            let s, y = mem.Pairs.[i]
            let a = Bfgs.dot s q / Bfgs.dot s y
            alpha.[i] <- a

            for j in 0 .. q.Length - 1 do
                q.[j] <- q.[j] - a * y.[j]

        for j in 0 .. q.Length - 1 do
            q.[j] <- mem.Gamma * q.[j]

        for i in 0 .. k - 1 do
            let s, y = mem.Pairs.[i]
            let b = Bfgs.dot y q / Bfgs.dot s y

            for j in 0 .. q.Length - 1 do
                q.[j] <- q.[j] + (alpha.[i] - b) * s.[j]

        q

    /// H X for a float64 matrix X (Dimension × c) by the compact representation
    /// H = γI + [S γY] [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]] [S γY]ᵀ with R the upper
    /// triangle of SᵀY and D its diagonal. The wide products go through the tensor GEMM;
    /// the k×k triangular solves are done here (k ≤ Capacity).
    let compactTimes (mem: LbfgsMemory) (x: Tensor) : Tensor =
        if x.Rank <> 2 || x.Shape.[0] <> mem.Dimension then
            raise (
                ShapeMismatchException(sprintf "L-BFGS: cannot multiply H (%d×%d) by %s" mem.Dimension mem.Dimension (Shape.str x.Shape))
            )

        let k = mem.Pairs.Length
        let x64 = Tensor.cast Dtype.Float64 x

        if k = 0 then
            mem.Gamma * x64
        else
            let d = mem.Dimension
            let c = x.Shape.[1]
            let sRows = Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map fst)) [| k; d |]
            let yRows = Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map snd)) [| k; d |]
            let u = Tensor.toArray (Tensor.matmul sRows x64) // SᵀX, k × c
            let v = Tensor.toArray (Tensor.matmul yRows x64) // YᵀX, k × c
            let sy = Array2D.init k k (fun i j -> Bfgs.dot (fst mem.Pairs.[i]) (snd mem.Pairs.[j]))
            let yy = Array2D.init k k (fun i j -> Bfgs.dot (snd mem.Pairs.[i]) (snd mem.Pairs.[j]))
            // R⁻¹ z: back substitution with the upper triangle of SᵀY, column by column of z (k × c)
            let solveR (z: float[]) =
                let r = Array.copy z

                for col in 0 .. c - 1 do
                    for i in k - 1 .. -1 .. 0 do
                        let mutable t = r.[i * c + col]

                        for j in i + 1 .. k - 1 do
                            t <- t - sy.[i, j] * r.[j * c + col]

                        r.[i * c + col] <- t / sy.[i, i]

                r
            // R⁻ᵀ z: forward substitution with the transpose
            let solveRt (z: float[]) =
                let r = Array.copy z

                for col in 0 .. c - 1 do
                    for i in 0 .. k - 1 do
                        let mutable t = r.[i * c + col]

                        for j in 0 .. i - 1 do
                            t <- t - sy.[j, i] * r.[j * c + col]

                        r.[i * c + col] <- t / sy.[i, i]

                r

            let rinvU = solveR u // R⁻¹SᵀX
            // (D + γYᵀY) R⁻¹SᵀX − γYᵀX, then R⁻ᵀ of it
            let inner = Array.zeroCreate (k * c)

            for i in 0 .. k - 1 do
                for col in 0 .. c - 1 do
                    let mutable t = sy.[i, i] * rinvU.[i * c + col] - mem.Gamma * v.[i * c + col]

                    for j in 0 .. k - 1 do
                        t <- t + mem.Gamma * yy.[i, j] * rinvU.[j * c + col]

                    inner.[i * c + col] <- t

            let top = solveRt inner
            let sPart = Tensor.matmulT true false sRows (Tensor.ofArrayShape top [| k; c |])
            let yPart = Tensor.matmulT true false yRows (Tensor.ofArrayShape rinvU [| k; c |])
            Tensor.addScaled (-mem.Gamma) (Tensor.addScaled 1.0 (mem.Gamma * x64) sPart) yPart

    /// H v by the compact representation (one right-hand side).
    let compactTimesVector (mem: LbfgsMemory) (v: float[]) : float[] =
        Tensor.toArray (compactTimes mem (Tensor.ofArrayShape v [| v.Length; 1 |]))
