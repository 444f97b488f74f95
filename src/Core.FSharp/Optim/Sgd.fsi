namespace GroupedNewton

/// <summary>SGD hyperparameters, with PyTorch's semantics.</summary>
type SgdOptions = {
    /// <summary>The step is θ ← θ − LearningRate·d (default 0.01; a group's own rate replaces it).</summary>
    LearningRate: float
    /// <summary>μ of the momentum buffer b (0: plain SGD).</summary>
    Momentum: float
    /// <summary>The buffer adds (1 − Dampening)·d after the first step.</summary>
    Dampening: float
    /// <summary>The direction d + μ·b instead of b (needs Momentum &gt; 0 and Dampening = 0).</summary>
    Nesterov: bool
    /// <summary>Coupled L2: d = g + WeightDecay·θ.</summary>
    WeightDecay: float
} with

    /// <summary>Learning rate 0.01, no momentum, no dampening, no Nesterov, no weight decay.</summary>
    static member Defaults: SgdOptions

    /// <summary>Checks every option.</summary>
    /// <exception cref="System.ArgumentException">a number is negative or not finite, or Nesterov is set without
    /// Momentum &gt; 0 and Dampening = 0 (the parameter name is the option's).</exception>
    member Validate: unit -> unit

/// <summary>The SGD rule: d = g + wd·θ; with momentum, b ← d on the first step, else b ← μ·b + (1 − dampening)·d,
/// and the direction is b (or d + μ·b with Nesterov). Pure: it returns the direction at learning rate 1 and the next state.</summary>
type SgdRule =
    inherit UpdateRule

    /// <exception cref="System.ArgumentException">the options are not valid (see <c>SgdOptions.Validate</c>).</exception>
    new: options: SgdOptions -> SgdRule

    /// <summary>The options the rule was built with.</summary>
    member Options: SgdOptions

    /// <summary>"sgd".</summary>
    override Name: string

    /// <summary>["momentum"] with momentum, else none.</summary>
    override BufferNames: string[]

    override Direction: ps: Parameters * gradient: Parameters * state: RuleState -> Parameters * RuleState

/// <summary>Creating SGD optimizers.</summary>
module Sgd =
    /// <summary>An SGD optimizer over all parameters in one group "all" at <c>options.LearningRate</c>.</summary>
    /// <exception cref="System.ArgumentException">the options are not valid.</exception>
    /// <example><code lang="fsharp">let sgd = Sgd.create { SgdOptions.Defaults with LearningRate = 0.05; Momentum = 0.9 } model.Parameters</code></example>
    val create: options: SgdOptions -> ps: Parameters -> FirstOrderOptimizer

    /// <summary>An SGD optimizer with explicit groups, each with its own learning rate (<c>options.LearningRate</c> is then unused).</summary>
    /// <exception cref="System.ArgumentException">the options are not valid, or a parameter is in no group or in two.</exception>
    val createWithGroups: options: SgdOptions -> ps: Parameters -> groups: ParamGroup[] -> FirstOrderOptimizer
