using Registry = global::GroupedNewton.BackendRegistry;
using Torch = global::GroupedNewton.Backends.Torch.TorchBackend;

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// Where tensors live and how many threads compute on them: process-wide settings, the same
    /// as the environment variables <c>GROUPEDNEWTON_BACKEND</c> and <c>GROUPEDNEWTON_THREADS</c>
    /// but set from code (a value set here wins over the environment).
    /// </summary>
    /// <example><code>
    /// Backend.Threads = 4;
    /// if (Backend.IsTorchAvailable) Backend.Use("torch:cuda:0");
    /// </code></example>
    public static class Backend
    {
        /// <summary>The backend new tensors are created on: <c>managed</c> (the default, on the CPU),
        /// <c>torch</c> (libtorch on the CPU) or <c>torch:cuda:N</c>.</summary>
        /// <exception cref="InvalidOperationException"><c>GROUPEDNEWTON_BACKEND</c> names a backend that cannot be used.</exception>
        public static string Current => Guard.Run(() => Registry.defaultBackend().Name);

        /// <summary>Makes new tensors (models, data batches) go to a backend: <c>"managed"</c>,
        /// <c>"torch"</c> or <c>"torch:cpu"</c> (libtorch on the CPU), <c>"torch:cuda:0"</c> (the first GPU).
        /// Call it before creating models and data: tensors made before stay where they are.</summary>
        /// <param name="name">The backend's name.</param>
        /// <exception cref="ArgumentException">The name is empty.</exception>
        /// <exception cref="InvalidOperationException">No backend has that name, libtorch or our shim to it does
        /// not load (the message says how to build it), or the GPU is not there; the backend in use stays.</exception>
        public static void Use(string name)
        {
            Guard.NotNull(name, nameof(name));
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("the backend name is empty", nameof(name));
            Guard.Run(() => Registry.select(name.Trim()));
        }

        /// <summary>True when the libtorch backend loads on this machine (the shim and libtorch are found).</summary>
        public static bool IsTorchAvailable => Guard.Run(() => Torch.IsAvailable);

        /// <summary>Why the libtorch backend cannot be used here, or null when it can.</summary>
        public static string? TorchUnavailableReason => Guard.Run(() => Torch.UnavailableReason is { } r ? r.Value : null);

        /// <summary>The threads the managed kernels, OpenBLAS and libtorch's CPU kernels use (default: all
        /// cores, or <c>GROUPEDNEWTON_THREADS</c>). Results are bit-identical for one thread count.</summary>
        /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
        /// <exception cref="InvalidOperationException">Read while <c>GROUPEDNEWTON_THREADS</c> holds no positive
        /// whole number and no count was set in code.</exception>
        public static int Threads
        {
            get => Guard.Run(Registry.threads);
            set
            {
                if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "the thread count must be at least 1");
                Guard.Run(() => Registry.setThreads(value));
            }
        }
    }
}
