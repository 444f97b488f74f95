namespace GroupedNewton

open System

[<RequireQualifiedAccess>]
type SolverPath =
    | Newton
    | Direct
    | Analytical
    | Numerical
    | HardCase
    | Failed

type CubicSolution = {
    Eta: float[]
    Radius: float
    Converged: bool
    Path: SolverPath
    X0: float
    X1: float
    Iterations: int
    Residual: float
    Message: string
}

type CubicOptions = {
    SingularThreshold: float
    MaxIterations: int
} with

    static member Defaults = { SingularThreshold = 0.0; MaxIterations = 200 }

module CubicRegularization =
    let private fail path x0 x1 iters msg = {
        Eta = [||]
        Radius = nan
        Converged = false
        Path = path
        X0 = x0
        X1 = x1
        Iterations = iters
        Residual = nan
        Message = msg
    }

    let private validate (h: float[,]) (g: float[]) (d: float[]) (lambda: float) =
        let n = g.Length

        if Array2D.length1 h <> n || Array2D.length2 h <> n then
            invalidArg "h" (sprintf "cubic solver: H̄ is %dx%d but ḡ has %d entries" (Array2D.length1 h) (Array2D.length2 h) n)

        if d.Length <> n then
            invalidArg "d" (sprintf "cubic solver: d has %d entries, ḡ has %d" d.Length n)

        for i in 0 .. n - 1 do
            if not (Double.IsFinite g.[i]) then
                invalidArg "g" (sprintf "cubic solver: ḡ[%d] = %g is not finite" i g.[i])

            if not (Double.IsFinite d.[i]) || d.[i] < 0.0 then
                invalidArg "d" (sprintf "cubic solver: d[%d] = %g must be finite and non-negative" i d.[i])

            for j in 0 .. n - 1 do
                if not (Double.IsFinite h.[i, j]) then
                    invalidArg "h" (sprintf "cubic solver: H̄[%d, %d] = %g is not finite" i j h.[i, j])

        if not (Double.IsFinite lambda) || lambda < 0.0 then
            invalidArg "lambda" (sprintf "cubic solver: λ = %g must be finite and non-negative" lambda)

    let private solveCore (options: CubicOptions) (h: float[,]) (g: float[]) (d: float[]) (lambda: float) : CubicSolution =
        let n = g.Length
        let h = Array2D.init n n (fun i j -> 0.5 * (h.[i, j] + h.[j, i]))
        let dmax = if n = 0 then 0.0 else Array.max d
        let m (x: float) = Array2D.init n n (fun i j -> h.[i, j] + (if i = j then 0.5 * lambda * x * d.[i] * d.[i] else 0.0))

        let scale = DenseAlgebra.maxAbs n h

        let solveM (x: float) =
            let mx = m x

            match DenseAlgebra.tryCholeskySolve mx g with
            | Some eta -> eta
            | None -> DenseAlgebra.eigenSolve mx g (1e-13 * (scale + 0.5 * lambda * x * dmax * dmax))

        let dnorm (eta: float[]) = sqrt (Array.fold2 (fun acc di ei -> acc + (di * ei) * (di * ei)) 0.0 d eta)
        let residual (x: float) (eta: float[]) = DenseAlgebra.norm (Array.map2 (-) (DenseAlgebra.matVec (m x) eta) g)

        let finish path x0 x1 iters (r: float) (eta: float[]) msg =
            if eta |> Array.forall Double.IsFinite && Double.IsFinite r then
                {
                    Eta = eta
                    Radius = r
                    Converged = true
                    Path = path
                    X0 = x0
                    X1 = x1
                    Iterations = iters
                    Residual = residual r eta
                    Message = msg
                }
            else
                fail SolverPath.Failed x0 x1 iters (sprintf "%s: the solution is not finite" msg)

        // the τ with ‖D(η + τz)‖ = radius: both roots and whether they are real (else the
        // discriminant is floored at 0, the τ closest to it); None when Dz = 0
        let toRadius (eta: float[]) (z: float[]) (radius: float) =
            let dz = Array.map2 (*) d z
            let de = Array.map2 (*) d eta
            let a = DenseAlgebra.dot dz dz
            let b = 2.0 * DenseAlgebra.dot de dz
            let c = DenseAlgebra.dot de de - radius * radius
            let disc = b * b - 4.0 * a * c

            if a <= 1e-300 then
                None
            else
                let root = sqrt (max 0.0 disc)
                Some((-b + root) / (2.0 * a), (-b - root) / (2.0 * a), disc >= 0.0)

        let hPd = (DenseAlgebra.tryCholeskySolve h g).IsSome

        if n = 0 then
            {
                Eta = [||]
                Radius = 0.0
                Converged = true
                Path = SolverPath.Newton
                X0 = 0.0
                X1 = 0.0
                Iterations = 0
                Residual = 0.0
                Message = "no subsets"
            }
        elif lambda = 0.0 || dmax = 0.0 then
            if hPd then
                let eta = (DenseAlgebra.tryCholeskySolve h g).Value
                finish SolverPath.Newton 0.0 0.0 0 (dnorm eta) eta "Newton step (no cubic term)"
            else
                fail
                    SolverPath.Failed
                    0.0
                    0.0
                    0
                    "H̄ is not positive definite and there is no cubic term (λ = 0 or D̄ = 0): the model has no minimiser"
        else
            let singular = d |> Array.map (fun di -> di <= options.SingularThreshold * dmax)
            // ---- x0: the smallest x with M(x) ⪰ 0
            let x0r =
                if hPd then
                    Ok(0.0, SolverPath.Direct, 0)
                elif not (Array.contains true singular) then
                    let k = Array2D.init n n (fun i j -> h.[i, j] / (d.[i] * d.[j]))
                    Ok((2.0 / lambda) * max 0.0 (-(DenseAlgebra.minEigenvalue k)), SolverPath.Analytical, 0)
                else
                    // D singular: M(x) ⪰ 0 iff H̄_KK ≻ 0 (K: subsets with d = 0) and the Schur
                    // complement Sc = H̄_RR − H̄_RK H̄_KK⁻¹ H̄_KR satisfies Sc + (λ/2) x D_R² ⪰ 0,
                    // so x0 = (2/λ)·max(0, −λmin(D_R⁻¹ Sc D_R⁻¹)): exact, no root finding (whose
                    // answer is ill-determined when the critical direction lies near ker D)
                    let kernel = [|
                        for i in 0 .. n - 1 do
                            if singular.[i] then
                                yield i
                    |]

                    let range = [|
                        for i in 0 .. n - 1 do
                            if not singular.[i] then
                                yield i
                    |]

                    let hkk = Array2D.init kernel.Length kernel.Length (fun a b -> h.[kernel.[a], kernel.[b]])

                    let cols =
                        range
                        |> Array.map (fun r -> DenseAlgebra.tryCholeskySolve hkk (kernel |> Array.map (fun k -> h.[k, r])))

                    if cols |> Array.exists Option.isNone then
                        Error "the model is unbounded below: H̄ restricted to the subsets with D̄ = 0 is not positive definite"
                    else
                        let x = cols |> Array.map Option.get // x.[j] = H̄_KK⁻¹ H̄_K,r_j

                        let sc =
                            Array2D.init range.Length range.Length (fun a b ->
                                h.[range.[a], range.[b]]
                                - Array.fold2 (fun acc k xk -> acc + h.[range.[a], k] * xk) 0.0 kernel x.[b])

                        let kr =
                            Array2D.init range.Length range.Length (fun a b ->
                                0.5 * (sc.[a, b] + sc.[b, a]) / (d.[range.[a]] * d.[range.[b]]))

                        Ok((2.0 / lambda) * max 0.0 (-(DenseAlgebra.minEigenvalue kr)), SolverPath.Numerical, 0)

            match x0r with
            | Error msg -> fail SolverPath.Failed nan nan 0 msg
            | Ok(x0, path, iters0) ->
                let f x = dnorm (solveM x) - x
                // the first point right of x0 where M is numerically positive definite: f is
                // evaluated there without truncating the near-null direction (truncating it
                // would drop the component that makes f large and fake a boundary case)
                let mutable xs = if x0 = 0.0 then 0.0 else x0 * (1.0 + 1e-12)
                let mutable tries = 0

                while x0 > 0.0 && tries < 60 && (DenseAlgebra.tryCholeskySolve (m xs) g).IsNone do
                    xs <- x0 + 4.0 * (xs - x0)
                    tries <- tries + 1

                let fxs = f xs
                // the boundary solution r = x0: the minimum-norm solution of M(x0)η = ḡ plus
                // the null-space component that makes ‖Dη‖ = x0
                let gnorm = DenseAlgebra.norm g

                let nullData () =
                    let mx = m x0
                    let w, v = DenseAlgebra.symmetricEigen mx
                    let cutoff = 1e-9 * (scale + 0.5 * lambda * x0 * dmax * dmax)
                    let eta0 = DenseAlgebra.eigenSolve mx g cutoff

                    let nullIdx = [|
                        for k in 0 .. n - 1 do
                            if abs w.[k] <= cutoff then
                                yield k
                    |]

                    eta0, (if nullIdx.Length = 0 then None else Some(Array.init n (fun i -> v.[i, nullIdx.[0]])))

                let boundary () =
                    match nullData () with
                    | _, None -> fail SolverPath.Failed x0 x0 iters0 "hard case without a null space (numerical trouble)"
                    | eta0, Some z ->
                        match toRadius eta0 z x0 with
                        | None -> fail SolverPath.Failed x0 x0 iters0 "hard case whose null direction lies in ker D"
                        | Some(tPlus, tMinus, _) ->
                            // two boundary minimisers, differing in the null component. Interior
                            // solutions next to this case point along sign(ḡᵀz), invariant under
                            // rescaling: use it when it carries signal; at rounding level take the
                            // smaller |τ| (their order is also preserved by rescaling)
                            let gz = DenseAlgebra.dot g z

                            let tau =
                                if abs gz > 1e-12 * gnorm then (if gz > 0.0 then tPlus else tMinus)
                                elif abs tPlus <= abs tMinus then tPlus
                                else tMinus

                            let eta = Array.map2 (fun e zi -> e + tau * zi) eta0 z
                            finish SolverPath.HardCase x0 x0 iters0 (dnorm eta) eta "boundary solution completed in the null space of M(x0)"
                // Near the pole x0, ‖Dη(r)‖ moves by about r/(r − x0) ulps per ulp of r, so the
                // root's η can miss ‖Dη‖ = r by far more than rounding. The miss lies along the
                // near-null direction z of M(r), whose eigenvalue is small exactly then: moving η
                // along z to ‖D(η + τz)‖ = r costs only |τ|·μ_min in the residual. Kept only when
                // the residual stays at rounding level.
                let polish (r: float) (eta: float[]) =
                    if x0 <= 0.0 || abs (dnorm eta - r) <= 1e-12 * (1.0 + r) then
                        eta
                    else
                        let w, v = DenseAlgebra.symmetricEigen (m r)
                        let z = Array.init n (fun i -> v.[i, 0])

                        match toRadius eta z r with
                        | Some(tPlus, tMinus, true) when w.[0] >= 0.0 ->
                            let tau = if abs tPlus <= abs tMinus then tPlus else tMinus
                            let moved = Array.map2 (fun e zi -> e + tau * zi) eta z
                            let allowed = max (residual r eta) (1e-10 * (1.0 + gnorm))

                            if residual r moved <= allowed then moved else eta
                        | _ -> eta
                // boundary when f is not positive just right of x0, or when the interior root
                // lies within rounding of x0 (below)
                if fxs <= 0.0 then
                    if x0 = 0.0 then
                        let eta = solveM 0.0
                        finish path x0 x0 iters0 (dnorm eta) eta "the root is at 0"
                    else
                        boundary ()
                else
                    let mutable x1 = xs + max 1.0 xs
                    let mutable it = 0

                    while f x1 >= 0.0 && it < options.MaxIterations do
                        x1 <- xs + 3.0 * (x1 - xs)
                        it <- it + 1

                    if f x1 >= 0.0 then
                        fail SolverPath.Failed x0 x1 (iters0 + it) "could not bracket the root"
                    else
                        let r, iters, ok = DenseAlgebra.brent f xs x1 0.0 options.MaxIterations

                        if not ok then fail SolverPath.Failed x0 x1 (iters0 + it + iters) "root finding did not converge"
                        // a root within rounding of x0 cannot resolve M(r)⁻¹ḡ: take its limit,
                        // the boundary solution
                        elif x0 > 0.0 && r - x0 <= 1e-9 * x0 then boundary ()
                        else finish path x0 x1 (iters0 + it + iters) r (polish r (solveM r)) "converged"

    // The canonical scale of an instance, to which every solve first brings it: the
    // diagonal map e_i = 1/√|H̄_ii| (else 1/d_i, else 1/|ḡ_i|), under which
    // H̄ → EH̄E, ḡ → Eḡ, d → Ed and η = Eη′: an instance rescaled per subset (H̄ → AH̄A,
    // ḡ → Aḡ, d → Ad) maps to the same canonical instance, so every decision of the solver
    // (definiteness, hard case, thresholds) is invariant, as the method's claim requires.
    let private canonicalScale (h: float[,]) (g: float[]) (d: float[]) =
        Array.init g.Length (fun i ->
            let hii = abs h.[i, i]

            if hii > 0.0 then 1.0 / sqrt hii
            elif d.[i] > 0.0 then 1.0 / d.[i]
            elif g.[i] <> 0.0 then 1.0 / abs g.[i]
            else 1.0)

    let solveWith (options: CubicOptions) (h: float[,]) (g: float[]) (d: float[]) (lambda: float) : CubicSolution =
        validate h g d lambda
        let n = g.Length
        let e = canonicalScale h g d
        let hn = Array2D.init n n (fun i j -> e.[i] * 0.5 * (h.[i, j] + h.[j, i]) * e.[j])
        let sol = solveCore options hn (Array.map2 (*) e g) (Array.map2 (*) e d) lambda

        if not sol.Converged then
            sol
        else
            let eta = Array.map2 (*) e sol.Eta

            let m =
                Array2D.init n n (fun i j -> h.[i, j] + (if i = j then 0.5 * lambda * sol.Radius * d.[i] * d.[i] else 0.0))

            let res = DenseAlgebra.norm (Array.map2 (-) (DenseAlgebra.matVec m eta) g)
            { sol with Eta = eta; Residual = res }

    let solve (h: float[,]) (g: float[]) (d: float[]) (lambda: float) = solveWith CubicOptions.Defaults h g d lambda

    let solveLinear (h: float[,]) (g: float[]) : float[] option =
        validate h g (Array.zeroCreate g.Length) 0.0
        let n = g.Length
        let e = canonicalScale h g (Array.zeroCreate n)
        let hn = Array2D.init n n (fun i j -> e.[i] * 0.5 * (h.[i, j] + h.[j, i]) * e.[j])
        DenseAlgebra.trySolve hn (Array.map2 (*) e g) |> Option.map (Array.map2 (*) e)
