/// The paper's invariance claim: training θ̃ = (θ − b)/a per subset with the same
/// algorithm and mapping back reproduces the θ trajectory; and where it must break.
module GroupedNewton.PropertyTests.Invariance

open System
open FsCheck
open FsCheck.FSharp
open Expecto
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

/// A small problem: an MLP of the given hidden widths and activation on a fixed batch, a
/// per-tensor scale and offset, and the optimizer's switches.
type Setup = {
    Hidden: int list
    Activation: Activation
    /// log10 of |a| per tensor, in [-2, 2], and its sign
    LogScales: float list
    Signs: bool list
    Cubic: bool
    UniformAverage: bool
    /// A small CNN (conv 1→2, 3×3, padding 1; max-pool 2; linear 8→2) instead of the MLP.
    Conv: bool
    Seed: int
} with

    override s.ToString() =
        sprintf
            "%s, %A, scales %A, cubic %b, uniform average %b, seed %d"
            (if s.Conv then "cnn" else sprintf "mlp hidden %A" s.Hidden)
            s.Activation
            (List.map2 (fun l p -> (if p then 1.0 else -1.0) * 10.0 ** l) s.LogScales s.Signs)
            s.Cubic
            s.UniformAverage
            s.Seed

let private tensorsOf (hidden: int list) = 2 * (hidden.Length + 1)
let private tensorsOfSetup (conv: bool) (hidden: int list) = if conv then 4 else tensorsOf hidden

type Generators =
    static member Setup() : Arbitrary<Setup> =
        let gen =
            gen {
                let! conv = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
                let! depth = Gen.choose (0, 2)
                let! hidden = Gen.listOfLength depth (Gen.choose (2, 4))
                let! act = Gen.elements [ Activation.Tanh; Activation.Relu; Activation.Elu ]
                let n = tensorsOfSetup conv hidden
                let! logs = Gen.listOfLength n (Gen.choose (-20, 20) |> Gen.map (fun k -> float k / 10.0))
                let! signs = Gen.listOfLength n (Gen.elements [ true; false ])
                let! cubic = Gen.elements [ true; false ]
                let! avg = Gen.elements [ true; false ]
                let! seed = Gen.choose (0, 10000)

                return {
                    Hidden = hidden
                    Activation = act
                    LogScales = logs
                    Signs = signs
                    Cubic = cubic
                    UniformAverage = avg
                    Conv = conv
                    Seed = seed
                }
            }
        // shrink towards shallower nets and unit scales
        let shrink (s: Setup) =
            seq {
                if not s.Conv && not s.Hidden.IsEmpty then
                    let h = List.tail s.Hidden
                    let n = tensorsOf h
                    yield { s with Hidden = h; LogScales = List.truncate n s.LogScales; Signs = List.truncate n s.Signs }

                if s.LogScales |> List.exists ((<>) 0.0) then
                    yield { s with LogScales = s.LogScales |> List.map (fun l -> Math.Round(l / 2.0, 1)) }
            }

        Arb.fromGenShrink (gen, shrink)

let private build (s: Setup) =
    let init = { Scheme = InitScheme.ScaledNormal(1.0, 0.5); Dtype = Dtype.Float64; Seed = s.Seed }

    let model, inputShape =
        if s.Conv then
            Model.sequential "cnn" [| 1; 4; 4 |] init [
                LayerSpec.Conv2d(1, 2, 3, 1, 1, true)
                LayerSpec.Act s.Activation
                LayerSpec.MaxPool2d(2, 2, 0)
                LayerSpec.Flatten
                LayerSpec.Linear(8, 2, true)
            ],
            [| 1; 4; 4 |]
        else
            Models.mlpOn [| 3 |] ([ 3 ] @ s.Hidden @ [ 2 ]) s.Activation init, [| 3 |]

    let rng = Random s.Seed

    let x =
        Tensor.ofArrayShape
            (Array.init (8 * Shape.numel inputShape) (fun _ -> rng.NextDouble() * 2.0 - 1.0))
            (Array.append [| 8 |] inputShape)

    let y = Tensor.ofArrayShape (Array.init 16 (fun _ -> rng.NextDouble() * 2.0 - 1.0)) [| 8; 2 |]
    let loss (ps: Parameters) = Tensor.mse (model.Forward(ps, x)) y
    let a = List.map2 (fun l p -> (if p then 1.0 else -1.0) * 10.0 ** l) s.LogScales s.Signs |> Array.ofList

    let b =
        model.Parameters.Values
        |> Array.mapi (fun i v -> Tensor.ofArrayShape (Array.init v.Numel (fun _ -> rng.NextDouble() - 0.5)) v.Shape)

    model, loss, a, b, x

