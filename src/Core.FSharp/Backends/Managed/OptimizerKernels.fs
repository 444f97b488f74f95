namespace GroupedNewton.Backends.Managed

open System
open System.Numerics

/// Fused float32 kernels for optimizer steps (Backend.FusedMoment, Backend.MulScalar2): one
/// SIMD pass each where the composed route takes several. Every element goes through the
/// same float32 operations in the same order as the composed route; only the float64 sum of
/// squares is accumulated in SIMD lanes instead of index order.
module internal OptimizerKernels =
    /// m = (θ·wd + g)·(1 − β) + prev·β (the θ term only when wd ≠ 0, the prev term only when
    /// prev is given) and Σ (m·scale)² in float64.
    let moment (theta: float32[]) (g: float32[]) (prev: float32[] option) (wd: float) (beta: float) (scale: float) =
        let beta32 = float32 beta
        let omb32 = float32 (1.0 - beta)
        let wd32 = float32 wd
        let scale32 = float32 scale
        let w = Vector<float32>.Count

        let vBeta, vOmb, vWd, vScale =
            Vector<float32>(beta32), Vector<float32>(omb32), Vector<float32>(wd32), Vector<float32>(scale32)

        let decay = wd <> 0.0
        let hasPrev = prev.IsSome
        let b = defaultArg prev Array.empty<float32>
        let n = g.Length
        let m = GC.AllocateUninitializedArray<float32> n
        let mutable acc0 = Vector<float>.Zero
        let mutable acc1 = Vector<float>.Zero
        let mutable j = 0

        while j + w <= n do
            let gv =
                if decay then Vector<float32>(theta, j) * vWd + Vector<float32>(g, j) else Vector<float32>(g, j)

            let mv = if hasPrev then gv * vOmb + Vector<float32>(b, j) * vBeta else gv * vOmb
            mv.CopyTo(m, j)
            let mutable lo = Vector<float>.Zero
            let mutable hi = Vector<float>.Zero
            Vector.Widen(mv * vScale, &lo, &hi)
            acc0 <- acc0 + lo * lo
            acc1 <- acc1 + hi * hi
            j <- j + w

        let mutable acc = Vector.Sum(acc0 + acc1)

        while j < n do
            let gj = if decay then theta.[j] * wd32 + g.[j] else g.[j]
            let mj = if hasPrev then gj * omb32 + b.[j] * beta32 else gj * omb32
            m.[j] <- mj
            let h = float (mj * scale32)
            acc <- acc + h * h
            j <- j + 1

        m, acc

    /// (t·a)·b with float32 rounding after each product.
    let mulScalar2 (t: float32[]) (a: float) (b: float) =
        let a32, b32 = float32 a, float32 b
        let va, vb = Vector<float32>(a32), Vector<float32>(b32)
        let w = Vector<float32>.Count
        let d = GC.AllocateUninitializedArray<float32> t.Length
        let mutable j = 0

        while j + w <= t.Length do
            ((Vector<float32>(t, j) * va) * vb).CopyTo(d, j)
            j <- j + w

        while j < t.Length do
            d.[j] <- (t.[j] * a32) * b32
            j <- j + 1

        d
