namespace GroupedNewton.CSharp
{
    /// <summary>
    /// Multiplies every group's learning rate by γ every <c>stepSize</c> epochs:
    /// lr = initial · γ^⌊epoch / stepSize⌋. Call <see cref="Step"/> once per epoch. For
    /// GroupedNewton, whose rates are computed, use <see cref="ReduceDampingOnPlateau"/>.
    /// </summary>
    public sealed class StepLR
    {
        readonly global::GroupedNewton.StepLR core;

        /// <summary>A step schedule.</summary>
        /// <param name="optimizer">The optimizer whose groups it changes.</param>
        /// <param name="stepSize">Epochs between two reductions (≥ 1).</param>
        /// <param name="gamma">The factor (&gt; 0).</param>
        public StepLR(Optimizer optimizer, int stepSize, double gamma = 0.1)
        {
            Guard.NotNull(optimizer, nameof(optimizer));
            if (stepSize < 1) throw new ArgumentOutOfRangeException(nameof(stepSize), stepSize, "must be at least 1");
            if (!(gamma > 0) || double.IsInfinity(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "must be positive and finite");
            core = Guard.Run(() => new global::GroupedNewton.StepLR(optimizer.Core, stepSize, gamma));
        }

        /// <summary>The number of epochs stepped.</summary>
        public int Epoch => core.Epoch;

        /// <summary>Ends an epoch and sets the rates for the next one.</summary>
        public void Step() => Guard.Run(core.Step);
    }

    /// <summary>
    /// Multiplies the learning rates by <c>factor</c> when a metric (lower is better) has not
    /// improved by more than the relative <c>threshold</c> for <c>patience</c> epochs, then waits
    /// <c>cooldown</c> epochs; never below <c>minLearningRate</c>. Call <see cref="Step"/> once per epoch.
    /// </summary>
    public sealed class ReduceLROnPlateau
    {
        readonly global::GroupedNewton.ReduceLROnPlateau core;

        /// <summary>A plateau schedule.</summary>
        /// <param name="optimizer">The optimizer whose groups it changes.</param>
        /// <param name="factor">In (0, 1).</param>
        /// <param name="patience">Epochs without improvement tolerated (≥ 0).</param>
        /// <param name="threshold">Relative improvement that counts (≥ 0).</param>
        /// <param name="cooldown">Epochs to wait after a reduction (≥ 0).</param>
        /// <param name="minLearningRate">Lower bound of the rates (≥ 0).</param>
        public ReduceLROnPlateau(Optimizer optimizer, double factor = 0.1, int patience = 10, double threshold = 1e-4,
                                 int cooldown = 0, double minLearningRate = 0.0)
        {
            Guard.NotNull(optimizer, nameof(optimizer));
            if (!(factor > 0 && factor < 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "must be in (0, 1)");
            if (patience < 0) throw new ArgumentOutOfRangeException(nameof(patience), patience, "must be non-negative");
            if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "must be non-negative");
            if (cooldown < 0) throw new ArgumentOutOfRangeException(nameof(cooldown), cooldown, "must be non-negative");
            if (!(minLearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(minLearningRate), minLearningRate, "must be non-negative");
            core = Guard.Run(() => new global::GroupedNewton.ReduceLROnPlateau(optimizer.Core, factor, patience, threshold, cooldown, minLearningRate));
        }

        /// <summary>The best metric seen.</summary>
        public double Best => core.Best;

        /// <summary>Ends an epoch with its metric (e.g. the validation loss).</summary>
        /// <param name="metric">The metric, lower is better; not NaN.</param>
        public void Step(double metric)
        {
            if (double.IsNaN(metric)) throw new ArgumentOutOfRangeException(nameof(metric), metric, "the metric is NaN");
            Guard.Run(() => core.Step(metric));
        }
    }

    /// <summary>
    /// Multiplies GroupedNewton's damping (or λ_int) by <c>factor</c> when the epoch's training
    /// loss has not improved by the relative <c>threshold</c> for <c>patience</c> epochs (the
    /// paper's final runs: factor 0.5, patience 2, on the damping).
    /// </summary>
    public sealed class ReduceDampingOnPlateau
    {
        readonly global::GroupedNewton.ReduceDampingOnPlateau core;

        /// <summary>A plateau schedule on the damping.</summary>
        /// <param name="optimizer">The GroupedNewton optimizer.</param>
        /// <param name="factor">In (0, 1).</param>
        /// <param name="patience">Epochs without improvement tolerated (≥ 0).</param>
        /// <param name="threshold">Relative improvement that counts (≥ 0).</param>
        /// <param name="cooldown">Epochs to wait after a reduction (≥ 0).</param>
        /// <param name="applyToLambdaInt">Reduce λ_int instead of the damping.</param>
        public ReduceDampingOnPlateau(GroupedNewtonOptimizer optimizer, double factor = 0.5, int patience = 2, double threshold = 1e-4,
                                      int cooldown = 0, bool applyToLambdaInt = false)
        {
            Guard.NotNull(optimizer, nameof(optimizer));
            if (!(factor > 0 && factor < 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "must be in (0, 1)");
            if (patience < 0) throw new ArgumentOutOfRangeException(nameof(patience), patience, "must be non-negative");
            if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "must be non-negative");
            if (cooldown < 0) throw new ArgumentOutOfRangeException(nameof(cooldown), cooldown, "must be non-negative");
            core = Guard.Run(() => new global::GroupedNewton.ReduceDampingOnPlateau(
                (global::GroupedNewton.GroupedNewtonOptimizer)optimizer.Core, factor, patience, threshold, cooldown, applyToLambdaInt));
        }

        /// <summary>Ends an epoch with its mean training loss.</summary>
        /// <param name="epochLoss">The loss; not NaN.</param>
        public void Step(double epochLoss)
        {
            if (double.IsNaN(epochLoss)) throw new ArgumentOutOfRangeException(nameof(epochLoss), epochLoss, "the loss is NaN");
            Guard.Run(() => core.Step(epochLoss));
        }
    }
}
