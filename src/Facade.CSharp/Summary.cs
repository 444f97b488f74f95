using Microsoft.FSharp.Collections;
using CorePartition = global::GroupedNewton.Partition;
using CoreSummary = global::GroupedNewton.PartitionSummary;
using PM = global::GroupedNewton.PartitionModule;

namespace GroupedNewton.CSharp
{
    /// <summary>A partition of a parameter set into S named, non-empty subsets of whole tensors.</summary>
    public sealed class Partition
    {
        internal readonly CorePartition Core;
        internal readonly ParameterSet Set;

        Partition(CorePartition core, ParameterSet set) { Core = core; Set = set; }

        static Partition Of(ParameterSet set, string name, Func<CoreParameters, CorePartition> f)
        {
            Guard.NotNull(set, name);
            return new Partition(Guard.Run(() => f(set.Current)), set);
        }

        /// <summary>One subset per tensor (the paper's choice).</summary>
        /// <param name="parameters">The parameters.</param>
        public static Partition Canonical(ParameterSet parameters) => Of(parameters, nameof(parameters), PM.canonical);

        /// <summary>One subset: the rate becomes an exact line search along the direction.</summary>
        /// <param name="parameters">The parameters.</param>
        public static Partition Trivial(ParameterSet parameters) => Of(parameters, nameof(parameters), PM.trivial);

        /// <summary>All weights, all biases, anything else.</summary>
        /// <param name="parameters">The parameters.</param>
        public static Partition WeightsBiases(ParameterSet parameters) => Of(parameters, nameof(parameters), PM.weightsBiases);

        /// <summary>One subset per layer (weight and bias together).</summary>
        /// <param name="parameters">The parameters.</param>
        public static Partition PerLayer(ParameterSet parameters) => Of(parameters, nameof(parameters), PM.perLayer);

        /// <summary>A partition by name: canonical, trivial, weights-biases, per-layer, blocks-N, alternate-N.</summary>
        /// <param name="parameters">The parameters.</param>
        /// <param name="name">The partition's name.</param>
        /// <exception cref="ArgumentException">The name is unknown or does not fit the parameters.</exception>
        public static Partition Parse(ParameterSet parameters, string name)
        {
            Guard.NotNull(name, nameof(name));
            return Of(parameters, nameof(parameters), ps => PM.parse(ps, name));
        }

        /// <summary>Named subsets of parameter names; every parameter in exactly one subset.</summary>
        /// <param name="parameters">The parameters.</param>
        /// <param name="subsets">(subset name, parameter names) pairs, in order.</param>
        /// <exception cref="ArgumentException">A name is unknown, a parameter is in no subset or in two, or a subset is empty.</exception>
        public static Partition ByNames(ParameterSet parameters, params (string Name, string[] ParameterNames)[] subsets)
        {
            Guard.NotNull(subsets, nameof(subsets));
            var list = ListModule.OfSeq(subsets.Select(s =>
                Tuple.Create(Guard.NotNull(s.Name, nameof(subsets)), ListModule.OfSeq(Guard.NotNull(s.ParameterNames, nameof(subsets))))));
            return Of(parameters, nameof(parameters), ps => PM.byNames(ps, list));
        }

        /// <summary>The number of subsets S.</summary>
        public int Count => Core.Count;

        /// <summary>The subset names, in order.</summary>
        public IReadOnlyList<string> Names => Core.Names;

        /// <summary>The parameter names of subset s.</summary>
        /// <param name="subset">The subset index.</param>
        public IReadOnlyList<string> ParameterNames(int subset)
        {
            if (subset < 0 || subset >= Count) throw new ArgumentOutOfRangeException(nameof(subset), subset, $"must be in 0 .. {Count - 1}");
            return Core.Subset(subset).Select(k => k.Name).ToArray();
        }

        /// <summary>The subsets and their parameters.</summary>
        public override string ToString() => Core.ToString();
    }

    /// <summary>The derivatives of a loss along a direction u according to a partition, in float64:
    /// ḡ_s = ⟨∇_s L, u_s⟩, H̄_st = u_sᵀ H u_t, D̄_sss = D³L[u_s, u_s, u_s].</summary>
    public sealed class PartitionSummary
    {
        internal readonly CoreSummary Core;

        internal PartitionSummary(CoreSummary core, IReadOnlyList<string> names, Partition? partition = null)
        {
            Core = core;
            SubsetNames = names;
            Partition = partition;
        }

        /// <summary>The partition the summary was computed for (null inside GroupedNewton's history).</summary>
        public Partition? Partition { get; }

        /// <summary>The subset names, in the order of the entries.</summary>
        public IReadOnlyList<string> SubsetNames { get; }

        /// <summary>ḡ (length S).</summary>
        public double[] Gradient => (double[])Core.Gradient.Clone();

        /// <summary>H̄ (S × S, exactly symmetric).</summary>
        public double[,] Hessian => (double[,])Core.Hessian.Clone();

