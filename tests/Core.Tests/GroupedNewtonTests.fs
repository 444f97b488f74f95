/// The GroupedNewton optimizer (docs/groupednewton.md): exactness on quadratics, invariances,
/// convergence, pipeline semantics, averaging, failure handling and state.
module GroupedNewton.Tests.GroupedNewtonTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

/// f(θ) = ½θᵀAθ − bᵀθ over three tensors of three entries.
let private quadratic () =
    let r = t [| 9; 9 |] (randn 21 81)

    let a =
        Tensor.matmulT false true r r / 9.0
        + Tensor.ofArray2D (Array2D.init 9 9 (fun i j -> if i = j then 0.5 else 0.0))

    let b = vec (randn 22 9)
    let ps = Parameters.ofSeq [ "p0", vec (randn 23 3); "p1", vec (randn 24 3); "p2", vec (randn 25 3) ]

    let f (p: Parameters) =
        let th = Tensor.cat 0 [ p.["p0"]; p.["p1"]; p.["p2"] ]

        0.5 * Tensor.dot th (Tensor.matmul a (Tensor.view [| 9; 1 |] th) |> Tensor.flatten)
        - Tensor.dot b th

    ps, f, Tensor.toArray2D a, Tensor.toArray b

let private flat (ps: Parameters) = ps.Values |> Array.collect Tensor.toArray

/// Solves a small dense system by Gaussian elimination with partial pivoting (test oracle).
let private gauss (m: float[,]) (v: float[]) =
    let n = v.Length
    let a = Array2D.init n (n + 1) (fun i j -> if j < n then m.[i, j] else v.[i])

    for c in 0 .. n - 1 do
        let p = [ c .. n - 1 ] |> List.maxBy (fun r -> abs a.[r, c])

        for j in 0..n do
            let tmp = a.[c, j]
            a.[c, j] <- a.[p, j]
            a.[p, j] <- tmp

        for r in c + 1 .. n - 1 do
            let f = a.[r, c] / a.[c, c]

            for j in c..n do
                a.[r, j] <- a.[r, j] - f * a.[c, j]

    let x = Array.zeroCreate n

    for i in n - 1 .. -1 .. 0 do
        x.[i] <-
            (a.[i, n] - Array.sum (Array.init (n - 1 - i) (fun k -> a.[i, i + 1 + k] * x.[i + 1 + k])))
            / a.[i, i]

    x

let private plain = { GroupedNewtonOptions.Defaults with SecondOrderOnly = true }

[<Test>]
let ``one order-2 step is the exact minimiser of f(θ − Σ t_s u_s) with u = g`` () =
    let ps, f, a, b = quadratic ()
    let th = flat ps
    let g = Array.init 9 (fun i -> Array.sum (Array.init 9 (fun j -> a.[i, j] * th.[j])) - b.[i])
    // U: column s holds g restricted to tensor s
    let u s = Array.init 9 (fun i -> if i / 3 = s then g.[i] else 0.0)
    let au (x: float[]) = Array.init 9 (fun i -> Array.sum (Array.init 9 (fun j -> a.[i, j] * x.[j])))
    let dot (x: float[]) (y: float[]) = Array.fold2 (fun acc p q -> acc + p * q) 0.0 x y
    let m = Array2D.init 3 3 (fun s r -> dot (u s) (au (u r)))
    let tStar = gauss m (Array.init 3 (fun s -> dot (u s) g))
    let expected = Array.init 9 (fun i -> th.[i] - tStar.[i / 3] * g.[i])
    let opt = GroupedNewtonOptimizer.create plain 0.0 (Partition.canonical ps) (fun () -> f) ps
    opt.Step f |> ignore
    assertAllClose 1e-10 "θ after one step" expected (flat opt.Parameters)
    // the trivial partition: the exact line search t* = gᵀg / gᵀAg
    let opt1 = GroupedNewtonOptimizer.create plain 0.0 (Partition.trivial ps) (fun () -> f) ps
    opt1.Step f |> ignore
    let ts = dot g g / dot g (au g)
    assertAllClose 1e-10 "line search" (Array.init 9 (fun i -> th.[i] - ts * g.[i])) (flat opt1.Parameters)

