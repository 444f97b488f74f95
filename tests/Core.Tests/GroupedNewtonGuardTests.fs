/// GroupedNewton's guard rails: failed curvature updates (non-finite summaries anywhere, a
/// non-finite curvature batch) warn and follow the variant's rule or raise with nothing
/// changed; jumping rates warn and can be bounded; the direction's momentum is validated;
/// suggested learning rates are clipped at 0.
module GroupedNewton.Tests.GroupedNewtonGuardTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

let private ps = Parameters.ofSeq [ "p0", Tensor.scalar 1.0; "p1", Tensor.scalar 0.5 ]
let private partition = Partition.canonical ps
let private updater = SgdRule { SgdOptions.Defaults with LearningRate = 1.0 }
let private plain = { GroupedNewtonOptions.Defaults with SecondOrderOnly = true }

let private summary (g: float[]) (h: float[,]) = { Gradient = g; Hessian = h; ThirdDiagonal = [||]; Loss = 1.0; ReversePasses = 1 }

/// One pure step from `state` whose curvature batch gives `s`.
let private stepWith options state s =
    GroupedNewtonStep.step options partition updater state {
        Parameters = ps
        Loss = 1.0
        Gradient = ps
        Summarise = fun _ -> s, (fun _ -> s.Loss)
    }

[<Test>]
let ``a non-finite off-diagonal entry of H̄ is a failed update: previous rates, a warning naming both subsets, no exception`` () =
    let options = { plain with Variant = GroupedNewtonVariant.UniformAverage }

    let s0, out0 =
        stepWith options (GroupedNewtonState.Initial 2 options) (summary [| 1.0; 2.0 |] (array2D [ [ 2.0; 0.0 ]; [ 0.0; 4.0 ] ]))

    Assert.That(out0.Warnings, Is.Empty)
    Assert.That(s0.Applied, equalTo [| 0.5; 0.5 |])

    let s1, out1 =
        stepWith options s0 (summary [| 1.0; 2.0 |] (array2D [ [ 2.0; -infinity ]; [ -infinity; 4.0 ] ]))

    Assert.That(out1.Update.Value.Fallback, Is.True)
    Assert.That(s1.Applied, equalTo s0.Applied)
    Assert.That(out1.Warnings.Length, equalTo 1)
    Assert.That(out1.Warnings.[0], Does.Contain "H̄['p0', 'p1'] = -Infinity")
    Assert.That(out1.Warnings.[0], Does.Contain "previous rates")
    // the failed summary never entered the uniform average
    Assert.That(s1.Average, equalTo s0.Average)
    // with Raise the step refuses instead
    let raising = { options with OnCurvatureFailure = CurvatureFailure.Raise }

    let e =
        Assert.Throws<OptimizationException>(fun () ->
            stepWith raising s0 (summary [| 1.0; 2.0 |] (array2D [ [ 2.0; -infinity ]; [ -infinity; 4.0 ] ]))
            |> ignore)

    Assert.That(e.Message, Does.Contain "unchanged")

[<Test>]
let ``NewtonSummary feeds η = 0 on a failed update and says so`` () =
    let s0, _ =
        stepWith plain (GroupedNewtonState.Initial 2 plain) (summary [| 1.0; 2.0 |] (array2D [ [ 2.0; 0.0 ]; [ 0.0; 4.0 ] ]))

    let s1, out1 = stepWith plain s0 (summary [| nan; 2.0 |] (array2D [ [ 2.0; 0.0 ]; [ 0.0; 4.0 ] ]))
    Assert.That(s1.Applied, equalTo [| 0.0; 0.0 |])
    Assert.That(out1.Warnings.[0], Does.Contain "ḡ['p0'] = NaN")
    Assert.That(out1.Warnings.[0], Does.Contain "η = 0")

