/// Every differentiable op: first, second and third directional derivatives computed by
/// every nesting of forward and reverse mode, checked against each other and against
/// float64 finite differences. The case table and the check live in the shared
/// conformance library (tests/Conformance), which the GPU runner runs too.
module GroupedNewton.Tests.DerivativeTests

open NUnit.Framework
open GroupedNewton.Conformance

let allCases = [|
    for c in DerivativeCases.cases do
        for k in DerivativeCases.orders do
            yield TestCaseData(c, k).SetName(sprintf "%s order %d" c.Name k)
|]

[<TestCaseSource(nameof allCases)>]
let ``directional derivative by every nesting matches finite differences`` (c: DerivativeCases.Case, order: int) =
    DerivativeCases.check c order