/// A rule returning c_s · g for subset s: the direction's per-subset scale.
type private ScaledGradient(partition: Partition, c: float[]) =
    inherit UpdateRule()
    override _.Name = "scaled-gradient"
    override _.BufferNames = [||]

    override _.Direction(ps, gradient, state) =
        ps.Map(fun k _ -> c.[partition.SubsetOf k] * gradient.[k]), { state with Step = state.Step + 1 }

[<Test>]
let ``the step does not depend on the scale of each u_s (cubic term on)`` () =
    let m =
        Models.mlp [ 3; 4; 2 ] Activation.Tanh { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = 3 }

    let x = t [| 6; 3 |] (randn 1 18)
    let y = t [| 6; 2 |] (randn 2 12)
    let loss (p: Parameters) = Tensor.mse (m.Forward(p, x)) y
    let ps = m.Parameters
    let partition = Partition.perLayer ps
    let options = { GroupedNewtonOptions.Defaults with Cubic = true; Damping = 0.5 }

    let run c =
        let opt =
            GroupedNewtonOptimizer.createWith options (ScaledGradient(partition, c)) partition (fun () -> loss) ps

        opt.Step loss |> ignore
        flat opt.Parameters

    assertAllClose 1e-10 "θ₁" (run [| 1.0; 1.0 |]) (run [| 1e-3; 250.0 |])

[<Test>]
let ``Rosenbrock from (-1.2, 1) with two subsets reaches f < 1e-12 in 200 steps`` () =
    let ps = Parameters.ofSeq [ "x", Tensor.scalar -1.2; "y", Tensor.scalar 1.0 ]
    let f (p: Parameters) = let a, b = p.["x"], p.["y"] in (1.0 - a) ** 2.0 + 100.0 * (b - a * a) ** 2.0

    let opt =
        GroupedNewtonOptimizer.create
            { GroupedNewtonOptions.Defaults with Cubic = true; LambdaInt = 1.0 }
            0.0
            (Partition.canonical ps)
            (fun () -> f)
            ps

    for _ in 1..200 do
        opt.Step f |> ignore

    Assert.That(Tensor.toScalar (f opt.Parameters), Is.LessThan 1e-12)

[<Test>]
let ``monotone decrease on a strongly convex quadratic with the cubic term`` () =
    let ps, f, _, _ = quadratic ()

    let opt =
        GroupedNewtonOptimizer.create { GroupedNewtonOptions.Defaults with Cubic = true } 0.0 (Partition.canonical ps) (fun () -> f) ps

    let mutable last = Tensor.toScalar (f ps)

    for i in 1..25 do
        opt.Step f |> ignore
        let v = Tensor.toScalar (f opt.Parameters)
        Assert.That(v, Is.LessThanOrEqualTo(last + 1e-12), sprintf "step %d" i)
        last <- v

[<Test>]
let ``curvature is recomputed every CurvaturePeriod steps and in-between steps reuse the rates with a fresh u`` () =
    let ps, f, _, _ = quadratic ()
    let calls = ref 0

    let curvature () =
        calls.Value <- calls.Value + 1
        f

    let opt =
        GroupedNewtonOptimizer.create { plain with CurvaturePeriod = 3 } 0.9 (Partition.canonical ps) curvature ps

    let before = ResizeArray<float[]>()

    for _ in 1..7 do
        before.Add(flat opt.Parameters)
        opt.Step f |> ignore

    Assert.That(calls.Value, equalTo 3)
    Assert.That(opt.History |> Array.map (fun h -> h.Step), equalTo [| 0; 3; 6 |])
    // every step moved the parameters
    Assert.That(before |> Seq.pairwise |> Seq.forall (fun (a, b) -> a <> b), Is.True)
    let h = opt.History.[0]
    Assert.That(h.LearningRates |> Array.map fst, equalTo [| "p0"; "p1"; "p2" |])
    Array.iter2 (fun (_, lr) (_, r) -> assertClose 1e-15 "lr = damping·η" (1.0 * r) lr) h.LearningRates h.Rates

