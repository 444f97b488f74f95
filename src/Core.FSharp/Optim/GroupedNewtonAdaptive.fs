namespace GroupedNewton

open System
open System.Collections.Generic

/// The Adaptive variant (grouped-newton-auto) as functions of its options and state
/// (docs/groupednewton.md, "The adaptive variant"). Every quantity it compares is unchanged by
/// a per-subset affine reparameterisation, so the variant keeps the paper's invariance.
module internal GroupedNewtonAdaptive =
    /// The minimiser of −gη + ½hη² + (λ/6)|dη|³ over η ≥ 0; None where that model is unbounded.
    let private line (lambda: float) (g: float) (h: float) (d: float) =
        if g <= 0.0 then
            Some 0.0
        else
            let sol = CubicRegularization.solve (Array2D.create 1 1 h) [| g |] [| d |] lambda
            if sol.Converged then Some(max 0.0 sol.Eta.[0]) else None

    /// ‖Dη‖
    let private weighted (d: float[]) (eta: float[]) = DenseAlgebra.norm (Array.map2 (*) d eta)

    let private quadratic (h: float[,]) (eta: float[]) =
        let n = eta.Length
        let mutable q = 0.0

        for i in 0 .. n - 1 do
            for j in 0 .. n - 1 do
                q <- q + eta.[i] * h.[i, j] * eta.[j]

        q

    /// η ≥ 0 from a summary: each subset's minimiser of its own one-dimensional model (ḡ_s, H̄_ss,
    /// d_s), then one length α ∈ [0, 1] for all of them, the minimiser of the S-dimensional model
    /// along that vector: the cross-subset terms of H̄ set how far the subsets move together, and
    /// the joint step never exceeds any subset's own.
    let rates (lambda: float) (r: PartitionSummary) : float[] =
        let s = r.Gradient.Length
        let d = GroupedNewtonRates.cubeRoots r

        let own =
            Array.init s (fun i -> line lambda r.Gradient.[i] r.Hessian.[i, i] d.[i] |> Option.defaultValue 0.0)

        let g1 = DenseAlgebra.dot r.Gradient own

        let alpha =
            line lambda g1 (quadratic r.Hessian own) (weighted d own) |> Option.defaultValue 1.0 |> min 1.0

        own |> Array.map (fun e -> alpha * e)

    /// The decrease the S-dimensional model predicts for rates η: ḡᵀη − ½ηᵀH̄η − (λ/6)‖Dη‖³.
    let predictedDecrease (lambda: float) (r: PartitionSummary) (eta: float[]) =
        let g = DenseAlgebra.dot r.Gradient eta
        let w = weighted (GroupedNewtonRates.cubeRoots r) eta
        g - 0.5 * quadratic r.Hessian eta - lambda / 6.0 * w * w * w

    /// Adds the cosine between each subset's gradient and its direction of the previous step.
    let observe (partition: Partition) (gradient: Parameters) (a: AdaptiveState) =
        if a.Previous.Length = 0 then
            a
        else
            let s = partition.Count
            let dot, gg, uu = Array.zeroCreate s, Array.zeroCreate s, Array.zeroCreate s
            let keys = gradient.Keys
            let values = gradient.Values

            for k in 0 .. keys.Length - 1 do
                let i = partition.SubsetOf keys.[k]
                let g, u = values.[k], a.Previous.[k]
                dot.[i] <- dot.[i] + Tensor.toScalar (Tensor.dot g u)
                gg.[i] <- gg.[i] + Tensor.toScalar (Tensor.dot g g)
                uu.[i] <- uu.[i] + Tensor.toScalar (Tensor.dot u u)

            let cosine i =
                let n = sqrt gg.[i] * sqrt uu.[i]
                if n > 0.0 && Double.IsFinite n then dot.[i] / n else 0.0

            {
                a with
                    CosineSum = Array.init s (fun i -> a.CosineSum.[i] + cosine i)
                    CosineCount = a.CosineCount + 1
            }

    /// c_s ← c_s·exp(κ·mean cosine) within [MinScale, MaxScale], the sums reset.
    let rescale (o: AdaptiveRateOptions) (a: AdaptiveState) =
        if a.CosineCount = 0 then
            a
        else
            let n = float a.CosineCount

            {
                a with
                    Scales = Array.map2 (fun c m -> Math.Clamp(c * exp (o.Adaptation * m / n), o.MinScale, o.MaxScale)) a.Scales a.CosineSum
                    CosineSum = Array.zeroCreate a.Scales.Length
                    CosineCount = 0
            }

    /// Whether a training loss is a blow-up: above BlowUpFactor times the running average while
    /// there is a curvature update to go back to.
    let blownUp (o: AdaptiveRateOptions) (a: AdaptiveState) (average: float option) (loss: float) =
        match average with
        | Some m -> a.Snapshot.Length > 0 && loss > o.BlowUpFactor * m
        | None -> false

    /// The scales the curvature batch confirms for η: the rates Damping·c_s·η_s must lower the
    /// batch's loss by at least Acceptance times the model's prediction (within the rounding of
    /// the loss's dtype where the prediction is that small); else every c_s is halved, at most
    /// MaxBacktracks times. Returns the scales, the halvings, and whether the last was confirmed.
    let confirm
        (o: AdaptiveRateOptions)
        (lambda: float)
        (damping: float[])
        (r: PartitionSummary)
        (lossAt: float[] -> float)
        (eta: float[])
        (scales: float[])
        =
        let tolerance = 1e-5 * abs r.Loss

        let rec go (scales: float[]) k =
            let applied = Array.init eta.Length (fun i -> damping.[i] * scales.[i] * eta.[i])
            let predicted = predictedDecrease lambda r applied
            let actual = r.Loss - lossAt applied

            let ok =
                Double.IsFinite actual
                && (if predicted <= tolerance then actual > -tolerance else actual >= o.Acceptance * predicted)

            if ok || k >= o.MaxBacktracks then
                scales, k, ok
            else
                go (scales |> Array.map (fun c -> max o.MinScale (0.5 * c))) (k + 1)

        go scales 0

    /// The state after a blow-up: back to the last curvature update's parameters, every scale
    /// quartered, the direction restarted, a curvature update at the next step.
    let restore (o: AdaptiveRateOptions) (a: AdaptiveState) = {
        a with
            Scales = a.Scales |> Array.map (fun c -> max o.MinScale (0.25 * c))
            CosineSum = Array.zeroCreate a.Scales.Length
            CosineCount = 0
            Previous = [||]
            Force = true
            Restores = a.Restores + 1
    }

    /// An empty first-order state with the same step count (the direction restarts).
    let restart (rule: RuleState) = { rule with Buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference) }
