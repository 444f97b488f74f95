namespace GroupedNewton

/// Finite-difference counterparts of `Ad`, computed in float64: the oracles the tests
/// check automatic derivatives against. Steps are relative to the input's magnitude.
[<RequireQualifiedAccess>]
module Numerical =
    let private f64 (t: Tensor) = Tensor.cast Dtype.Float64 t

    let private along (x: Tensor) (v: Tensor) (h: float) = f64 x + h * f64 v

    let private step (x: Tensor) (baseStep: float) =
        let a = Tensor.toArray x
        baseStep * (1.0 + (if a.Length = 0 then 0.0 else a |> Array.map abs |> Array.max))

    /// Central difference of f along v: (f(x + hv) − f(x − hv)) / 2h.
    let jvpStep (h: float) (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) = (f64 (f (along x v h)) - f64 (f (along x v -h))) / (2.0 * h)

    let jvp f x v = jvpStep (step x 1e-6) f x v

    let private unit (x: Tensor) i =
        let a = Array.zeroCreate x.Numel
        a.[i] <- 1.0
        Tensor.ofArrayShape a x.Raw.Shape

    /// Gradient of a scalar function by central differences, one coordinate at a time.
    let gradStep (h: float) (f: Tensor -> Tensor) (x: Tensor) =
        let g = Array.init x.Numel (fun i -> Tensor.toScalar (jvpStep h f x (unit x i)))
        Tensor.ofArrayShape g x.Raw.Shape

    let grad f x = gradStep (step x 1e-6) f x

    /// Jacobian (f x).Shape @ x.Shape by central differences.
    let jacobian (f: Tensor -> Tensor) (x: Tensor) =
        let ys = (f x).Raw.Shape
        let h = step x 1e-6
        let cols = Array.init x.Numel (fun i -> jvpStep h f x (unit x i) |> Tensor.flatten)
        Tensor.stack 1 cols |> Tensor.view (Array.append ys x.Raw.Shape)

    /// vᵀJ by central differences.
    let vjp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) = grad (fun z -> Tensor.dot (f64 (f z)) (f64 v)) x

    /// Hessian-vector product: central difference of the numerical gradient along v.
    let hvp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) =
        let h = step x 1e-4
        let gi = fun z -> gradStep (step x 1e-5) f z
        (gi (along x v h) - gi (along x v -h)) / (2.0 * h)

    /// Hessian x.Shape @ x.Shape by second differences.
    let hessian (f: Tensor -> Tensor) (x: Tensor) =
        let rows = Array.init x.Numel (fun i -> hvp f x (unit x i) |> Tensor.flatten)
        Tensor.stack 0 rows |> Tensor.view (Array.append x.Raw.Shape x.Raw.Shape)

    /// The k-th derivative of t ↦ f(x + t·v) at 0 for a scalar f (k = 1..4), by central stencils.
    let directional (order: int) (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) =
        let g t = Tensor.toScalar (f (along x v t))

        match order with
        | 1 -> let h = step x 1e-6 in (g h - g -h) / (2.0 * h)
        | 2 -> let h = step x 1e-4 in (g h - 2.0 * g 0.0 + g -h) / (h * h)
        | 3 -> let h = step x 1e-3 in (g (2.0 * h) - 2.0 * g h + 2.0 * g -h - g (-2.0 * h)) / (2.0 * h * h * h)
        | 4 -> let h = step x 1e-2 in (g (2.0 * h) - 4.0 * g h + 6.0 * g 0.0 - 4.0 * g -h + g (-2.0 * h)) / (h * h * h * h)
        | _ -> invalidArg "order" (sprintf "directional: order %d is not supported (1 to 4)" order)

    /// Derivative of f at a scalar x by central differences.
    let diff (f: Tensor -> Tensor) (x: Tensor) = jvp f x (Tensor.onesLike (f64 x))

    /// n-th derivative at a scalar x (nested central differences; n ≤ 3 is accurate to ~1e-6).
    let rec diffn (n: int) (f: Tensor -> Tensor) (x: Tensor) =
        if n = 0 then
            f64 (f x)
        else
            let h =
                step
                    x
                    (match n with
                     | 1 -> 1e-6
                     | 2 -> 1e-4
                     | _ -> 1e-3)

            let one = Tensor.onesLike (f64 x)
            (diffn (n - 1) f (along x one h) - diffn (n - 1) f (along x one -h)) / (2.0 * h)