/// Where the model is not smooth, at θ on the batch x: the sign of every input of a ReLU or
/// ELU layer (ReLU's first derivative and ELU's second jump at 0) and the position of the
/// maximum of every max-pool window, each with its distance from the kink (|input|, or the
/// gap between a window's two largest values). Two points with the same pattern lie on the
/// same smooth piece of the loss.
let private kinks (model: Model) (x: Tensor) (ps: Parameters) : (int * float)[] =
    let pattern = ResizeArray<int * float>()
    let mutable h = x

    for l in model.Layers do
        match l.Spec with
        | LayerSpec.Act Activation.Relu
        | LayerSpec.Act Activation.Elu ->
            for v in Tensor.toArray h do
                pattern.Add(sign v, abs v)
        | LayerSpec.MaxPool2d(k, st, p) ->
            let shape = h.Shape
            let n, c, hh, ww = shape.[0], shape.[1], shape.[2], shape.[3]
            let v = Tensor.toArray h
            let oh, ow = (hh + 2 * p - k) / st + 1, (ww + 2 * p - k) / st + 1

            for img in 0 .. n * c - 1 do
                for i in 0 .. oh - 1 do
                    for j in 0 .. ow - 1 do
                        let cells = [|
                            for di in 0 .. k - 1 do
                                for dj in 0 .. k - 1 do
                                    let r, q = i * st - p + di, j * st - p + dj

                                    if r >= 0 && r < hh && q >= 0 && q < ww then
                                        yield di * k + dj, v.[(img * hh + r) * ww + q]
                        |]

                        let sorted = cells |> Array.sortByDescending snd
                        pattern.Add(fst sorted.[0], snd sorted.[0] - snd sorted.[1])
        | _ -> ()

        h <- Layer.forward l ps h

    pattern.ToArray()

let private kinkPattern model x ps = kinks model x ps |> Array.map fst

/// θ = a·θ̃ + b, tensor by tensor.
let private toTheta (model: Model) (a: float[]) (b: Tensor[]) (tilde: Parameters) =
    model.Parameters.WithValues(tilde.Values |> Array.mapi (fun i v -> a.[i] * v + b.[i]))

let private options (s: Setup) = {
    GroupedNewtonOptions.Defaults with
        Cubic = s.Cubic
        Damping = 0.2
        LambdaInt = 1.0
        ClipNegativeRates = true
        Variant = (if s.UniformAverage then GroupedNewtonVariant.UniformAverage else GroupedNewtonVariant.NewtonSummary)
        AveragePeriod = 2
}

let private close (rtol: float) (x: float[]) (y: float[]) =
    let scale = max 1.0 (Array.fold (fun m v -> max m (abs v)) 0.0 y)
    Array.forall2 (fun p q -> abs (p - q) <= rtol * scale) x y

let private flat (ps: Parameters) = ps.Values |> Array.collect Tensor.toArray

/// The θ trajectory of the original run and of the reparameterised run mapped back.
let private run (s: Setup) (makeOpt: Parameters -> (Parameters -> Tensor) -> Optimizer) (steps: int) =
    let model, loss, a, b, x = build s
    let tildeLoss (t: Parameters) = loss (toTheta model a b t)

    let tilde0 =
        Parameters.ofSeq (
            Array.init model.Parameters.Count (fun i -> model.Parameters.Names.[i], (model.Parameters.Values.[i] - b.[i]) / a.[i])
        )

    let o1 = makeOpt model.Parameters loss
    let o2 = makeOpt tilde0 tildeLoss
    // a run that diverges stops with OptimizationException (non-finite loss); the pair
    // records which run stopped
    let tryStep (o: Optimizer) l =
        try
            o.Step l |> ignore
            true
        with :? OptimizationException ->
            false

    let pairs = ResizeArray()
    // every point both runs evaluated the loss at, as parameters (θ and θ̃ mapped back)
    let points = ResizeArray [ model.Parameters, toTheta model a b tilde0 ]
    let mutable outcome = (true, true)
    let mutable k = 0

    while k < steps && outcome = (true, true) do
        outcome <- (tryStep o1 loss, tryStep o2 tildeLoss)

        if outcome = (true, true) then
            let theta2 = toTheta model a b o2.Parameters
            pairs.Add((flat o1.Parameters, flat theta2))
            points.Add((o1.Parameters, theta2))

        k <- k + 1

    let samePieces = points |> Seq.forall (fun (p1, p2) -> kinkPattern model x p1 = kinkPattern model x p2)
    List.ofSeq pairs, (o1, o2), outcome, samePieces