[<Test>]
let ``during warm-up the parameters do not move`` () =
    let ps, f, _, _ = quadratic ()

    let options = {
        plain with
            Variant = GroupedNewtonVariant.UniformAverage
            CurvaturePeriod = 2
            Warmup = 2
            AveragePeriod = 1
    }

    let opt = GroupedNewtonOptimizer.create options 0.0 (Partition.canonical ps) (fun () -> f) ps
    let start = flat ps

    for _ in 1..4 do
        opt.Step f |> ignore

    Assert.That(flat opt.Parameters, equalTo start)
    opt.Step f |> ignore
    Assert.That(flat opt.Parameters, Is.Not.EqualTo(start))

[<Test>]
let ``remove_negative zeroes negative rates and the damping scales the group rates`` () =
    // a concave direction for the second subset makes its Newton rate negative
    let ps = Parameters.ofSeq [ "a", Tensor.scalar 1.0; "b", Tensor.scalar 0.5 ]
    let f (p: Parameters) = let a, b = p.["a"], p.["b"] in a * a - 0.25 * b * b + 0.1 * a * b

    let mk removeNegative =
        GroupedNewtonOptimizer.create
            { plain with ClipNegativeRates = removeNegative; Damping = 0.5 }
            0.0
            (Partition.canonical ps)
            (fun () -> f)
            ps

    let o1 = mk false
    o1.Step f |> ignore
    Assert.That(snd o1.History.[0].Rates.[1], Is.LessThan 0.0)
    let o2 = mk true
    o2.Step f |> ignore
    Assert.That(snd o2.History.[0].Rates.[1], equalTo 0.0)
    Assert.That(Tensor.toScalar o2.Parameters.["b"], equalTo 0.5)
    assertClose 1e-15 "group lr" (0.5 * snd o2.History.[0].Rates.[0]) (snd o2.History.[0].LearningRates.[0])

[<Test>]
let ``a failed solve reuses the previous rates (uniform average) or uses 0 (NewtonSummary), never NaN`` () =
    let ps = Parameters.ofSeq [ "a", Tensor.scalar 1.0; "b", Tensor.scalar 0.5 ]
    let good (p: Parameters) = let a, b = p.["a"], p.["b"] in a * a + b * b
    let bad (p: Parameters) = good p * nan // a curvature batch whose summaries are not finite
    let which = ref good

    let run variant =
        which.Value <- good

        let opt =
            GroupedNewtonOptimizer.create { plain with Variant = variant } 0.0 (Partition.canonical ps) (fun () -> which.Value) ps

        opt.Step good |> ignore
        let first = opt.Rates
        which.Value <- bad
        opt.Step good |> ignore
        Assert.That(opt.History.[1].Fallback, Is.True)
        Assert.That(Parameters.allFinite opt.Parameters, Is.True)
        first, opt.Rates

    let first, reused = run GroupedNewtonVariant.UniformAverage
    Assert.That(reused, equalTo first)
    let _, zeroed = run GroupedNewtonVariant.NewtonSummary
    Assert.That(zeroed, equalTo [| 0.0; 0.0 |])

[<Test>]
let ``a NaN curvature batch falls back instead of moving the parameters by NaN`` () =
    let ps, f, _, _ = quadratic ()
    let nanLoss (p: Parameters) = f p * nan

    let opt =
        GroupedNewtonOptimizer.create
            { plain with Variant = GroupedNewtonVariant.UniformAverage }
            0.0
            (Partition.canonical ps)
            (fun () -> nanLoss)
            ps

    opt.Step f |> ignore
    Assert.That(opt.History.[0].Fallback, Is.True)
    Assert.That(Parameters.allFinite opt.Parameters, Is.True)

[<Test>]
let ``ReduceDampingOnPlateau halves the damping after two epochs without improvement`` () =
    let ps, f, _, _ = quadratic ()
    let opt = GroupedNewtonOptimizer.create plain 0.0 (Partition.canonical ps) (fun () -> f) ps
    let sched = ReduceDampingOnPlateau(opt)

    for loss in [ 1.0; 0.9; 0.9; 0.9 ] do
        sched.Step loss

    Assert.That(opt.Damping, equalTo [| 1.0; 1.0; 1.0 |])
    sched.Step 0.9
    Assert.That(opt.Damping, equalTo [| 0.5; 0.5; 0.5 |])