[<Test>]
let ``a NaN curvature batch warns at every curvature update, and Raise leaves the optimizer as it was`` () =
    let f (p: Parameters) = let a, b = p.["p0"], p.["p1"] in a * a + b * b
    let nanBatch (p: Parameters) = f p * nan
    let options = { plain with Variant = GroupedNewtonVariant.UniformAverage; CurvaturePeriod = 2 }
    let opt = GroupedNewtonOptimizer.create options 0.0 partition (fun () -> nanBatch) ps
    let warnings = ResizeArray<string>()
    opt.Warning.Add warnings.Add

    for _ in 1..4 do
        opt.Step f |> ignore

    Assert.That(warnings.Count, equalTo 2, String.Join("\n", warnings))
    Assert.That(warnings |> Seq.forall (fun w -> w.Contains "curvature update failed"), Is.True)
    Assert.That(opt.History |> Array.forall (fun h -> h.Fallback), Is.True)

    let strict =
        GroupedNewtonOptimizer.create { options with OnCurvatureFailure = CurvatureFailure.Raise } 0.0 partition (fun () -> nanBatch) ps

    let strictWarnings = ResizeArray<string>()
    strict.Warning.Add strictWarnings.Add
    Assert.Throws<OptimizationException>(fun () -> strict.Step f |> ignore) |> ignore
    Assert.That(strict.StepCount, equalTo 0)
    Assert.That(strict.Parameters.Values |> Array.map Tensor.toScalar, equalTo [| 1.0; 0.5 |])
    Assert.That(strict.State, equalTo (GroupedNewtonState.Initial 2 options))
    Assert.That(strict.History, Is.Empty)

[<Test>]
let ``a rate that jumps more than 100× warns, and MaxRateGrowth bounds the jump`` () =
    let calm = summary [| 1.0; 1.0 |] (array2D [ [ 1.0; 0.0 ]; [ 0.0; 1.0 ] ])
    let wild = summary [| 1000.0; 1.0 |] (array2D [ [ 1.0; 0.0 ]; [ 0.0; 1.0 ] ])
    let s0, _ = stepWith plain (GroupedNewtonState.Initial 2 plain) calm
    let s1, out1 = stepWith plain s0 wild
    Assert.That(s1.Applied, equalTo [| 1000.0; 1.0 |])
    Assert.That(out1.Warnings.Length, equalTo 1)
    Assert.That(out1.Warnings.[0], Does.Contain "'p0' jumped from 1 to 1000")
    let capped = { plain with MaxRateGrowth = 10.0 }
    let c0, _ = stepWith capped (GroupedNewtonState.Initial 2 capped) calm
    let c1, outC = stepWith capped c0 wild
    Assert.That(c1.Applied, equalTo [| 10.0; 1.0 |])
    Assert.That(outC.Warnings, Is.Empty)
    Assert.Throws<ArgumentException>(fun () -> { plain with MaxRateGrowth = 0.5 }.Validate()) |> ignore

[<Test>]
let ``the core rejects a direction momentum of 1 or more`` () =
    let f (p: Parameters) = p.["p0"] * p.["p0"]

    for m in [ 1.0; 1.5; -0.1; nan ] do
        let e =
            Assert.Throws<ArgumentException>(fun () -> GroupedNewtonOptimizer.create plain m partition (fun () -> f) ps |> ignore)

        Assert.That(e.Message, Does.Contain "Momentum")

    GroupedNewtonOptimizer.create plain 0.9 partition (fun () -> f) ps |> ignore

[<Test>]
let ``suggested learning rates clip a negative η to 0 unless it is kept`` () =
    // H̄ = I and ḡ = (2, −1): η = (2, −1) (the cubic term is off: no third-order diagonal)
    let s = summary [| 2.0; -1.0 |] (array2D [ [ 1.0; 0.0 ]; [ 0.0; 1.0 ] ])
    Assert.That((RateSuggestion.learningRates true 1.0 s).Eta, equalTo [| 2.0; -1.0 |])
    Assert.That((RateSuggestion.learningRates false 1.0 s).Eta, equalTo [| 2.0; 0.0 |])

[<Test>]
let ``a training loss far above its running average warns in the paper's variants`` () =
    let f (p: Parameters) = let a, b = p.["p0"], p.["p1"] in a * a + b * b + 1.0
    let options = { plain with Variant = GroupedNewtonVariant.UniformAverage; CurvaturePeriod = 2; Damping = 0.1 }
    let opt = GroupedNewtonOptimizer.create options 0.0 partition (fun () -> f) ps
    let warnings = ResizeArray<string>()
    opt.Warning.Add warnings.Add

    for _ in 1..6 do
        opt.Step f |> ignore

    Assert.That(warnings, Is.Empty)
    // a fault: one batch whose loss is 100 times the usual
    opt.Step(fun p -> 100.0 * f p) |> ignore
    Assert.That(warnings.Count, equalTo 1, String.Join("\n", warnings))
    Assert.That(warnings.[0], Does.Contain "more than 10× its running average")
