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

    model, loss, a, b

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
    let model, loss, a, b = build s
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
    let mutable outcome = (true, true)
    let mutable k = 0

    while k < steps && outcome = (true, true) do
        outcome <- (tryStep o1 loss, tryStep o2 tildeLoss)

        if outcome = (true, true) then
            pairs.Add((flat o1.Parameters, flat (toTheta model a b o2.Parameters)))

        k <- k + 1

    List.ofSeq pairs, o1, outcome

let private trajectories s makeOpt steps = let p, _, _ = run s makeOpt steps in p

/// True when no curvature update was ill-conditioned: every rate below 1e6 and no
/// boundary (hard-case) solution, where two minimisers tie.
let private wellConditioned (o: Optimizer) =
    match o with
    | :? GroupedNewtonOptimizer as g ->
        g.History
        |> Array.forall (fun h ->
            h.Rates |> Array.forall (fun (_, r) -> abs r < 1e6)
            && (match h.Solution with
                | Some sol -> sol.Path <> SolverPath.HardCase
                | None -> true))
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
/// one) or that run away (a parameter beyond 10³: large steps amplify rounding without
/// bound) do not test the claim and are accepted as such: a few percent of the cases.
/// One case of the invariance claim (see above for the tolerance and the accepted cases).
let private invariantOn (s: Setup) =
    let pairs, o1, (ran1, ran2) = run s (groupedNewton s) 6

    let ok =
        if ran1 <> ran2 then
            false // only one of the two runs diverged
        elif
            not ran1
            || not (wellConditioned o1)
            || pairs |> List.exists (fun (x, _) -> x |> Array.exists (fun v -> abs v > 1e3))
        then
            true
        else
            pairs |> List.forall (fun (x, y) -> close 1e-4 x y)

    if not ok then
        let worst =
            pairs |> List.map (fun (x, y) -> Array.map2 (fun p q -> abs (p - q)) x y |> Array.max) |> List.max

        printfn "not invariant: %O; largest difference %g" s worst

    ok

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

/// Tolerance 1e-9 (1e-8 for D̄): one summary each, no solver, so only the rounding of the
/// reparameterised forward pass separates the two sides.
let ``one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶`` =
    Run.property "one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶" 60 [ typeof<Generators> ] (fun (s: Setup) ->
        let model, loss, a, b = build s
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

let ``invariance breaks for plain SGD at a fixed learning rate`` () =
    let s = {
        Hidden = [ 3 ]
        Activation = Activation.Tanh
        LogScales = [ 0.7; -0.5; 0.3; 1.0 ]
        Signs = [ true; true; false; true ]
        Cubic = false
        UniformAverage = false
        Conv = false
        Seed = 4
    }

    let sgd (ps: Parameters) (_: Parameters -> Tensor) =
        Sgd.create { SgdOptions.Defaults with LearningRate = 0.01; Momentum = 0.9 } ps :> Optimizer

    Expect.isTrue (differs (trajectories s sgd 6)) "SGD at a fixed rate should not be invariant"

/// Adam's direction m̂/(√v̂ + ε) is a per-subset multiple (sign a_s) of the gradient's
/// apart from ε, and GroupedNewton's step ignores per-subset scalars of u: the break comes
/// through ε, visible once ε is comparable to √v̂.
let ``invariance breaks with an Adam direction`` () =
    let s = {
        Hidden = [ 3 ]
        Activation = Activation.Tanh
        LogScales = [ 0.7; -0.5; 0.3; 1.0 ]
        Signs = [ true; true; false; true ]
        Cubic = true
        UniformAverage = false
        Conv = false
        Seed = 4
    }

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
    let s = {
        Hidden = [ 3 ]
        Activation = Activation.Tanh
        LogScales = [ 0.7; -0.5; 0.3; 1.0 ]
        Signs = [ true; true; false; true ]
        Cubic = true
        UniformAverage = false
        Conv = false
        Seed = 4
    }

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

[<Tests>]
let tests =
    testList "Invariance" [
        ``GroupedNewton's trajectory is invariant under per-tensor affine reparameterisation``
        ``invariance holds on the recorded non-finite summary case``
        ``one-step identities: ḡ scales by a², H̄ by a²a², D̄ by a⁶``
        testCase "invariance breaks for plain SGD at a fixed learning rate" ``invariance breaks for plain SGD at a fixed learning rate``
        testCase "invariance breaks with an Adam direction" ``invariance breaks with an Adam direction``
        testCase
            "invariance breaks when two tensors of one subset get different scales"
            ``invariance breaks when two tensors of one subset get different scales``
    ]