let private uniformWindow (samples: float[]) (p: int) =
    samples
    |> Array.mapi (fun k _ ->
        let start = max 0 ((k / p - 1) * p)
        Array.average samples.[start..k])

[<TestCase(1)>]
[<TestCase(3)>]
let ``the uniform average is the mean since the start of the previous period`` (p: int) =
    let samples = Array.init 12 (fun i -> float (i + 1))
    let avg = UniformAverager(p)
    let got = samples |> Array.map (fun v -> (avg.Add [| v |]).[0])
    assertAllClose 1e-14 "window means" (uniformWindow samples p) got

    if p = 1 then
        assertAllClose 1e-14 "p = 1" [| 1.0; 1.5; 2.5; 3.5; 4.5 |] got.[0..4]

[<Test>]
let ``state saved mid-run resumes to the same trajectory`` () =
    let ps, f, _, _ = quadratic ()

    let options = {
        GroupedNewtonOptions.Defaults with
            Cubic = true
            CurvaturePeriod = 2
            Variant = GroupedNewtonVariant.UniformAverage
            AveragePeriod = 2
    }

    let a = GroupedNewtonOptimizer.create options 0.9 (Partition.canonical ps) (fun () -> f) ps

    for _ in 1..3 do
        a.Step f |> ignore

    let path = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "gn-%s.state" (Guid.NewGuid().ToString("N")))

    try
        a.SaveState path
        let b = GroupedNewtonOptimizer.create options 0.9 (Partition.canonical ps) (fun () -> f) ps
        b.SetParameters a.Parameters
        b.LoadState path
        // only curvature-free steps follow until the next update: the averaging windows do not matter
        a.Step f |> ignore
        b.Step f |> ignore
        Assert.That(flat b.Parameters, equalTo (flat a.Parameters))
    finally
        if IO.File.Exists path then
            IO.File.Delete path

[<Test>]
let ``options are validated by name`` () =
    let ps, f, _, _ = quadratic ()

    let e =
        Assert.Throws<ArgumentException>(fun () ->
            GroupedNewtonOptimizer.create { plain with CurvaturePeriod = 0 } 0.0 (Partition.canonical ps) (fun () -> f) ps
            |> ignore)

    Assert.That(e.Message, Does.Contain "CurvaturePeriod")

    let e2 =
        Assert.Throws<ArgumentException>(fun () ->
            GroupedNewtonOptimizer.create { plain with Damping = -1.0 } 0.0 (Partition.canonical ps) (fun () -> f) ps
            |> ignore)

    Assert.That(e2.Message, Does.Contain "Damping")

[<Test>]
let ``with one subset per scalar (S = P) and u = g the step is the plain Newton step`` () =
    let ps = Parameters.ofSeq [ "x", Tensor.scalar 0.7; "y", Tensor.scalar -0.4; "z", Tensor.scalar 1.1 ]
    let a = array2D [ [ 3.0; 0.5; 0.2 ]; [ 0.5; 2.0; -0.3 ]; [ 0.2; -0.3; 1.5 ] ]
    let b = [| 0.3; -0.2; 0.5 |]

    let f (p: Parameters) =
        let v = [| p.["x"]; p.["y"]; p.["z"] |]
        let mutable acc = Tensor.scalar 0.0

        for i in 0..2 do
            acc <- acc - b.[i] * v.[i]

            for j in 0..2 do
                acc <- acc + 0.5 * a.[i, j] * v.[i] * v.[j]

        acc

    let th = [| 0.7; -0.4; 1.1 |]
    let g = Array.init 3 (fun i -> Array.sum (Array.init 3 (fun j -> a.[i, j] * th.[j])) - b.[i])
    let newton = gauss a g
    let opt = GroupedNewtonOptimizer.create plain 0.0 (Partition.canonical ps) (fun () -> f) ps
    opt.Step f |> ignore
    assertAllClose 1e-12 "θ − H⁻¹g" (Array.map2 (-) th newton) (flat opt.Parameters)