        /// <summary>The diagonal of the third-order summary (length S; empty when not computed).</summary>
        public double[] ThirdDiagonal => (double[])Core.ThirdDiagonal.Clone();

        /// <summary>The loss at the parameters.</summary>
        public double Loss => Core.Loss;

        /// <summary>Reverse sweeps spent (1 + S).</summary>
        public int ReversePasses => Core.ReversePasses;
    }

    /// <summary>Per-subset learning rates suggested by one summary.</summary>
    public sealed class LearningRateSuggestion
    {
        internal LearningRateSuggestion(PartitionSummary summary, global::GroupedNewton.CubicSolution solution, double damping)
        {
            Summary = summary;
            Converged = solution.Converged;
            SolverPath = solution.Path.ToString();
            Radius = solution.Radius;
            Message = solution.Message;
            Eta = (double[])solution.Eta.Clone();
            var rates = new Dictionary<string, double>();
            if (solution.Eta.Length == summary.SubsetNames.Count)
                for (int s = 0; s < Eta.Length; s++) rates[summary.SubsetNames[s]] = damping * Eta[s];
            LearningRates = rates;
        }

        /// <summary>damping × η_s by subset: the step θ_s − rate_s·u_s for each subset (empty when the solve failed).</summary>
        public IReadOnlyDictionary<string, double> LearningRates { get; }

        /// <summary>η, in subset order (empty when the solve failed).</summary>
        public double[] Eta { get; }

        /// <summary>Whether the solver converged.</summary>
        public bool Converged { get; }

        /// <summary>How the solver reached its answer (Newton, Direct, Analytical, Numerical, HardCase, Failed).</summary>
        public string SolverPath { get; }

        /// <summary>r = ‖Dη‖.</summary>
        public double Radius { get; }

        /// <summary>The solver's note (why it failed, when it did).</summary>
        public string Message { get; }

        /// <summary>The summary the rates come from.</summary>
        public PartitionSummary Summary { get; }

        /// <summary>One parameter group per subset with its suggested rate, to create a
        /// first-order optimizer with per-subset learning rates
        /// (<c>Optimizer.Create(model, new SgdOptions(), suggestion.ToParamGroups())</c>).</summary>
        /// <exception cref="InvalidOperationException">The solve failed, or the summary has no partition.</exception>
        public IReadOnlyList<ParamGroup> ToParamGroups()
        {
            var partition = Summary.Partition
                ?? throw new InvalidOperationException("the summary was not computed by Summary.Compute, so its partition is unknown");
            if (LearningRates.Count != partition.Count)
                throw new InvalidOperationException($"the solver gave no rates ({SolverPath}: {Message})");
            return Enumerable.Range(0, partition.Count)
                .Select(s => new ParamGroup(partition.Names[s], partition.ParameterNames(s), LearningRates[partition.Names[s]]) { ForPlainGradient = true })
                .ToArray();
        }
    }

    /// <summary>
    /// Derivatives of a loss according to a partition of the parameters, and the per-subset
    /// learning rates they suggest (the paper's "learning rate per subset, usable for
    /// hyperparameter tuning": e.g. per-layer rates for SGD).
    /// </summary>
    public static class Summary
    {
        /// <summary>ḡ, H̄ and the diagonal of D̄ of a loss at the current parameters.</summary>
        /// <param name="parameters">The parameters (a model's <see cref="Model.Parameters"/> or your own set).</param>
        /// <param name="loss">The loss, computed from the model or the parameter set.</param>
        /// <param name="partition">The subsets (default: canonical, one per tensor).</param>
        /// <param name="direction">u by parameter name (default: the gradient of the loss, the plain SGD direction).</param>
        /// <param name="thirdOrder">Compute the third-order diagonal (false: about half the cost).</param>
        /// <exception cref="ArgumentException">The partition belongs to other parameters, or the direction misses a parameter or has a wrong shape.</exception>
        /// <exception cref="InvalidOperationException">An entry is not finite.</exception>
        public static PartitionSummary Compute(ParameterSet parameters, Func<Tensor> loss, Partition? partition = null,
                                                IReadOnlyDictionary<string, Tensor>? direction = null, bool thirdOrder = true)
        {
            Guard.NotNull(parameters, nameof(parameters));
            Guard.NotNull(loss, nameof(loss));
            var part = partition ?? Partition.Canonical(parameters);
            if (!ReferenceEquals(part.Set, parameters))
                throw new ArgumentException("the partition was made for another parameter set", nameof(partition));
            var ps = parameters.Current;
            var closure = Guard.Closure(parameters, loss);
            var u = direction is null ? Gradient(ps, closure) : Direction(direction);
            var options = new global::GroupedNewton.SummaryOptions(thirdOrder: thirdOrder, diagonalOnly: false);
            var core = Guard.Run(() => global::GroupedNewton.Summary.computeWith(options, closure, ps, part.Core, u));
            return new PartitionSummary(core, part.Names, part);
        }