let private trajectories s makeOpt steps = let p, _, _, _ = run s makeOpt steps in p

/// The condition number of H̄ at the solver's canonical scale (unit diagonal), the scale at
/// which the linear solve decides whether H̄ is singular: that decision, and η = H̄⁻¹ḡ, are
/// invariant in exact arithmetic and decided by rounding once the condition nears 1/ε.
let private condition (h: float[,]) =
    let n = Array2D.length1 h
    let e = Array.init n (fun i -> let v = abs h.[i, i] in if v > 0.0 then 1.0 / sqrt v else 1.0)
    let lambdas = fst (DenseAlgebra.symmetricEigen (Array2D.init n n (fun i j -> e.[i] * h.[i, j] * e.[j])))
    let mags = lambdas |> Array.map abs
    if Array.min mags = 0.0 then infinity else Array.max mags / Array.min mags

/// True when no curvature update was ill-conditioned: every rate below 1e6, no boundary
/// (hard-case) solution, where two minimisers tie, and, where the model is quadratic
/// (without the cubic term, or with it but D̄ = 0, as for a ReLU network under a squared
/// loss), H̄ at condition below 1e9 (above, rounding of 1e-16 in the summaries moves η by
/// more than the tolerance, and near 1e14 it decides whether the solve fails as singular or
/// the model as unbounded).
let private wellConditioned (o: Optimizer) =
    match o with
    | :? GroupedNewtonOptimizer as g ->
        g.History
        |> Array.forall (fun h ->
            let conditioned () =
                h.Summary.Hessian |> Seq.cast<float> |> Seq.exists (fun v -> not (Double.IsFinite v))
                || condition h.Summary.Hessian < 1e9

            let quadratic = h.Summary.ThirdDiagonal |> Array.forall (fun v -> v = 0.0)

            h.Rates |> Array.forall (fun (_, r) -> abs r < 1e6)
            && (match h.Solution with
                | Some sol -> sol.Path <> SolverPath.HardCase && (not quadratic || conditioned ())
                | None -> g.Options.Cubic || conditioned ()))
    | _ -> true

let private groupedNewton (s: Setup) (ps: Parameters) (loss: Parameters -> Tensor) =
    GroupedNewtonOptimizer.create (options s) 0.9 (Partition.canonical ps) (fun () -> loss) ps :> Optimizer

/// The claim holds in exact arithmetic. In floating point the two runs solve rescaled
/// problems whose rounding differs by ~1e-16, which the solver amplifies by the condition
/// of the S-dimensional model: nearly every case agrees to 1e-8, and near the boundary
/// r ≈ x0 of the cubic model (η = M(r)⁻¹ḡ with condition ~1/(r − x0)) to ~1e-5. Hence the
/// tolerance 1e-4 relative to the largest parameter; any scale-dependent decision in the
/// method shows up as an O(1) difference. Trajectories through ill-conditioned updates
/// (a rate above 1e6, or a boundary solution, where two minimisers tie and rounding picks
/// one) or that run away (a parameter of either run beyond 10³: large steps amplify rounding
/// without bound, and can end one run in a failed step while the other goes on) do not test the claim and are accepted as such: a few percent of the cases.
/// Nor do trajectories on which the two runs meet a kink of the model (a ReLU or ELU input
/// or a max-pool tie) on different sides: rounding of order 1e-16 puts a preactivation near
/// 0 on one side in one run and on the other in the other, and from there the two runs
/// follow different smooth pieces of the loss. Such cases are discarded (FsCheck's
/// precondition), not counted as passes.
/// One case of the invariance claim (see above for the tolerance and the accepted cases).
let private invariantWith (make: Setup -> Parameters -> (Parameters -> Tensor) -> Optimizer) (steps: int) (s: Setup) =
    let pairs, (o1, o2), (ran1, ran2), samePieces = run s (make s) steps

    // either run beyond 10³ (or not finite): a runaway trajectory, whichever run it is
    let ranAway =
        pairs |> List.exists (fun (x, y) -> Array.append x y |> Array.exists (fun v -> not (abs v <= 1e3)))

    let ok =
        if ranAway then true
        elif ran1 <> ran2 then false // only one of the two runs diverged
        elif not ran1 || not (wellConditioned o1 && wellConditioned o2) then true
        else pairs |> List.forall (fun (x, y) -> close 1e-4 x y)

    if not ok && samePieces then
        let worst =
            pairs |> List.map (fun (x, y) -> Array.map2 (fun p q -> abs (p - q)) x y |> Array.max) |> List.max

        printfn "not invariant: %O; largest difference %g" s worst

    samePieces ==> ok

