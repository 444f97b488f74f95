using Microsoft.FSharp.Control;

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// Parameters that share a learning rate. Pass groups to
    /// <see cref="Optimizer.Create(Model, OptimizerOptions, IEnumerable{ParamGroup})"/> to give
    /// parts of a model their own learning rate; read and change the live groups through
    /// <see cref="Optimizer.ParamGroups"/> (schedulers change them too).
    /// </summary>
    public sealed class ParamGroup
    {
        readonly CoreGroup? core;
        readonly string name;
        readonly string[] parameterNames;
        readonly double initial;

        /// <summary>A group to pass to an optimizer.</summary>
        /// <param name="name">The group's name.</param>
        /// <param name="parameterNames">The names of its parameters.</param>
        /// <param name="learningRate">Its learning rate (≥ 0).</param>
        public ParamGroup(string name, IEnumerable<string> parameterNames, double learningRate)
        {
            this.name = Guard.NotNull(name, nameof(name));
            this.parameterNames = Guard.NotNull(parameterNames, nameof(parameterNames)).ToArray();
            if (this.parameterNames.Any(n => n is null)) throw new ArgumentNullException(nameof(parameterNames), "a parameter name is null");
            if (!(learningRate >= 0) || double.IsInfinity(learningRate))
                throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"group '{name}': the learning rate must be finite and non-negative");
            initial = learningRate;
        }

        /// <summary>Set on the groups of a <see cref="LearningRateSuggestion"/>: their rates are for the
        /// plain gradient direction, and an optimizer with momentum takes longer steps with them.</summary>
        internal bool ForPlainGradient { get; init; }

        internal ParamGroup(CoreGroup core)
        {
            this.core = core;
            name = core.Name;
            parameterNames = core.Keys.Select(k => k.Name).ToArray();
            initial = core.InitialLearningRate;
        }

        internal CoreGroup ToCore(ParameterSet set) =>
            Guard.Run(() => new CoreGroup(name, parameterNames.Select(n => set.Current.Key(n)).ToArray(), initial));

        /// <summary>The group's name.</summary>
        public string Name => name;

        /// <summary>The names of the parameters in the group.</summary>
        public IReadOnlyList<string> ParameterNames => parameterNames;

        /// <summary>The learning rate the group started with.</summary>
        public double InitialLearningRate => initial;

        /// <summary>The current learning rate. Setting it on a live group changes the optimizer's next steps.</summary>
        /// <exception cref="ArgumentOutOfRangeException">The value is negative or NaN.</exception>
        /// <exception cref="InvalidOperationException">The group is not attached to an optimizer yet.</exception>
        public double LearningRate
        {
            get => core?.LearningRate ?? initial;
            set
            {
                if (!(value >= 0) || double.IsInfinity(value))
                    throw new ArgumentOutOfRangeException(nameof(value), value, $"group '{name}': the learning rate must be finite and non-negative");
                if (core is null)
                    throw new InvalidOperationException($"group '{name}' is not attached to an optimizer; give the rate in the constructor");
                core.LearningRate = value;
            }
        }
    }

    /// <summary>
    /// An optimizer over a model's parameters, created from an options object:
    /// <see cref="SgdOptions"/>, <see cref="AdamOptions"/>, <see cref="SofimOptions"/>,
    /// <see cref="GroupedNewtonOptions"/>, <see cref="KfacOptions"/>, <see cref="KbfgsOptions"/>.
    /// </summary>
    /// <remarks>
    /// A step evaluates your loss closure at the current parameters, differentiates it (to the
    /// order the method needs), updates the parameters and returns the loss. A step that
    /// fails (non-finite loss, a shape error in the closure) throws and leaves the parameters
    /// and the optimizer's state as they were. Optimizers hold no native resources, so they
    /// are not <see cref="IDisposable"/>.
    /// </remarks>
    public class Optimizer
    {
        internal readonly CoreOptimizer Core;
        readonly Model? model;
        readonly ParamGroup[] groups;
        EventHandler<string>? warning;

        internal Optimizer(CoreOptimizer core, ParameterSet parameters, Model? model)
        {
            Core = core;
            Parameters = parameters;
            this.model = model;
            groups = core.Groups.Select(g => new ParamGroup(g)).ToArray();
            core.Warning += new FSharpHandler<string>((_, message) => warning?.Invoke(this, Guard.Notation(message)));
        }

        /// <summary>An optimizer for a model's parameters.</summary>
        /// <param name="model">The model.</param>
        /// <param name="options">The optimizer and its hyperparameters.</param>
        /// <param name="groups">Optional groups with their own learning rates (every parameter in exactly one).</param>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentException">An option is invalid, or the groups do not partition the parameters.</exception>
        public static Optimizer Create(Model model, OptimizerOptions options, IEnumerable<ParamGroup>? groups = null)
        {
            Guard.NotNull(model, nameof(model));
            return Build(model.Parameters, model, options, groups);
        }

        /// <summary>A GroupedNewton optimizer for a model's parameters.</summary>
        /// <param name="model">The model.</param>
        /// <param name="options">The hyperparameters, with the curvature source.</param>
        /// <exception cref="ArgumentException">An option is invalid or no curvature source is set.</exception>
        public static GroupedNewtonOptimizer Create(Model model, GroupedNewtonOptions options) =>
            (GroupedNewtonOptimizer)Create(model, (OptimizerOptions)options);

        /// <summary>An optimizer for a parameter set of your own (losses written directly on its tensors).</summary>
        /// <param name="parameters">The parameters.</param>
        /// <param name="options">The optimizer and its hyperparameters.</param>
        /// <param name="groups">Optional groups with their own learning rates.</param>
        public static Optimizer Create(ParameterSet parameters, OptimizerOptions options, IEnumerable<ParamGroup>? groups = null)
        {
            Guard.NotNull(parameters, nameof(parameters));
            return Build(parameters, null, options, groups);
        }

        static Optimizer Build(ParameterSet parameters, Model? model, OptimizerOptions options, IEnumerable<ParamGroup>? groups)
        {
            Guard.NotNull(options, nameof(options));
            options.Validate();
            CoreGroup[]? coreGroups = null;
            if (groups is not null)
            {
                if (!options.SupportsParamGroups)
                    throw new ArgumentException($"{options.Name} sets its own per-subset learning rates and takes no parameter groups", nameof(groups));
                coreGroups = groups.Select(g => Guard.NotNull(g, nameof(groups)).ToCore(parameters)).ToArray();
            }
            var core = Guard.Run(() => options.Build(parameters, model, coreGroups));
            var optimizer = options.Wrap(core, parameters, model);
            var withMomentum = options switch
            {
                SgdOptions sgd => sgd.Momentum > 0,
                AdamOptions => true,
                _ => false,
            };
            if (withMomentum && groups is not null && groups.Any(g => g.ForPlainGradient))
                optimizer.pendingWarning =
                    $"{options.Name}: the groups' learning rates were suggested for the plain gradient direction " +
                    "(Summary.SuggestLearningRates); with momentum the steps are about 1/(1 − momentum) times longer, " +
                    "so scale the suggested rates down (by 1 − momentum for SGD) or use momentum 0";
            return optimizer;
        }

        /// <summary>A warning found when the optimizer was created, raised at its first step (when handlers are attached).</summary>
        string? pendingWarning;

        /// <summary>The optimizer's name, e.g. <c>sgd</c>, <c>grouped-newton</c>.</summary>
        public string Name => Core.Name;

        /// <summary>The parameters it updates.</summary>
        public ParameterSet Parameters { get; }

        /// <summary>The number of completed steps.</summary>
        public int StepCount => Core.StepCount;

        /// <summary>True for layer-wise methods (K-FAC, K-BFGS), which must be stepped with
        /// <see cref="Step(Tensor, Func{Tensor, Tensor})"/>.</summary>
        public bool NeedsModel => Core.NeedsModel;

        /// <summary>The groups, with their live learning rates.</summary>
        public IReadOnlyList<ParamGroup> ParamGroups => groups;

        /// <summary>The current learning rate of every group (for GroupedNewton: of every subset of
        /// its partition, damping × η), by name.</summary>
        public IReadOnlyDictionary<string, double> LearningRates =>
            groups.ToDictionary(g => g.Name, g => g.LearningRate);

        /// <summary>Raised when the optimizer degrades gracefully (e.g. a layer it cannot
        /// precondition falls back to a first-order rule); the text says what and why.</summary>
        public event EventHandler<string>? Warning
        {
            add => warning += value;
            remove => warning -= value;
        }

        /// <summary>
        /// Kept for familiarity with PyTorch; does nothing. The core is functional: each step
        /// computes fresh gradients from the closure and no gradient is accumulated between
        /// steps, so there is nothing to clear.
        /// </summary>
        public void ZeroGrad() { }

        /// <summary>One step: evaluates the loss closure (which reads the model or the
        /// parameter set), updates the parameters and returns the loss before the update.</summary>
        /// <param name="closure">Computes the loss from <see cref="Model.Forward"/> or <see cref="ParameterSet"/> values.</param>
        /// <returns>The loss at the parameters before the step.</returns>
        /// <exception cref="ArgumentNullException">The closure is null.</exception>
        /// <exception cref="InvalidOperationException">The loss or gradient is not finite, or the optimizer is layer-wise.</exception>
        public double Step(Func<Tensor> closure)
        {
            Guard.NotNull(closure, nameof(closure));
            if (Core.NeedsModel)
                throw new InvalidOperationException($"{Name} preconditions layer by layer and needs the model's batch: call Step(input, lossOfOutput)");
            return Stepping(() => Core.Step(Guard.Closure(Parameters, closure)));
        }

        /// <summary>One step on a batch: the loss is <c>lossOfOutput(model.Forward(input))</c>. Every
        /// optimizer accepts it; layer-wise methods (K-FAC, K-BFGS) need it.</summary>
        /// <param name="input">The input batch.</param>
        /// <param name="lossOfOutput">The loss of the model's output on that batch.</param>
        /// <returns>The loss at the parameters before the step.</returns>
        /// <exception cref="InvalidOperationException">The optimizer was created on a parameter set, not a model.</exception>
        public double Step(Tensor input, Func<Tensor, Tensor> lossOfOutput)
        {
            Guard.NotNull(input, nameof(input));
            Guard.NotNull(lossOfOutput, nameof(lossOfOutput));
            if (model is null)
                throw new InvalidOperationException("this optimizer was created on a parameter set, not a model; use Step(closure)");
            var loss = FuncConvert.FromFunc<CoreTensor, CoreTensor>(output => Guard.User(() =>
                (lossOfOutput(new Tensor(output)) ?? throw new InvalidOperationException("the loss function returned null")).Core));
            return Stepping(() => Core.StepOn(model.Core, input.Core, loss));
        }

        /// <summary>Runs a core step after taking over values assigned to the parameter set, and publishes the result.</summary>
        internal double Stepping(Func<double> step)
        {
            if (pendingWarning is not null)
            {
                var w = pendingWarning;
                pendingWarning = null;
                warning?.Invoke(this, w);
            }
            SyncIn();
            var loss = Guard.Run(step);
            SyncOut();
            return loss;
        }

        /// <summary>Hands values assigned to the parameter set (e.g. a restored snapshot) to the core.</summary>
        internal void SyncIn()
        {
            if (!ReferenceEquals(Parameters.Current, Core.Parameters))
            {
                var ps = Parameters.Current;
                Guard.Run(() => Core.SetParameters(ps));
                Parameters.Current = Core.Parameters;
            }
        }

        /// <summary>Publishes the core's parameter values to the parameter set.</summary>
        internal void SyncOut() => Parameters.Current = Core.Parameters;

        /// <summary>The curvature stream whose position checkpoints record (GroupedNewton with a cycling source), or null.</summary>
        internal virtual global::GroupedNewton.CurvatureStream? Curvature { get => null; init { } }

        /// <summary>Saves the optimizer's state (step count, learning rates, buffers; not the
        /// parameters) to a file, atomically. The folder must exist.</summary>
        /// <param name="path">The file.</param>
        public void SaveState(string path)
        {
            Guard.NotNull(path, nameof(path));
            Guard.Run(() => Core.SaveState(path));
        }

        /// <summary>Restores the state written by <see cref="SaveState(string)"/> for the same optimizer
        /// kind and parameters; validates everything before changing anything.</summary>
        /// <param name="path">The file.</param>
        /// <exception cref="System.IO.FileNotFoundException">The file does not exist.</exception>
        /// <exception cref="System.IO.InvalidDataException">The file is corrupt or was written by another optimizer or model.</exception>
        public void LoadState(string path)
        {
            Guard.NotNull(path, nameof(path));
            Guard.Run(() => Core.LoadState(path));
        }

        /// <summary>Writes the optimizer's state (as <see cref="SaveState(string)"/>) to a stream (left open).</summary>
        /// <param name="stream">A writable stream.</param>
        public void SaveState(System.IO.Stream stream)
        {
            Guard.NotNull(stream, nameof(stream));
            Guard.Run(() => Core.WriteState(stream));
        }

        /// <summary>Restores the state written by <see cref="SaveState(System.IO.Stream)"/> from a stream
        /// (left open); validates everything before changing anything.</summary>
        /// <param name="stream">A readable stream.</param>
        /// <exception cref="System.IO.InvalidDataException">The data is corrupt or was written by another optimizer or model.</exception>
        public void LoadState(System.IO.Stream stream)
        {
            Guard.NotNull(stream, nameof(stream));
            Guard.Run(() => Core.ReadState("stream", stream));
        }

        /// <summary>The name and the step count.</summary>
        public override string ToString() => $"{Name} (step {StepCount})";
    }
}
