namespace GroupedNewton

open GroupedNewton.Autodiff

/// <summary>Derivatives of functions of tensors, nestable to any depth and order.</summary>
/// <remarks>
/// Each call opens its own nesting level with a fresh tag and extracts derivatives by that
/// tag, so a function that closes over an outer variable is never confused with its own
/// input: <c>Ad.diff (fun x -> x * Ad.diff (fun _ -> x) y0) x0</c> is 0. Every result is
/// itself differentiable by enclosing calls (forward over reverse, reverse³, ...).
/// </remarks>
[<RequireQualifiedAccess>]
module Ad =
    /// Opens a reverse level: the value of f at xs and its pullback (seed to adjoints).
    val internal reverse: f: (Dual[] -> Dual) -> xs: Dual[] -> Dual * (Dual -> Dual[])

    /// Opens a forward level: the value of f at xs and its derivative along vs.
    val internal forward: f: (Dual[] -> Dual) -> xs: Dual[] -> vs: Dual[] -> Dual * Dual

    /// <summary>The value of a scalar function and its gradients with respect to several inputs (reverse mode).</summary>
    /// <exception cref="GroupedNewton.DifferentiationException">f does not return a one-element tensor.</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">an input is an int32 tensor.</exception>
    val valueAndGradMany: f: (Tensor[] -> Tensor) -> xs: Tensor[] -> Tensor * Tensor[]

    /// <summary>Gradients of a scalar function with respect to several inputs; an input that does not reach the result gets zeros of its shape.</summary>
    val gradMany: f: (Tensor[] -> Tensor) -> xs: Tensor[] -> Tensor[]

    /// <summary>The value of a scalar function and its gradient.</summary>
    val valueAndGrad: f: (Tensor -> Tensor) -> x: Tensor -> Tensor * Tensor

    /// <summary>Gradient of a scalar function (reverse mode).</summary>
    /// <example><code lang="fsharp">Ad.grad (fun x -> Tensor.sum (x * x)) (Tensor.ofArray [| 1.0; 2.0 |])   // [2; 4]</code></example>
    val grad: f: (Tensor -> Tensor) -> x: Tensor -> Tensor

    /// <summary>(f xs, Σ Jᵢ·vᵢ): the directional derivative along one direction per input (forward mode).</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">a direction's shape or dtype differs from its input's.</exception>
    val jvpMany: f: (Tensor[] -> Tensor) -> xs: Tensor[] -> vs: Tensor[] -> Tensor * Tensor

    /// <summary>(f x, J·v) (forward mode).</summary>
    val jvp: f: (Tensor -> Tensor) -> x: Tensor -> v: Tensor -> Tensor * Tensor

    /// <summary>(f x, vᵀ·J) (reverse mode); v has the shape of f x.</summary>
    val vjp: f: (Tensor -> Tensor) -> x: Tensor -> v: Tensor -> Tensor * Tensor

    /// <summary>Hessian-vector product H·v of a scalar function (reverse over forward).</summary>
    val hvp: f: (Tensor -> Tensor) -> x: Tensor -> v: Tensor -> Tensor

    /// <summary>Hessian-vector product of a scalar function of several inputs, one direction per input.</summary>
    val hvpMany: f: (Tensor[] -> Tensor) -> xs: Tensor[] -> vs: Tensor[] -> Tensor[]

    /// <summary>Hessian of a scalar function, of shape x.Shape @ x.Shape (one hvp per element of x).</summary>
    val hessian: f: (Tensor -> Tensor) -> x: Tensor -> Tensor

    /// <summary>Jacobian of shape (f x).Shape @ x.Shape: by jvps when x is the smaller side, else by vjps.</summary>
    val jacobian: f: (Tensor -> Tensor) -> x: Tensor -> Tensor

    /// <summary>Derivative of f at a one-element x (forward mode).</summary>
    /// <exception cref="GroupedNewton.DifferentiationException">x has more than one element.</exception>
    /// <example><code lang="fsharp">Ad.diff (fun x -> x * x * x / 3.0 + x) (Tensor.scalar 2.0)   // 5</code></example>
    val diff: f: (Tensor -> Tensor) -> x: Tensor -> Tensor

    /// <summary>n-th derivative of f at a one-element x (n nested forward levels).</summary>
    val diffn: n: int -> f: (Tensor -> Tensor) -> x: Tensor -> Tensor
