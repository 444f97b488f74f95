using System.Runtime.ExceptionServices;

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// How errors cross the facade. Every public member of this assembly throws only
    /// standard .NET exception types:
    /// <list type="bullet">
    /// <item><see cref="ArgumentNullException"/> for a null argument, naming the parameter.</item>
    /// <item><see cref="ArgumentException"/> / <see cref="ArgumentOutOfRangeException"/> for invalid
    /// options or arguments (shapes, dtypes, unknown names, bad partitions); thrown when the
    /// object is constructed, before any training.</item>
    /// <item><see cref="InvalidOperationException"/> for a step that cannot proceed (non-finite loss
    /// or gradient, a differentiation that cannot be honoured, a layer-wise optimizer stepped
    /// without a model); the optimizer and the model are left as they were.</item>
    /// <item><see cref="InvalidDataException"/> for a malformed data set or state file;
    /// <see cref="FileNotFoundException"/> for a data set or state file that is not there.</item>
    /// </list>
    /// When the error comes from the F# core, the core's exception is kept as
    /// <see cref="Exception.InnerException"/> and its message is reused. Exceptions thrown by
    /// your own callbacks (loss closures, progress handlers) come out unchanged.
    /// </summary>
    public static class ErrorPolicy
    {
        /// <summary>The .NET exception the facade throws for an exception raised by the core
        /// (returned as is when it is already a standard .NET exception type).</summary>
        /// <param name="coreException">An exception raised inside the F# core.</param>
        /// <returns>The exception to throw in its place.</returns>
        public static Exception Translate(Exception coreException)
        {
            ArgumentNullException.ThrowIfNull(coreException);
            return Guard.Map(coreException) ?? coreException;
        }
    }

    /// <summary>Carries an exception thrown by user code through the core unchanged.</summary>
    internal sealed class UserCodeException : Exception
    {
        public UserCodeException(Exception original) : base(original.Message, original) { Original = original; }
        public Exception Original { get; }
    }

    internal static class Guard
    {
        public static T NotNull<T>(T? value, string name) where T : class =>
            value ?? throw new ArgumentNullException(name);

        static readonly System.Reflection.Assembly CoreAssembly = typeof(CoreTensor).Assembly;
        static readonly System.Reflection.Assembly FSharpAssembly = typeof(FSharpFunc<int, int>).Assembly;

        static readonly System.Text.RegularExpressions.Regex CoreShape =
            new(@"\[((?:[A-Za-z]\w*|-?\d+)(?:; (?:[A-Za-z]\w*|-?\d+))+)\]", System.Text.RegularExpressions.RegexOptions.Compiled);

        /// <summary>A core message with its shapes in C# notation: <c>[100; 1; 28; 28]</c> becomes <c>[100, 1, 28, 28]</c>,
        /// <c>[N; classes]</c> becomes <c>[N, classes]</c>.</summary>
        internal static string Notation(string message) =>
            CoreShape.Replace(message, m => "[" + m.Groups[1].Value.Replace("; ", ", ") + "]");

        /// <summary>The replacement for a core exception, or null to rethrow it unchanged.</summary>
        internal static Exception? Map(Exception e)
        {
            var message = Notation(e.Message);
            switch (e)
            {
                case UserCodeException:
                    return null;
                case ShapeMismatchException or DtypeMismatchException or IndexOutOfRangeTensorException:
                    return new ArgumentException(message, e);
                case PartitionException:
                    return new ArgumentException(message, e);
                case TensorException:
                    return new InvalidOperationException(message, e);
                case OptimizationException:
                    return new InvalidOperationException(message, e);
                case DistributedException:
                    return new InvalidOperationException(message, e);
                case global::GroupedNewton.DivergenceException:
                    return new InvalidOperationException(message, e);
                case global::GroupedNewton.Data.DataException:
                    return new InvalidDataException(message, e);
                case StateFormatException:
                    return new InvalidDataException(message, e);
                // standard exceptions raised by the core keep their type; only the shape notation changes
                case ArgumentOutOfRangeException a when message != e.Message:
                    return new ArgumentOutOfRangeException(a.ParamName, Notation(StripParam(a)));
                case ArgumentException a when message != e.Message && e.GetType() == typeof(ArgumentException):
                    return new ArgumentException(Notation(StripParam(a)), a.ParamName, e);
                case InvalidOperationException when message != e.Message && e.GetType() == typeof(InvalidOperationException):
                    return new InvalidOperationException(message, e);
                // lookups and casts failing inside the core are its bugs, not the caller's
                // (exceptions of user callbacks never reach here: they are marked)
                case System.Collections.Generic.KeyNotFoundException or IndexOutOfRangeException
                    or NullReferenceException or InvalidCastException:
                    return new InvalidOperationException("GroupedNewton core error: " + e.Message, e);
            }
            var asm = e.GetType().Assembly;
            if (asm == CoreAssembly || asm == FSharpAssembly)
                return new InvalidOperationException("GroupedNewton core error: " + e.Message, e);
            return null;
        }

        /// <summary>The message of an argument exception without the " (Parameter 'x')" suffix .NET appends.</summary>
        static string StripParam(ArgumentException a)
        {
            var m = a.Message;
            var suffix = a.ParamName is null ? null : $" (Parameter '{a.ParamName}')";
            return suffix is not null && m.EndsWith(suffix, StringComparison.Ordinal) ? m[..^suffix.Length] : m;
        }

        static Exception Rethrow(Exception e)
        {
            var original = e is UserCodeException u ? u.Original : e;
            var mapped = Map(original);
            if (mapped is null) ExceptionDispatchInfo.Capture(original).Throw();
            return mapped!;
        }

        public static T Run<T>(Func<T> f)
        {
            try { return f(); }
            catch (Exception e) { throw Rethrow(e); }
        }

        public static void Run(Action f)
        {
            try { f(); }
            catch (Exception e) { throw Rethrow(e); }
        }

        /// <summary>Runs a core validation whose ArgumentException says a setting is out of its range, and
        /// throws it as the <see cref="ArgumentOutOfRangeException"/> the facade documents (same parameter
        /// name, or <paramref name="paramName"/> where the facade's parameter is named otherwise, and message).</summary>
        public static void OutOfRange(Action validate, string? paramName = null)
        {
            try { validate(); }
            catch (ArgumentException a) when (a.GetType() == typeof(ArgumentException))
            {
                throw new ArgumentOutOfRangeException(paramName ?? a.ParamName, Notation(StripParam(a)));
            }
        }

        /// <summary>Runs user code inside the core, marking its exceptions so they come out unchanged.</summary>
        public static T User<T>(Func<T> f)
        {
            try { return f(); }
            catch (UserCodeException) { throw; }
            catch (Exception e) { throw new UserCodeException(e); }
        }

        /// <summary>A user loss closure as the core's closure over parameter values.</summary>
        public static FSharpFunc<CoreParameters, CoreTensor> Closure(ParameterSet set, Func<Tensor> closure) =>
            FuncConvert.FromFunc<CoreParameters, CoreTensor>(ps =>
                set.WithBound(ps, () => User(() =>
                    (closure() ?? throw new InvalidOperationException("the loss closure returned null")).Core)));
    }
}