        /// <summary>ḡ, H̄ and the diagonal of D̄ of a loss at a model's current parameters.</summary>
        /// <param name="model">The model.</param>
        /// <param name="loss">The loss, computed with <see cref="Model.Forward"/>.</param>
        /// <param name="partition">The subsets (default: canonical).</param>
        /// <param name="direction">u by parameter name (default: the gradient).</param>
        /// <param name="thirdOrder">Compute the third-order diagonal.</param>
        public static PartitionSummary Compute(Model model, Func<Tensor> loss, Partition? partition = null,
                                                IReadOnlyDictionary<string, Tensor>? direction = null, bool thirdOrder = true)
        {
            Guard.NotNull(model, nameof(model));
            return Compute(model.Parameters, loss, partition, direction, thirdOrder);
        }

        /// <summary>The per-subset rates a summary suggests: η solving the cubic-regularised model
        /// with weight <paramref name="lambdaInt"/> (or η = H̄⁻¹ḡ without the third order), times
        /// <paramref name="damping"/>. They are learning rates for the direction the summary was taken
        /// along: for the default direction, the gradient, rates for plain gradient descent
        /// (θ_s ← θ_s − rate_s·∇_s L). With momentum (SGD's or Adam's) the steps are longer, and the
        /// optimizer raises a <see cref="Optimizer.Warning"/> at its first step. Where the loss is
        /// locally concave along a subset, its η is negative: clipped to 0 unless
        /// <paramref name="keepNegative"/> (a negative rate cannot make a <see cref="ParamGroup"/>).</summary>
        /// <param name="summary">A summary with the third-order diagonal.</param>
        /// <param name="lambdaInt">λ_int ≥ 0, the weight of the cubic term.</param>
        /// <param name="damping">λ₁ ≥ 0, the factor on η.</param>
        /// <param name="keepNegative">Keep negative η as they are (default false: clipped to 0).</param>
        public static LearningRateSuggestion SuggestLearningRates(PartitionSummary summary, double lambdaInt = 1.0, double damping = 1.0,
                                                                  bool keepNegative = false)
        {
            Guard.NotNull(summary, nameof(summary));
            if (!(lambdaInt >= 0) || double.IsInfinity(lambdaInt))
                throw new ArgumentOutOfRangeException(nameof(lambdaInt), lambdaInt, "must be finite and non-negative");
            if (!(damping >= 0) || double.IsInfinity(damping))
                throw new ArgumentOutOfRangeException(nameof(damping), damping, "must be finite and non-negative");
            var sol = Guard.Run(() => global::GroupedNewton.RateSuggestion.learningRates(keepNegative, lambdaInt, summary.Core));
            return new LearningRateSuggestion(summary, sol, damping);
        }

        /// <summary>The per-subset learning rates suggested at the current parameters for a
        /// direction (default: the gradient, so the rates are per-subset SGD learning rates).</summary>
        /// <param name="model">The model.</param>
        /// <param name="loss">The loss, computed with <see cref="Model.Forward"/>.</param>
        /// <param name="partition">The subsets (default: canonical; <see cref="Partition.PerLayer"/> gives per-layer rates).</param>
        /// <param name="direction">u by parameter name (default: the gradient).</param>
        /// <param name="lambdaInt">λ_int ≥ 0.</param>
        /// <param name="damping">λ₁ ≥ 0.</param>
        /// <param name="keepNegative">Keep negative η (default false: clipped to 0).</param>
        public static LearningRateSuggestion SuggestLearningRates(Model model, Func<Tensor> loss, Partition? partition = null,
                                                                  IReadOnlyDictionary<string, Tensor>? direction = null,
                                                                  double lambdaInt = 1.0, double damping = 1.0, bool keepNegative = false)
        {
            Guard.NotNull(model, nameof(model));
            return SuggestLearningRates(Compute(model.Parameters, loss, partition, direction, true), lambdaInt, damping, keepNegative);
        }

        static CoreParameters Gradient(CoreParameters ps, FSharpFunc<CoreParameters, CoreTensor> closure)
        {
            var grads = Guard.Run(() => global::GroupedNewton.Ad.gradMany(
                FuncConvert.FromFunc<CoreTensor[], CoreTensor>(vs => closure.Invoke(ps.WithValues(vs))), ps.Values));
            return ps.WithValues(grads.Select(global::GroupedNewton.TensorModule.detach).ToArray());
        }

        static CoreParameters Direction(IReadOnlyDictionary<string, Tensor> direction) =>
            Guard.Run(() => global::GroupedNewton.ParametersModule.ofSeq(direction.Select(kv =>
                Tuple.Create(kv.Key, (kv.Value ?? throw new ArgumentNullException(nameof(direction), $"the direction of '{kv.Key}' is null")).Core)).ToArray()));
    }
}