let private invariantOn = invariantWith groupedNewton 6

/// grouped-newton-auto with a curvature update every other step, so that eight steps take
/// its scales through three adaptations and its confirmations on the curvature batch.
let private autoOptions = { GroupedNewtonOptions.Auto with CurvaturePeriod = 2 }

let private adaptive (_: Setup) (ps: Parameters) (loss: Parameters -> Tensor) =
    GroupedNewtonOptimizer.create autoOptions 0.9 (Partition.canonical ps) (fun () -> loss) ps :> Optimizer

let ``grouped-newton-auto's trajectory is invariant under per-tensor affine reparameterisation`` =
    Run.property
        "grouped-newton-auto's trajectory is invariant under per-tensor affine reparameterisation"
        60
        [ typeof<Generators> ]
        (invariantWith adaptive 8)

let ``GroupedNewton's trajectory is invariant under per-tensor affine reparameterisation`` =
    Run.property "GroupedNewton's trajectory is invariant under per-tensor affine reparameterisation" 80 [ typeof<Generators> ] invariantOn

/// The case a long-mode run found: an Elu CNN whose summary had a -Infinity off the
/// diagonal of H̄; the step must fail as a curvature update, never throw from the solver.
let ``invariance holds on the recorded non-finite summary case`` =
    Run.replayed
        "invariance holds on the recorded non-finite summary case"
        [ typeof<Generators> ]
        (7797351245183942058UL, 17064716794895691189UL, 38)
        invariantOn

/// The case a long-mode run found (a ReLU MLP, no cubic term, a difference of 0.19): see the
/// next test for what it is.
let ``invariance holds on the recorded near-singular ReLU case`` =
    Run.replayed
        "invariance holds on the recorded near-singular ReLU case"
        [ typeof<Generators> ]
        (13596252631048373850UL, 11004094599240308245UL, 38)
        invariantOn

/// What the recorded ReLU case is: not a kink (both runs see the same activation pattern at
/// every point), but an H̄ singular to working precision
/// at the fifth curvature update (condition about 1e14 at the solver's canonical scale): the
/// linear solve refuses it in the original run (a failed update: η = 0) and solves it in the
/// reparameterised one, whose rounding differs by 1e-16. The property accepts the case as
/// ill-conditioned; before that update the runs agree to 1e-14.
let ``the recorded ReLU case is a near-singular H̄, not a kink`` () =
    let s = {
        Hidden = [ 3; 3 ]
        Activation = Activation.Relu
        LogScales = [ 1.3; -1.8; -1.0; 1.7; -1.9; -1.7 ]
        Signs = [ false; true; true; false; true; false ]
        Cubic = false
        UniformAverage = false
        Conv = false
        Seed = 5759
    }

    let pairs, (o1, o2), outcome, samePieces = run s (groupedNewton s) 6
    Expect.equal outcome (true, true) "both runs take six steps"
    Expect.isTrue samePieces "the two runs see the same activation pattern throughout"
    let gaps = pairs |> List.map (fun (a, b) -> Array.map2 (fun p q -> abs (p - q)) a b |> Array.max)
    Expect.isLessThan (List.max gaps.[0..3]) 1e-13 "the runs agree through the fourth update"
    Expect.isGreaterThan gaps.[4] 0.1 "and part at the fifth"
    let h1 = (o1 :?> GroupedNewtonOptimizer).History.[4]
    let h2 = (o2 :?> GroupedNewtonOptimizer).History.[4]
    Expect.isTrue (h1.Fallback && not h2.Fallback) "the original run refuses the fifth update as singular, the other solves it"
    Expect.isGreaterThan (condition h1.Summary.Hessian) 1e13 "H̄ is singular to working precision there"
    Expect.isFalse (wellConditioned o1) "so the property does not count the case"

