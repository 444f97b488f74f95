using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Core;
using Microsoft.FSharp.Reflection;
using NUnit.Framework;
using CoreKfacDampingSplit = global::GroupedNewton.KfacDampingSplit;

namespace GroupedNewton.CSharp.Tests
{
    /// <summary>The facade's options classes build the core's records: new C# instances (and the
    /// presets) give exactly the core's <c>Defaults</c> (and its presets), field by field.</summary>
    public class OptionsDefaultsTests
    {
        /// <summary>Every field of two F# records of one type, compared with Equals and named when they
        /// differ; records that carry structural equality must also be equal as a whole.</summary>
        static void SameRecord<TRecord>(TRecord expected, TRecord actual) where TRecord : notnull
        {
            var type = typeof(TRecord);
            Assert.That(FSharpType.IsRecord(type, FSharpOption<System.Reflection.BindingFlags>.None), Is.True, $"{type.Name} is an F# record");
            var names = FSharpType.GetRecordFields(type, FSharpOption<System.Reflection.BindingFlags>.None).Select(p => p.Name).ToArray();
            var e = FSharpValue.GetRecordFields(expected, FSharpOption<System.Reflection.BindingFlags>.None);
            var a = FSharpValue.GetRecordFields(actual, FSharpOption<System.Reflection.BindingFlags>.None);
            Assert.That(names, Is.Not.Empty);
            for (int i = 0; i < names.Length; i++)
                Assert.That(a[i], Is.EqualTo(e[i]), $"{type.Name}.{names[i]}");
            // (K-FAC's record holds the sampler function of its Fisher case, so it has no structural equality)
            if (type.GetMethods().Any(m => m.Name == "Equals" && m.DeclaringType == type && m.GetParameters() is { Length: 1 } ps && ps[0].ParameterType == type))
                Assert.That(actual, Is.EqualTo(expected), $"{type.Name} as a whole");
        }

        static CurvatureSource Curvature() => CurvatureSource.Cycle(Fixtures.Mlp(), Fixtures.Task(100));

        /// <summary>One case per options class (and per preset): the C# side and the core's value.</summary>
        static IEnumerable<TestCaseData> Cases()
        {
            TestCaseData Case<T>(string name, Type options, Func<T> csharp, T core) where T : notnull =>
                new TestCaseData(options, (Action)(() => SameRecord(core, csharp()))).SetName(name);

            yield return Case("SgdDefaults", typeof(SgdOptions), () => new SgdOptions().ToCore(), global::GroupedNewton.SgdOptions.Defaults);
            yield return Case("AdamDefaults", typeof(AdamOptions), () => new AdamOptions().ToCore(), global::GroupedNewton.AdamOptions.Defaults);
            yield return Case("AdamKbfgsAuthors", typeof(AdamOptions), () => AdamOptions.KbfgsAuthors().ToCore(), global::GroupedNewton.AdamOptions.KbfgsAuthors);
            yield return Case("SofimDefaults", typeof(SofimOptions), () => new SofimOptions().ToCore(), global::GroupedNewton.SofimOptions.Defaults);
            yield return Case("KfacDefaults", typeof(KfacOptions), () => new KfacOptions().ToCore(), global::GroupedNewton.KfacOptions.Defaults);
            yield return Case("KbfgsDefaults", typeof(KbfgsOptions), () => new KbfgsOptions().ToCore(), global::GroupedNewton.KbfgsOptions.Defaults);
            yield return Case("KbfgsCnn", typeof(KbfgsOptions), () => KbfgsOptions.Cnn().ToCore(), global::GroupedNewton.KbfgsOptions.Cnn);
            yield return Case("GroupedNewtonDefaults", typeof(GroupedNewtonOptions), () => new GroupedNewtonOptions().ToCore(), global::GroupedNewton.GroupedNewtonOptions.Defaults);
            yield return Case("GroupedNewtonPaper", typeof(GroupedNewtonOptions), () => GroupedNewtonOptions.Paper(Curvature()).ToCore(), global::GroupedNewton.GroupedNewtonOptions.Paper);
            yield return Case("GroupedNewtonAuto", typeof(GroupedNewtonOptions), () => GroupedNewtonOptions.Auto(Curvature()).ToCore(), global::GroupedNewton.GroupedNewtonOptions.Auto);
            var trainer = global::GroupedNewton.TrainerOptions.Defaults;
            yield return Case("TrainerDefaults", typeof(TrainerOptions), () => new TrainerOptions().ToCore(trainer.Epochs, null, null), trainer);
            yield return Case("InitializationReference", typeof(Initialization), () => Initialization.Reference(7).ToCore(), global::GroupedNewton.Init.reference(7));
            yield return Case("InitializationPyTorch", typeof(Initialization), () => Initialization.PyTorch(7).ToCore(), global::GroupedNewton.Init.pytorch(7));
        }

        [TestCaseSource(nameof(Cases))]
        public void CSharpDefaultsGiveTheCoreDefaults(Type options, Action check) => check();

        [Test]
        public void EveryOptionsClassHasADefaultsCase()
        {
            // a new options class (or settings class with a core record behind it) must join Cases()
            var facade = typeof(Optimizer).Assembly;
            var withCore = facade.GetExportedTypes()
                .Where(t => t.IsClass && t.Name.EndsWith("Options") || t == typeof(Initialization))
                .Where(t => t.GetMethod("ToCore", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic) is not null)
                .Select(t => t.Name).OrderBy(n => n).ToArray();
            var covered = Cases().Select(c => ((Type)c.Arguments[0]!).Name).Distinct().OrderBy(n => n).ToArray();
            Assert.That(withCore, Has.Length.GreaterThanOrEqualTo(8));
            Assert.That(covered, Is.EqualTo(withCore));
        }

