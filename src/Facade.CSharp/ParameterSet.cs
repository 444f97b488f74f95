namespace GroupedNewton.CSharp
{
    /// <summary>
    /// The trainable parameters of a model (or of any loss you write yourself): an ordered
    /// set of named tensors. The core is functional, so a parameter set does not change in
    /// place inside the core: an optimizer computes new values and the set then refers to
    /// them. Inside a step or a summary, reading <see cref="this[string]"/> gives the values
    /// the core is differentiating at, so a closure written against this set is
    /// differentiated correctly.
    /// </summary>
    public sealed class ParameterSet
    {
        [ThreadStatic] static List<(ParameterSet Set, CoreParameters Values)>? bound;

        internal CoreParameters Current;

        internal ParameterSet(CoreParameters values) { Current = values; }

        /// <summary>A parameter set from named float tensors, in order (names must be distinct).</summary>
        /// <param name="parameters">The (name, value) pairs.</param>
        /// <exception cref="ArgumentException">A name is empty or repeated, or a value is not float32/float64.</exception>
        public static ParameterSet Create(IEnumerable<KeyValuePair<string, Tensor>> parameters)
        {
            Guard.NotNull(parameters, nameof(parameters));
            var pairs = parameters.Select(kv =>
                Tuple.Create(kv.Key, (kv.Value ?? throw new ArgumentNullException(nameof(parameters), $"the value of '{kv.Key}' is null")).Core)).ToArray();
            return Guard.Run(() => new ParameterSet(global::GroupedNewton.ParametersModule.ofSeq(pairs)));
        }

        /// <summary>A parameter set from named float tensors, in order.</summary>
        /// <param name="parameters">The (name, value) pairs.</param>
        public static ParameterSet Create(params (string Name, Tensor Value)[] parameters)
        {
            Guard.NotNull(parameters, nameof(parameters));
            return Create(parameters.Select(p => new KeyValuePair<string, Tensor>(p.Name, p.Value)));
        }

        /// <summary>The values the core is using now: the bound ones inside a step, else the current ones.</summary>
        internal CoreParameters Active
        {
            get
            {
                var b = bound;
                if (b is not null)
                    for (int i = b.Count - 1; i >= 0; i--)
                        if (ReferenceEquals(b[i].Set, this)) return b[i].Values;
                return Current;
            }
        }

        /// <summary>Runs f with this set reading the given values (on this thread).</summary>
        internal T WithBound<T>(CoreParameters values, Func<T> f)
        {
            var b = bound ??= new List<(ParameterSet, CoreParameters)>();
            b.Add((this, values));
            try { return f(); }
            finally { b.RemoveAt(b.Count - 1); }
        }

        /// <summary>The parameter names, in order.</summary>
        public IReadOnlyList<string> Names => Current.Names;

        /// <summary>The number of tensors.</summary>
        public int Count => Current.Count;

        /// <summary>The total number of scalar parameters.</summary>
        public int TotalSize => Current.NumelTotal;

        /// <summary>The value of a parameter by name (inside a step: the value being differentiated).</summary>
        /// <param name="name">The parameter name, e.g. <c>"0.weight"</c>.</param>
        /// <exception cref="ArgumentException">No parameter has that name.</exception>
        public Tensor this[string name]
        {
            get
            {
                Guard.NotNull(name, nameof(name));
                return Guard.Run(() => new Tensor(Active[name]));
            }
        }

        /// <summary>The current values of a parameter as float64, row-major.</summary>
        /// <param name="name">The parameter name.</param>
        public double[] ToArray(string name) => this[name].ToArray();

        /// <summary>The current values, by name (a snapshot).</summary>
        public IReadOnlyDictionary<string, Tensor> Snapshot()
        {
            var ps = Current;
            var d = new Dictionary<string, Tensor>();
            foreach (var n in ps.Names) d[n] = new Tensor(ps[n]);
            return d;
        }

        /// <summary>Replaces the current values (same names, shapes and dtypes), e.g. to restore a snapshot.</summary>
        /// <param name="values">A value for every parameter, by name.</param>
        /// <exception cref="ArgumentException">A name is missing or a shape or dtype differs.</exception>
        public void Assign(IReadOnlyDictionary<string, Tensor> values)
        {
            Guard.NotNull(values, nameof(values));
            var ps = Current;
            var arr = new CoreTensor[ps.Count];
            var names = ps.Names;
            for (int i = 0; i < names.Length; i++)
            {
                if (!values.TryGetValue(names[i], out var v) || v is null)
                    throw new ArgumentException($"no value for parameter '{names[i]}'", nameof(values));
                arr[i] = global::GroupedNewton.TensorModule.detach(v.Core);
            }
            Current = Guard.Run(() => ps.WithValues(arr));
        }

        /// <summary>Names and shapes, e.g. <c>0.weight [6, 1, 5, 5], 0.bias [6]</c>.</summary>
        public override string ToString() => Guard.Notation(Current.ToString());
    }
}
