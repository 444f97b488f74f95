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

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// A per-step learning-rate schedule: a factor of the step t (the steps the optimizer has
    /// completed, from 0); before step t every group's rate becomes its initial rate times
    /// <see cref="Factor"/>(t). Stateless, so a resumed optimizer gets the rates of an
    /// uninterrupted run. Compose with <see cref="Times"/> (product of factors) and
    /// <see cref="Then"/> (one schedule for some steps, then another from its own step 0).
    /// Use it through <see cref="TrainerOptions.Schedule"/> or call <see cref="ApplyTo"/>
    /// before each step. It replaces what <see cref="StepLR"/> or <see cref="ReduceLROnPlateau"/>
    /// set on the same optimizer. GroupedNewton, whose rates are computed, is refused.
    /// </summary>
    /// <example><code>
    /// // 100 warm-up steps from 0, then a cosine decay to 1% over 900 steps
    /// var schedule = LearningRateSchedule.LinearWarmup(100).Then(100, LearningRateSchedule.Cosine(900, minFactor: 0.01));
    /// </code></example>
    public sealed class LearningRateSchedule
    {
        internal global::GroupedNewton.LearningRateSchedule Core { get; }

        LearningRateSchedule(global::GroupedNewton.LearningRateSchedule core)
        {
            Guard.Run(() => { global::GroupedNewton.LearningRateScheduleModule.validate(core); return 0; });
            Core = core;
        }

        /// <summary>Factor 1 at every step.</summary>
        public static LearningRateSchedule Constant { get; } = new(global::GroupedNewton.LearningRateSchedule.Constant);

        /// <summary>A linear warm-up: factor start + (1 − start)·min(t, steps)/steps, from <paramref name="startFactor"/>
        /// at step 0 to 1 at step <paramref name="steps"/>, then 1.</summary>
        /// <param name="steps">The warm-up length (≥ 1).</param>
        /// <param name="startFactor">The factor at step 0, in [0, 1].</param>
        /// <exception cref="ArgumentException">A value is out of range.</exception>
        public static LearningRateSchedule LinearWarmup(int steps, double startFactor = 0.0) =>
            new(global::GroupedNewton.LearningRateScheduleModule.linearWarmup(steps, startFactor));

        /// <summary>A cosine decay: factor min + (1 − min)·(1 + cos(π·min(t, steps)/steps))/2, from 1 at step 0 to
        /// <paramref name="minFactor"/> at step <paramref name="steps"/>, then <paramref name="minFactor"/>.</summary>
        /// <param name="steps">The decay length (≥ 1).</param>
        /// <param name="minFactor">The final factor, in [0, 1].</param>
        /// <exception cref="ArgumentException">A value is out of range.</exception>
        public static LearningRateSchedule Cosine(int steps, double minFactor = 0.0) =>
            new(global::GroupedNewton.LearningRateScheduleModule.cosine(steps, minFactor));

        /// <summary>The product of this schedule's factor and another's, step by step.</summary>
        /// <param name="other">The other schedule.</param>
        public LearningRateSchedule Times(LearningRateSchedule other)
        {
            Guard.NotNull(other, nameof(other));
            return new(global::GroupedNewton.LearningRateScheduleModule.times(Core, other.Core));
        }

        /// <summary>This schedule for the first <paramref name="steps"/> steps, then <paramref name="next"/> from its step 0.</summary>
        /// <param name="steps">Steps of this schedule (≥ 1).</param>
        /// <param name="next">The schedule after them.</param>
        /// <exception cref="ArgumentException"><paramref name="steps"/> is below 1.</exception>
        public LearningRateSchedule Then(int steps, LearningRateSchedule next)
        {
            Guard.NotNull(next, nameof(next));
            return new(global::GroupedNewton.LearningRateScheduleModule.andThen(Core, steps, next.Core));
        }

        /// <summary>The factor before step <paramref name="step"/> (from 0).</summary>
        /// <param name="step">The step, ≥ 0.</param>
        /// <exception cref="ArgumentOutOfRangeException">The step is negative.</exception>
        public double Factor(int step)
        {
            if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "must be non-negative");
            return global::GroupedNewton.LearningRateScheduleModule.factor(Core, step);
        }

        /// <summary>Sets every group's rate to its initial rate times <see cref="Factor"/>(optimizer.StepCount): the rates
        /// of the optimizer's next step.</summary>
        /// <param name="optimizer">The optimizer (not GroupedNewton).</param>
        /// <exception cref="ArgumentException">The optimizer computes its own rates (GroupedNewton).</exception>
        public void ApplyTo(Optimizer optimizer)
        {
            Guard.NotNull(optimizer, nameof(optimizer));
            optimizer.SyncIn();
            Guard.Run(() => { global::GroupedNewton.LearningRateScheduleModule.apply(Core, optimizer.Core); return 0; });
            optimizer.SyncOut();
        }

        /// <inheritdoc/>
        public override string ToString() => Core.ToString();
    }
}
