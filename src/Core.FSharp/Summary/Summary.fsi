namespace GroupedNewton

/// <summary>The derivatives of a loss along a direction u according to a partition, in float64.</summary>
type PartitionSummary = {
    /// <summary>ḡ_s = ⟨∇_{T_s}L, u_s⟩.</summary>
    Gradient: float[]
    /// <summary>H̄_st = u_sᵀ H u_t, exactly symmetric.</summary>
    Hessian: float[,]
    /// <summary>D̄_sss = D³L[u_s, u_s, u_s]; empty when the third order was not requested.</summary>
    ThirdDiagonal: float[]
    /// <summary>The loss at θ.</summary>
    Loss: float
    /// <summary>Reverse sweeps spent: 1 + S (the reference spends 1 + 2S).</summary>
    ReversePasses: int
}

/// <summary>What a summary computes.</summary>
type SummaryOptions = {
    /// <summary>Compute the diagonal of D̄ (off: ḡ and H̄ only, about half the cost).</summary>
    ThirdOrder: bool
    /// <summary>Keep only the diagonal of H̄ (each pass then differentiates one η_s).</summary>
    DiagonalOnly: bool
} with

    /// <summary>ḡ, the full H̄ and the diagonal of D̄.</summary>
    static member Defaults: SummaryOptions

/// <summary>
/// Derivatives according to a partition by composed nested differentiation of the
/// restricted function φ(η) = L(θ − Σ_s η_s u_s) at η = 0: ḡ = −∇φ, H̄ = ∇²φ, D̄ = −∇³φ.
/// </summary>
/// <remarks>
/// Each η_s is its own scalar, so a derivative along one subset perturbs only that subset's
/// tensors: the others stay constants at that level and cost nothing. One reverse pass gives ḡ;
/// one forward∘reverse∘forward pass per subset t gives H̄_ts for s ≥ t (the rest by symmetry)
/// and D̄_ttt; that pass's reverse level covers only η_{s≥t}, so subsets before t, and the
/// layers only they feed, are never differentiated in it. The direction u is matched to the
/// parameters by identity, else by name. Formulas: docs/groupednewton.md; laws and worked
/// values: docs/derivatives.md.
/// </remarks>
module Summary =
    /// <summary>ḡ, H̄ and (optionally) diag D̄ for a loss closure, parameters, a partition and a direction u
    /// (keyed like the parameters, by identity or by name), as options say.</summary>
    /// <exception cref="GroupedNewton.OptimizationException">the loss at θ, or an entry of ḡ, H̄ (off-diagonal ones included) or D̄, is not finite (the message names the entry by subset indices and names, and its value, e.g. "H̄[0, 1] of subsets 0 and 1 ('x', 'y') is Infinity").</exception>
    /// <exception cref="System.ArgumentException">u lacks a value for a parameter.</exception>
    /// <exception cref="GroupedNewton.ShapeMismatchException">a direction's shape differs from its parameter's.</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">the direction's dtype differs from a parameter's.</exception>
    val computeWith:
        options: SummaryOptions ->
        loss: (Parameters -> Tensor) ->
        ps: Parameters ->
        partition: Partition ->
        u: Parameters ->
            PartitionSummary

    /// <summary>ḡ, H̄ and the diagonal of D̄.</summary>
    /// <example><code lang="fsharp">
    /// let s = Summary.compute loss ps (Partition.canonical ps) u   // s.Gradient, s.Hessian, s.ThirdDiagonal
    /// </code></example>
    val compute: loss: (Parameters -> Tensor) -> ps: Parameters -> partition: Partition -> u: Parameters -> PartitionSummary

    /// <summary>The full symmetric tensor of order n ≥ 1 (S^n entries, row-major):
    /// entry (s1, …, sn) = Dⁿ L[u_s1, …, u_sn], by nested Jacobians of φ.</summary>
    /// <exception cref="System.ArgumentException">order is below 1.</exception>
    val tensor: order: int -> loss: (Parameters -> Tensor) -> ps: Parameters -> partition: Partition -> u: Parameters -> float[]
