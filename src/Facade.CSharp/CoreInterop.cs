using System.Reflection;
using Microsoft.FSharp.Reflection;

namespace GroupedNewton.CSharp
{
    /// <summary>
    /// The facade's enums and the core's fieldless F# unions name their cases alike
    /// (<see cref="KfacDampingSplit.Pi"/> and the core's <c>KfacDampingSplit.Pi</c>): one
    /// conversion, by case name, serves every such pair in both directions.
    /// </summary>
    internal static class CoreCases
    {
        static class Pair<TEnum, TCore> where TEnum : struct, Enum where TCore : notnull
        {
            static readonly UnionCaseInfo[] Cases = FSharpType.GetUnionCases(typeof(TCore), FSharpOption<BindingFlags>.None);

            public static readonly Dictionary<TEnum, TCore> ToCore = Cases
                .Where(c => c.GetFields().Length == 0 && Enum.IsDefined(typeof(TEnum), c.Name))
                .ToDictionary(c => Enum.Parse<TEnum>(c.Name),
                              c => (TCore)FSharpValue.MakeUnion(c, Array.Empty<object>(), FSharpOption<BindingFlags>.None));

            public static readonly Dictionary<int, TEnum> FromTag = Cases
                .Where(c => Enum.IsDefined(typeof(TEnum), c.Name))
                .ToDictionary(c => c.Tag, c => Enum.Parse<TEnum>(c.Name));

            public static readonly FSharpFunc<object, int> Tag = FSharpValue.PreComputeUnionTagReader(typeof(TCore), FSharpOption<BindingFlags>.None);
        }

        /// <summary>The core's case named like <paramref name="value"/>; ArgumentOutOfRangeException naming
        /// <paramref name="property"/> for a value outside the enum.</summary>
        public static TCore ToCore<TEnum, TCore>(TEnum value, string property) where TEnum : struct, Enum where TCore : notnull
        {
            if (Pair<TEnum, TCore>.ToCore.TryGetValue(value, out var core)) return core;
            if (!Enum.IsDefined(value))
                throw new ArgumentOutOfRangeException(property, value, $"{value} is not a {typeof(TEnum).Name}");
            throw new InvalidOperationException($"GroupedNewton facade error: {typeof(TEnum).Name}.{value} has no case in the core's {typeof(TCore).Name}");
        }

        /// <summary>The facade's value named like the core's case.</summary>
        public static TEnum FromCore<TEnum, TCore>(TCore core) where TEnum : struct, Enum where TCore : notnull
        {
            var tag = Pair<TEnum, TCore>.Tag.Invoke(core);
            return Pair<TEnum, TCore>.FromTag.TryGetValue(tag, out var value)
                ? value
                : throw new InvalidOperationException($"GroupedNewton facade error: the core's {typeof(TCore).Name} {core} has no {typeof(TEnum).Name}");
        }
    }

    /// <summary>F# options from C# nullables and back.</summary>
    internal static class CoreOption
    {
        public static FSharpOption<T> Of<T>(T? value) where T : class =>
            value is null ? FSharpOption<T>.None : FSharpOption<T>.Some(value);

        public static FSharpOption<T> OfValue<T>(T? value) where T : struct =>
            value is { } v ? FSharpOption<T>.Some(v) : FSharpOption<T>.None;

        public static T? ToNullable<T>(FSharpOption<T>? option) where T : struct =>
            option is null ? null : option.Value;
    }
}
