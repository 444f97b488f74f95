namespace GroupedNewton

/// <summary>Adam hyperparameters.</summary>
/// <remarks><c>SecondMomentOfMomentum</c> is the K-BFGS authors' variant: the second moment averages the
/// square of the first moment m instead of the square of the gradient; they use it with Beta2 = 0.9 and
/// Epsilon = 1e-4 (<c>AdamOptions.KbfgsAuthors</c>).</remarks>
type AdamOptions = {
    /// <summary>The step is θ ← θ − LearningRate·m̂/(√v̂ + ε) (default 1e-3; a group's own rate replaces it).</summary>
    LearningRate: float
    /// <summary>β₁ of the first moment, in [0, 1).</summary>
    Beta1: float
    /// <summary>β₂ of the second moment, in [0, 1).</summary>
    Beta2: float
    /// <summary>ε &gt; 0 added to √v̂.</summary>
    Epsilon: float
    /// <summary>Coupled L2: g + WeightDecay·θ enters the moments.</summary>
    WeightDecay: float
    /// <summary>v averages m² instead of g² (the K-BFGS authors' variant).</summary>
    SecondMomentOfMomentum: bool
} with

    /// <summary>Learning rate 1e-3, β₁ = 0.9, β₂ = 0.999, ε = 1e-8, no weight decay.</summary>
    static member Defaults: AdamOptions

    /// <summary>The K-BFGS authors' variant: β₂ = 0.9, ε = 1e-4, second moment of the momentum.</summary>
    static member KbfgsAuthors: AdamOptions

    /// <summary>Checks every option.</summary>
    /// <exception cref="System.ArgumentException">the learning rate or the weight decay is negative or not finite, a β is
    /// outside [0, 1), or ε is not positive (the parameter name is the option's).</exception>
    member Validate: unit -> unit

/// <summary>The Adam rule: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g² (or m² in the authors' variant), direction
/// m̂/(√v̂ + ε) with the bias corrections 1 − βᵗ. Pure: it returns the direction at learning rate 1 and the next state.</summary>
type AdamRule =
    inherit UpdateRule

    /// <exception cref="System.ArgumentException">the options are not valid (see <c>AdamOptions.Validate</c>).</exception>
    new: options: AdamOptions -> AdamRule

    /// <summary>The options the rule was built with.</summary>
    member Options: AdamOptions

    /// <summary>"adam", or "adam-kbfgs" for the authors' variant.</summary>
    override Name: string

    /// <summary>["m"; "v"].</summary>
    override BufferNames: string[]

    override Direction: ps: Parameters * gradient: Parameters * state: RuleState -> Parameters * RuleState

/// <summary>Creating Adam optimizers.</summary>
module Adam =
    /// <summary>An Adam optimizer over all parameters in one group "all" at <c>options.LearningRate</c>.</summary>
    /// <exception cref="System.ArgumentException">the options are not valid.</exception>
    val create: options: AdamOptions -> ps: Parameters -> FirstOrderOptimizer

    /// <summary>An Adam optimizer with explicit groups, each with its own learning rate (<c>options.LearningRate</c> is then unused).</summary>
    /// <exception cref="System.ArgumentException">the options are not valid, or a parameter is in no group or in two.</exception>
    val createWithGroups: options: AdamOptions -> ps: Parameters -> groups: ParamGroup[] -> FirstOrderOptimizer