/// A case a long-mode run found (a ReLU MLP with the cubic term and uniform averaging, a
/// difference of 0.75): under the squared loss a ReLU network has D̄ = 0, so the cubic model
/// is quadratic, and H̄ is singular to working precision (condition 1e16 to 1e33). Whether
/// the model is unbounded (a failed update) or has a Newton minimiser is then decided by
/// rounding: the original run fails the second update, the reparameterised one solves it.
/// The property does not count such cases.
let ``the recorded quadratic-only ReLU case is a singular H̄ with D̄ = 0, not a kink`` () =
    let s = {
        Hidden = [ 2 ]
        Activation = Activation.Relu
        LogScales = [ -0.1; 0.2; -0.2; 0.1 ]
        Signs = [ false; false; false; true ]
        Cubic = true
        UniformAverage = true
        Conv = false
        Seed = 5196
    }

    let pairs, (o1, o2), outcome, samePieces = run s (groupedNewton s) 6
    Expect.equal outcome (true, true) "both runs take six steps"
    Expect.isTrue samePieces "the two runs see the same activation pattern throughout"
    let gaps = pairs |> List.map (fun (a, b) -> Array.map2 (fun p q -> abs (p - q)) a b |> Array.max)
    Expect.isLessThan gaps.[0] 1e-13 "the runs agree after the first update"
    Expect.isGreaterThan gaps.[1] 0.1 "and part at the second"
    let h1 = (o1 :?> GroupedNewtonOptimizer).History.[1]
    let h2 = (o2 :?> GroupedNewtonOptimizer).History.[1]
    Expect.isTrue (h1.Fallback && not h2.Fallback) "the original run finds the model unbounded, the other solves it"
    Expect.isTrue (h1.Summary.ThirdDiagonal |> Array.forall (fun v -> v = 0.0)) "D̄ = 0: the model is quadratic"
    Expect.isGreaterThan (condition h1.Summary.Hessian) 1e13 "H̄ is singular to working precision there"
    Expect.isFalse (wellConditioned o1) "so the property does not count the case"

/// Tolerance 1e-9 (1e-8 for D̄): one summary each, no solver, so only the rounding of the
/// reparameterised forward pass separates the two sides.
let ``one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶`` =
    Run.property "one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶" 60 [ typeof<Generators> ] (fun (s: Setup) ->
        let model, loss, a, b, _ = build s
        let ps = model.Parameters

        let tilde =
            Parameters.ofSeq (Array.init ps.Count (fun i -> ps.Names.[i], (ps.Values.[i] - b.[i]) / a.[i]))

        let tildeLoss (t: Parameters) = loss (toTheta model a b t)
        // u: the gradient, which transforms as ũ = a·u
        let u = ps.WithValues(Ad.gradMany (fun vs -> loss (ps.WithValues vs)) ps.Values)
        let ut = tilde.WithValues(Ad.gradMany (fun vs -> tildeLoss (tilde.WithValues vs)) tilde.Values)
        let s1 = Summary.compute loss ps (Partition.canonical ps) u
        let s2 = Summary.compute tildeLoss tilde (Partition.canonical tilde) ut
        let a2 = a |> Array.map (fun v -> v * v)
        let n = a.Length

        close 1e-9 (Array.map2 (*) a2 s1.Gradient) s2.Gradient
        && close
            1e-9
            (Array.init (n * n) (fun k -> a2.[k / n] * s1.Hessian.[k / n, k % n] * a2.[k % n]))
            (Array.init (n * n) (fun k -> s2.Hessian.[k / n, k % n]))
        && close 1e-8 (Array.init n (fun i -> a2.[i] * a2.[i] * a2.[i] * s1.ThirdDiagonal.[i])) s2.ThirdDiagonal)

let private differs (runs: (float[] * float[]) list) =
    let x, y = List.last runs
    not (close 1e-4 x y)

/// The one-hidden-layer tanh case the tests of where the claim breaks share.
let private breakCase = {
    Hidden = [ 3 ]
    Activation = Activation.Tanh
    LogScales = [ 0.7; -0.5; 0.3; 1.0 ]
    Signs = [ true; true; false; true ]
    Cubic = true
    UniformAverage = false
    Conv = false
    Seed = 4
}

let ``invariance breaks for plain SGD at a fixed learning rate`` () =
    let s = { breakCase with Cubic = false }

    let sgd (ps: Parameters) (_: Parameters -> Tensor) =
        Sgd.create { SgdOptions.Defaults with LearningRate = 0.01; Momentum = 0.9 } ps :> Optimizer

    Expect.isTrue (differs (trajectories s sgd 6)) "SGD at a fixed rate should not be invariant"