        [Test]
        public void ChangedValuesReachTheCoreRecord()
        {
            // named fields: a value set on one C# property lands in the field of that name, nowhere else
            var core = new KbfgsOptions { PairMomentum = 0.25, AMomentum = 0.5, GateTolerance = 0.125, InitialHa = KbfgsInitialHa.Identity }.ToCore();
            var d = global::GroupedNewton.KbfgsOptions.Defaults;
            Assert.That((core.PairMomentum, core.AMomentum, core.GateTolerance, core.InitialHa.IsIdentity), Is.EqualTo((0.25, 0.5, 0.125, true)));
            Assert.That((core.GradientMomentum, core.Lambda, core.Mu1), Is.EqualTo((d.GradientMomentum, d.Lambda, d.Mu1)));
            var gn = new GroupedNewtonOptions { SummaryMomentum = 0.3, ThirdOrderMomentum = 0.6, RateMomentum = 0.1, RaiseOnCurvatureFailure = true }.ToCore();
            Assert.That((gn.SummaryMomentum, gn.ThirdOrderMomentum, gn.RateMomentum, gn.OnCurvatureFailure.IsRaise), Is.EqualTo((0.3, 0.6, 0.1, true)));
            var kfac = new KfacOptions { KlClip = 0.01, DampingSplit = KfacDampingSplit.Plain, Fisher = KfacFisher.SampledBernoulli }.ToCore();
            Assert.That((kfac.KlClip!.Value, kfac.DampingSplit, kfac.Fisher.IsSampled), Is.EqualTo((0.01, CoreKfacDampingSplit.Plain, true)));
            var trainer = new TrainerOptions { MetricsPath = "m.jsonl", DivergenceFactor = null, EvalBatchSize = 17 }.ToCore(3, null, 2.5);
            Assert.That((trainer.Epochs, trainer.MetricsPath!.Value, trainer.DivergenceFactor, trainer.EvalBatchSize, trainer.ReferenceLoss!.Value),
                        Is.EqualTo((3, "m.jsonl", (FSharpOption<double>?)null, 17, 2.5)));
        }

        static void RoundTrip<TEnum, TCore>() where TEnum : struct, Enum where TCore : notnull
        {
            foreach (var v in Enum.GetValues<TEnum>())
            {
                var core = CoreCases.ToCore<TEnum, TCore>(v, "x");
                Assert.That(core.ToString(), Is.EqualTo(v.ToString()), $"{typeof(TEnum).Name}.{v}");
                Assert.That(CoreCases.FromCore<TEnum, TCore>(core), Is.EqualTo(v));
            }
            var cases = FSharpType.GetUnionCases(typeof(TCore), FSharpOption<System.Reflection.BindingFlags>.None).Select(c => c.Name);
            Assert.That(cases, Is.EquivalentTo(Enum.GetNames<TEnum>()), $"{typeof(TCore).Name} and {typeof(TEnum).Name} name the same cases");
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => CoreCases.ToCore<TEnum, TCore>((TEnum)(object)99, "Prop"))!;
            Assert.That(e.ParamName, Is.EqualTo("Prop"));
        }

        [Test]
        public void EveryEnumMapsToTheCoreCaseOfItsName()
        {
            RoundTrip<SofimDirection, global::GroupedNewton.SofimDirection>();
            RoundTrip<SofimScope, global::GroupedNewton.SofimScope>();
            RoundTrip<KfacDampingSplit, global::GroupedNewton.KfacDampingSplit>();
            RoundTrip<KfacConvScaling, global::GroupedNewton.KfacConvScaling>();
            RoundTrip<KbfgsSecondStage, global::GroupedNewton.SecondStageDamping>();
            RoundTrip<KbfgsMomentum, global::GroupedNewton.KbfgsMomentum>();
            RoundTrip<KbfgsAStatistic, global::GroupedNewton.KbfgsAStatistic>();
            RoundTrip<KbfgsInitialHa, global::GroupedNewton.KbfgsInitialHa>();
            RoundTrip<KbfgsPrecision, global::GroupedNewton.KbfgsPrecision>();
            RoundTrip<GroupedNewtonVariant, global::GroupedNewton.GroupedNewtonVariant>();
        }

        [Test]
        public void AValueOutsideAnEnumIsRejectedNamingTheProperty()
        {
            var model = Fixtures.Mlp();
            foreach (var (options, param) in new (OptimizerOptions, string)[]
            {
                (new KfacOptions { DampingSplit = (KfacDampingSplit)7 }, "DampingSplit"),
                (new KfacOptions { Fisher = (KfacFisher)7 }, "Fisher"),
                (new SofimOptions { Scope = (SofimScope)7 }, "Scope"),
                (new KbfgsOptions { AStatistic = (KbfgsAStatistic)7 }, "AStatistic"),
                (new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, Fixtures.Task(100)), Variant = (GroupedNewtonVariant)7 }, "Variant"),
                (new GroupedNewtonOptions { Curvature = CurvatureSource.Cycle(model, Fixtures.Task(100)), Direction = (GroupedNewtonDirection)7 }, "Direction"),
            })
            {
                var e = Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(model, options), param)!;
                Assert.That(e.ParamName, Is.EqualTo(param));
                Assert.That(e.Message, Does.Contain("7"));
            }
        }
    }
}
