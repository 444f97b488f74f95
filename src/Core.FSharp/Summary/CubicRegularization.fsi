namespace GroupedNewton

/// <summary>How the solver reached its answer.</summary>
[<RequireQualifiedAccess>]
type SolverPath =
    /// <summary>No cubic term (λ = 0 or D = 0) and H̄ positive definite: η = H̄⁻¹ḡ.</summary>
    | Newton
    /// <summary>H̄ positive definite: the admissible interval starts at 0.</summary>
    | Direct
    /// <summary>H̄ indefinite, D invertible: x0 from the smallest eigenvalue of D⁻¹H̄D⁻¹.</summary>
    | Analytical
    /// <summary>H̄ indefinite, D singular: x0 from the Schur complement that eliminates ker D.</summary>
    | Numerical
    /// <summary>The minimiser lies on the boundary r = x0: completed with a null-space component.</summary>
    | HardCase
    /// <summary>No minimiser (the model is unbounded below) or a numerical failure; see Message.</summary>
    | Failed

/// <summary>The solution of the anisotropic cubic-regularised model and how it was found.</summary>
type CubicSolution = {
    /// <summary>One learning rate per subset (empty when Failed).</summary>
    Eta: float[]
    /// <summary>r = ‖Dη‖.</summary>
    Radius: float
    /// <summary>Whether a solution was found (false exactly when Path is Failed).</summary>
    Converged: bool
    /// <summary>How it was found.</summary>
    Path: SolverPath
    /// <summary>Left end of the admissible interval (smallest x with M(x) ⪰ 0).</summary>
    X0: float
    /// <summary>Right end of the final bracket.</summary>
    X1: float
    /// <summary>Bracketing and root-finding iterations spent.</summary>
    Iterations: int
    /// <summary>‖M(r)η − ḡ‖.</summary>
    Residual: float
    /// <summary>What happened, in words (for Failed: why).</summary>
    Message: string
}

/// <summary>Solver settings.</summary>
type CubicOptions = {
    /// <summary>d_s ≤ threshold · max(d) counts as zero (relative, so invariant under rescaling); 0: exact zeros only.</summary>
    SingularThreshold: float
    /// <summary>Bound on bracketing and root-finding iterations.</summary>
    MaxIterations: int
} with

    /// <summary>Exact zeros of d only (threshold 0), at most 200 iterations.</summary>
    static member Defaults: CubicOptions

/// <summary>
/// The anisotropic cubic-regularised Newton step on the S-dimensional model
/// T(η) = −ḡᵀη + ½ηᵀH̄η + (λ/6)‖Dη‖³, D = Diag(d): the solution of largest ‖Dη‖ of
/// η = (H̄ + (λ/2)‖Dη‖D²)⁻¹ḡ, the global minimiser of T, in float64.
/// </summary>
/// <remarks>The solution is the r ≥ x0 with r = ‖D M(r)⁻¹ḡ‖, M(r) = H̄ + (λ/2)·r·D², for which
/// M(r) ⪰ 0. H̄ is symmetrised, and every instance is first brought to a canonical scale by the
/// diagonal map e_i = 1/√|H̄_ii| (else 1/d_i, else 1/|ḡ_i|): H̄ → EH̄E, ḡ → Eḡ, d → Ed, η = Eη′.
/// An instance rescaled per subset (H̄ → AH̄A, ḡ → Aḡ, d → Ad) maps to the same canonical
/// instance, so every decision of the solver (definiteness, hard case, thresholds) is invariant
/// and the answer is η/A. Worked values and the solver's laws: docs/derivatives.md.</remarks>
module CubicRegularization =
    /// <summary>The solution with explicit options.</summary>
    /// <exception cref="System.ArgumentException">sizes disagree, an entry is not finite, d is negative or λ is negative.</exception>
    val solveWith: options: CubicOptions -> h: float[,] -> g: float[] -> d: float[] -> lambda: float -> CubicSolution

    /// <summary>The solution with the default options.</summary>
    /// <example><code lang="fsharp">
    /// CubicRegularization.solve (array2D [[6.; 2.]; [2.; 12.]]) [|6.; 13.|] [|2. ** (1./3.); 6. ** (1./3.)|] 1.0
    /// // Eta = [|0.60194; 0.80181|], Radius = 1.6426
    /// </code></example>
    val solve: h: float[,] -> g: float[] -> d: float[] -> lambda: float -> CubicSolution

    /// <summary>η = H̄⁻¹ḡ without any definiteness requirement (the order-2 step), at the
    /// canonical scale; None when H̄ is singular.</summary>
    val solveLinear: h: float[,] -> g: float[] -> float[] option
