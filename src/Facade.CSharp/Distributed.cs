using D = global::GroupedNewton.Distributed;

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// Data-parallel training over MPI (docs/distributed.md). Start your program with
    /// <c>mpiexec.mpich -n N</c> and every rank runs it; <see cref="Trainer"/> then splits each
    /// batch over the ranks and every optimizer sums its gradients (and curvature statistics)
    /// over them, so the ranks make the same steps as one process on the whole batch. With one
    /// rank (no launcher) nothing is loaded and every member here is a no-op returning its
    /// input. Every member that communicates is collective: each rank must call it, in the same
    /// order. Failures throw <see cref="InvalidOperationException"/> naming the cause (no MPI
    /// library, ranks that disagree, a checkpoint of another number of ranks).
    /// </summary>
    public static class Distributed
    {
        /// <summary>This process's rank, 0 to <see cref="Size"/> − 1.</summary>
        public static int Rank => Guard.Run(() => D.rank());

        /// <summary>The number of ranks (1 without a launcher).</summary>
        public static int Size => Guard.Run(() => D.size());

        /// <summary>Whether there is more than one rank.</summary>
        public static bool IsActive => Guard.Run(() => D.isActive());

        /// <summary>Whether this is rank 0, the rank that should write files and print.</summary>
        public static bool IsRoot => Guard.Run(() => D.isRoot());

        /// <summary>Starts MPI now when the launcher asks for several ranks (it otherwise starts
        /// on first use).</summary>
        public static void Start() => Guard.Run(() => D.start());

        /// <summary>Ends MPI; call it once on every rank at the end (also done at exit).</summary>
        public static void Finish() => Guard.Run(() => D.finish());

        /// <summary>Sums <paramref name="values"/> element-wise over the ranks, in place.</summary>
        /// <param name="values">The same number of values on every rank.</param>
        public static void AllReduceSum(double[] values)
        {
            ArgumentNullException.ThrowIfNull(values);
            Guard.Run(() => D.allReduceSum(values));
        }

        /// <summary>Sums <paramref name="values"/> element-wise over the ranks, in place.</summary>
        /// <param name="values">The same number of values on every rank.</param>
        public static void AllReduceSum(float[] values)
        {
            ArgumentNullException.ThrowIfNull(values);
            Guard.Run(() => D.allReduceSum32(values));
        }

        /// <summary>Sums tensors element-wise over the ranks (one message); returns the sums.</summary>
        /// <param name="tensors">The same shapes and dtypes on every rank.</param>
        public static Tensor[] AllReduceSum(params Tensor[] tensors)
        {
            ArgumentNullException.ThrowIfNull(tensors);
            var core = Array.ConvertAll(tensors, t => (t ?? throw new ArgumentNullException(nameof(tensors), "a tensor is null")).Core);
            return Guard.Run(() => Array.ConvertAll(D.allReduceTensors(core, Array.Empty<double>()).Item1, t => new Tensor(t)));
        }

        /// <summary>Replaces <paramref name="values"/> on every rank by rank <paramref name="root"/>'s.</summary>
        public static void Broadcast(double[] values, int root = 0)
        {
            ArgumentNullException.ThrowIfNull(values);
            if (root < 0 || (IsActive && root >= Size))
                throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be a rank, 0 to {Size - 1}");
            Guard.Run(() => D.broadcast(root, values));
        }

        /// <summary>Whether any rank passes true (every rank gets the same answer), e.g. to stop
        /// together.</summary>
        public static bool AnyRank(bool flag) => Guard.Run(() => D.anyRank(flag));

        /// <summary>Throws on every rank unless every rank passes the same description (compared
        /// by hash), e.g. the options of a run.</summary>
        /// <param name="what">What the description is, for the message.</param>
        /// <param name="description">This rank's text.</param>
        public static void CheckSame(string what, string description)
        {
            ArgumentNullException.ThrowIfNull(what);
            ArgumentNullException.ThrowIfNull(description);
            Guard.Run(() => D.checkSame(what, description));
        }

        /// <summary>This rank's part of <paramref name="count"/> items: (start, length).</summary>
        public static (int Start, int Length) ShardRange(int count)
        {
            if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be non-negative");
            var r = Guard.Run(() => D.shardRange(count));
            return (r.Item1, r.Item2);
        }

        /// <summary>Collective calls so far: count, bytes this rank sent, seconds spent in them.</summary>
        public static (long Calls, long Bytes, double Seconds) Statistics
        {
            get
            {
                var s = Guard.Run(() => D.statistics());
                return (s.Calls, s.Bytes, s.Seconds);
            }
        }
    }
}