/// Adam's direction m̂/(√v̂ + ε) is a per-subset multiple (sign a_s) of the gradient's
/// apart from ε, and GroupedNewton's step ignores per-subset scalars of u: the break comes
/// through ε, visible once ε is comparable to √v̂.
let ``invariance breaks with an Adam direction`` () =
    let s = breakCase

    let adamGn (ps: Parameters) (loss: Parameters -> Tensor) =
        GroupedNewtonOptimizer.createWith
            (options s)
            (AdamRule { AdamOptions.Defaults with LearningRate = 1.0; Epsilon = 0.1 })
            (Partition.canonical ps)
            (fun () -> loss)
            ps
        :> Optimizer

    Expect.isTrue (differs (trajectories s adamGn 6)) "an Adam direction should break invariance"

let ``invariance breaks when two tensors of one subset get different scales`` () =
    let s = breakCase

    let perLayer (ps: Parameters) (loss: Parameters -> Tensor) =
        GroupedNewtonOptimizer.create (options s) 0.9 (Partition.perLayer ps) (fun () -> loss) ps :> Optimizer

    Expect.isTrue (differs (trajectories s perLayer 6)) "two scales inside one subset should break invariance"
    // the control: the same per-layer run with one scale per layer is invariant
    let same = { s with LogScales = [ 0.7; 0.7; 0.3; 0.3 ]; Signs = [ true; true; false; false ] }

    let perLayer2 (ps: Parameters) (loss: Parameters -> Tensor) =
        GroupedNewtonOptimizer.create (options same) 0.9 (Partition.perLayer ps) (fun () -> loss) ps :> Optimizer

    Expect.isTrue
        (trajectories same perLayer2 6 |> List.forall (fun (x, y) -> close 1e-6 x y))
        "one scale per layer keeps the per-layer run invariant"

/// The adaptive variant keeps the claim only where its direction and partition do: an Adam
/// direction (through ε) and two scales inside one subset break it, as for the paper's variants.
let ``invariance breaks for grouped-newton-auto with an Adam direction or two scales in one subset`` () =
    let s = breakCase

    let adam (ps: Parameters) (loss: Parameters -> Tensor) =
        GroupedNewtonOptimizer.createWith
            autoOptions
            (AdamRule { AdamOptions.Defaults with LearningRate = 1.0; Epsilon = 0.1 })
            (Partition.canonical ps)
            (fun () -> loss)
            ps
        :> Optimizer

    let perLayer (ps: Parameters) (loss: Parameters -> Tensor) =
        GroupedNewtonOptimizer.create autoOptions 0.9 (Partition.perLayer ps) (fun () -> loss) ps :> Optimizer

    Expect.isTrue (differs (trajectories s adam 8)) "an Adam direction should break invariance"
    Expect.isTrue (differs (trajectories s perLayer 8)) "two scales inside one subset should break invariance"
    // the control: the canonical partition with the SGD-momentum direction is invariant here
    Expect.isTrue
        (trajectories s (adaptive s) 8 |> List.forall (fun (x, y) -> close 1e-6 x y))
        "the adaptive variant is invariant with one scale per subset"

[<Tests>]
let tests =
    testList "Invariance" [
        ``GroupedNewton's trajectory is invariant under per-tensor affine reparameterisation``
        ``grouped-newton-auto's trajectory is invariant under per-tensor affine reparameterisation``
        ``invariance holds on the recorded non-finite summary case``
        ``invariance holds on the recorded near-singular ReLU case``
        testCase "the recorded ReLU case is a near-singular H̄, not a kink" ``the recorded ReLU case is a near-singular H̄, not a kink``
        testCase
            "the recorded quadratic-only ReLU case is a singular H̄ with D̄ = 0, not a kink"
            ``the recorded quadratic-only ReLU case is a singular H̄ with D̄ = 0, not a kink``
        ``one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶``
        testCase "invariance breaks for plain SGD at a fixed learning rate" ``invariance breaks for plain SGD at a fixed learning rate``
        testCase "invariance breaks with an Adam direction" ``invariance breaks with an Adam direction``
        testCase
            "invariance breaks when two tensors of one subset get different scales"
            ``invariance breaks when two tensors of one subset get different scales``
        testCase
            "invariance breaks for grouped-newton-auto with an Adam direction or two scales in one subset"
            ``invariance breaks for grouped-newton-auto with an Adam direction or two scales in one subset``
    ]
