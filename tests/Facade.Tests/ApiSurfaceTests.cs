using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using NUnit.Framework;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>The facade's public surface exposes no F# type and no type of the F# core.</summary>
    public class ApiSurfaceTests
    {
        static readonly Assembly Facade = typeof(Optimizer).Assembly;

        static readonly string[] Forbidden = { "FSharp.Core", "GroupedNewton.Core" };

        /// <summary>The forbidden assemblies a type mentions (itself, element types, generic arguments).</summary>
        static IEnumerable<string> Offending(Type? t)
        {
            if (t is null) yield break;
            if (t.HasElementType)
            {
                foreach (var o in Offending(t.GetElementType())) yield return o;
                yield break;
            }
            if (t.IsGenericParameter) yield break;
            var asm = t.Assembly.GetName().Name!;
            if (Forbidden.Contains(asm)) yield return $"{t.FullName} ({asm})";
            if (t.IsGenericType)
                foreach (var a in t.GetGenericArguments())
                    foreach (var o in Offending(a)) yield return o;
        }

        static IEnumerable<string> Violations()
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var type in Facade.GetExportedTypes())
            {
                var where = type.FullName!;
                foreach (var o in Offending(type.BaseType)) yield return $"{where} base type: {o}";
                foreach (var i in type.GetInterfaces())
                    foreach (var o in Offending(i)) yield return $"{where} interface: {o}";
                foreach (var m in type.GetMembers(flags))
                {
                    var name = $"{where}.{m.Name}";
                    switch (m)
                    {
                        case MethodBase mb:
                            if (mb is MethodInfo mi)
                            {
                                foreach (var o in Offending(mi.ReturnType)) yield return $"{name} returns {o}";
                                foreach (var g in mi.IsGenericMethodDefinition ? mi.GetGenericArguments().SelectMany(a => a.GetGenericParameterConstraints()) : Array.Empty<Type>())
                                    foreach (var o in Offending(g)) yield return $"{name} constraint {o}";
                            }
                            foreach (var p in mb.GetParameters())
                                foreach (var o in Offending(p.ParameterType)) yield return $"{name}({p.Name}) takes {o}";
                            break;
                        case PropertyInfo pi:
                            foreach (var o in Offending(pi.PropertyType)) yield return $"{name} property {o}";
                            break;
                        case FieldInfo fi:
                            foreach (var o in Offending(fi.FieldType)) yield return $"{name} field {o}";
                            break;
                        case EventInfo ei:
                            foreach (var o in Offending(ei.EventHandlerType)) yield return $"{name} event {o}";
                            break;
                        case Type nested:
                            foreach (var o in Offending(nested.BaseType)) yield return $"{name} nested {o}";
                            break;
                    }
                }
                // members protected or protected-internal are visible to C# subclasses too
                foreach (var m in type.GetMethods(BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                                      .Where(m => m.IsFamily || m.IsFamilyOrAssembly))
                {
                    foreach (var o in Offending(m.ReturnType)) yield return $"{where}.{m.Name} (protected) returns {o}";
                    foreach (var p in m.GetParameters())
                        foreach (var o in Offending(p.ParameterType)) yield return $"{where}.{m.Name} (protected) takes {o}";
                }
            }
        }

        static readonly NullabilityInfoContext Nullability = new();

        /// <summary>A type as the listing writes it: generic arguments spelled out, and <c>?</c> where
        /// C# callers see a nullable reference (so the nullness annotations are pinned too).</summary>
        static string TypeName(Type t, NullabilityInfo? n = null)
        {
            var q = n is { ReadState: NullabilityState.Nullable } && !t.IsValueType ? "?" : "";
            if (t.IsGenericParameter) return t.Name + q;
            if (t.IsArray) return TypeName(t.GetElementType()!, n?.ElementType) + "[" + new string(',', t.GetArrayRank() - 1) + "]" + q;
            if (t.IsByRef) return TypeName(t.GetElementType()!) + "&";
            if (t.IsGenericType)
            {
                var name = (t.GetGenericTypeDefinition().FullName ?? t.Name).Split('`')[0];
                var args = t.GetGenericArguments();
                var infos = n?.GenericTypeArguments;
                return $"{name}<{string.Join(", ", args.Select((a, i) => TypeName(a, infos is { } ns && ns.Length == args.Length ? ns[i] : null)))}>" + q;
            }
            return (t.FullName ?? t.Name) + q;
        }

        static string? MemberLine(MemberInfo m)
        {
            static string Params(ParameterInfo[] ps) =>
                string.Join(", ", ps.Select(p => TypeName(p.ParameterType, p.ParameterType.IsByRef ? null : Nullability.Create(p))
                                                 + (p.HasDefaultValue ? " = " + (p.DefaultValue ?? "null") : "")));
            return m switch
            {
                ConstructorInfo c => $"  new({Params(c.GetParameters())})",
                MethodInfo mi when !mi.IsSpecialName || mi.Name.StartsWith("op_") =>
                    $"  {(mi.IsStatic ? "static " : "")}{mi.Name}({Params(mi.GetParameters())}) : {TypeName(mi.ReturnType, Nullability.Create(mi.ReturnParameter))}",
                PropertyInfo pi => $"  property {pi.Name}{(pi.GetIndexParameters() is { Length: > 0 } ix ? $"[{Params(ix)}]" : "")} : {TypeName(pi.PropertyType, Nullability.Create(pi))}"
                                   + (pi.SetMethod is { IsPublic: true } ? " { set; }" : ""),
                FieldInfo fi => $"  field {fi.Name} : {TypeName(fi.FieldType, Nullability.Create(fi))}",
                EventInfo ei => $"  event {ei.Name} : {TypeName(ei.EventHandlerType!, Nullability.Create(ei))}",
                _ => null,
            };
        }

        /// <summary>The facade's public surface as text: types sorted by name, members sorted within each type.</summary>
        static string[] Surface()
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            return Facade.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal).SelectMany(t =>
            {
                var kind = t.IsInterface ? "interface" : t.IsEnum ? "enum" : t.IsValueType ? "struct" : t.IsAbstract && t.IsSealed ? "static class" : "class";
                var members = t.IsEnum
                    ? Enum.GetNames(t).Select(n => "  " + n).ToArray()
                    : t.GetMembers(flags).Select(MemberLine).OfType<string>().Distinct().OrderBy(l => l, StringComparer.Ordinal).ToArray();
                return new[] { $"{kind} {TypeName(t)}" }.Concat(members);
            }).ToArray();
        }

        static string BaselinePath([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
            System.IO.Path.Combine(System.IO.Path.GetDirectoryName(here)!, "PublicSurface.txt");

        [Test]
        public void ThePublicSurfaceMatchesItsCheckedInBaseline()
        {
            // a change of the C# surface shows up as a diff of PublicSurface.txt; regenerate it
            // deliberately with GROUPEDNEWTON_UPDATE_SURFACE=1
            var current = Surface();
            if (Environment.GetEnvironmentVariable("GROUPEDNEWTON_UPDATE_SURFACE") == "1")
                System.IO.File.WriteAllLines(BaselinePath(), current);
            var baseline = System.IO.File.ReadAllLines(BaselinePath());
            var added = current.Except(baseline).ToArray();
            var removed = baseline.Except(current).ToArray();
            Assert.That(added.Length + removed.Length, Is.Zero,
                "the public surface changed (regenerate PublicSurface.txt with GROUPEDNEWTON_UPDATE_SURFACE=1 if intended):\nadded:\n"
                + string.Join("\n", added) + "\nremoved:\n" + string.Join("\n", removed));
        }

        [Test]
        public void TheSurfaceListingSeesTypesMembersAndSignatures()
        {
            var s = Surface();
            Assert.That(s, Does.Contain("class GroupedNewton.CSharp.Tensor"));
            Assert.That(s, Does.Contain("  property Shape : System.Int32[]"));
            Assert.That(s, Does.Contain("static class GroupedNewton.CSharp.Backend"));
            Assert.That(s, Has.Some.StartsWith("  static op_Addition(GroupedNewton.CSharp.Tensor, GroupedNewton.CSharp.Tensor)"));
            Assert.That(s, Has.Some.Contains("property Threads : System.Int32 { set; }"));
            Assert.That(s, Has.Some.Contains("property Validation : GroupedNewton.CSharp.Evaluation?"));
            Assert.That(s, Has.Some.Contains("property Hessian : System.Double[,]"));
        }

        [Test]
        public void NoPublicSignatureExposesFSharpOrCoreTypes()
        {
            var v = Violations().ToList();
            Assert.That(v, Is.Empty, string.Join("\n", v));
        }

        [Test]
        public void TheCheckWouldCatchAnFSharpType()
        {
            // the detector itself: an F# function type, an F# list inside a generic and a core type are all found
            var fsharpFunc = typeof(Microsoft.FSharp.Core.FSharpFunc<int, int>);
            Assert.That(Offending(fsharpFunc), Is.Not.Empty);
            Assert.That(Offending(typeof(List<>).MakeGenericType(typeof(Microsoft.FSharp.Collections.FSharpList<int>))), Is.Not.Empty);
            Assert.That(Offending(typeof(global::GroupedNewton.Tensor).MakeArrayType()), Is.Not.Empty);
            Assert.That(Offending(typeof(IReadOnlyDictionary<string, double>)), Is.Empty);
        }

        [Test]
        public void EveryPublicTypeIsInTheFacadeNamespace()
        {
            var types = Facade.GetExportedTypes();
            Assert.That(types.Length, Is.GreaterThan(30));
            Assert.That(types.Select(t => t.Namespace).Distinct(), Is.EqualTo(new[] { "GroupedNewton.CSharp" }));
        }

        [Test]
        public void OptimizerOptionsCannotBeSubclassedOutsideTheLibrary()
        {
            // new optimizers are added inside the facade (one options class each)
            var ctors = typeof(OptimizerOptions).GetConstructors(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance);
            Assert.That(ctors.All(c => !c.IsPublic && !c.IsFamily), Is.True);
            var concrete = Facade.GetExportedTypes().Where(t => typeof(OptimizerOptions).IsAssignableFrom(t) && !t.IsAbstract)
                                 .Select(t => t.Name).OrderBy(n => n);
            Assert.That(concrete, Is.EqualTo(new[] { "AdamOptions", "GroupedNewtonOptions", "KbfgsOptions", "KfacOptions", "SgdOptions", "SofimOptions" }));
        }
    }
}
