/// Laws of the derivatives according to a partition (docs/derivatives.md, "Laws") on random small MLPs
/// and directions: symmetry, homogeneity, coarsening, independence from the order of the
/// subsets, and invariance under per-subset orthogonal maps.
module GroupedNewton.PropertyTests.SummaryLaws

open System
open FsCheck
open FsCheck.FSharp
open Expecto
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

/// A random problem: MLP hidden widths, activation, seed.
type Net = { Hidden: int list; Activation: Activation; Seed: int }

type NetGenerators =
    static member Net() : Arbitrary<Net> =
        let gen =
            gen {
                let! depth = Gen.choose (0, 2)
                let! hidden = Gen.listOfLength depth (Gen.choose (2, 4))
                let! act = Gen.elements [ Activation.Tanh; Activation.Elu; Activation.Softplus ]
                let! seed = Gen.choose (0, 10000)
                return { Hidden = hidden; Activation = act; Seed = seed }
            }

        Arb.fromGenShrink (
            gen,
            fun n ->
                seq {
                    if not n.Hidden.IsEmpty then
                        yield { n with Hidden = List.tail n.Hidden }
                }
        )

let private problem (n: Net) =
    let model =
        Models.mlpOn [| 3 |] ([ 3 ] @ n.Hidden @ [ 2 ]) n.Activation {
            Scheme = InitScheme.ScaledNormal(1.0, 0.5)
            Dtype = Dtype.Float64
            Seed = n.Seed
        }

    let rng = Random n.Seed
    let x = Tensor.ofArrayShape (Array.init 18 (fun _ -> rng.NextDouble() * 2.0 - 1.0)) [| 6; 3 |]
    let y = Tensor.ofInts (Array.init 6 (fun _ -> rng.Next 2))
    let loss (ps: Parameters) = Tensor.crossEntropy (model.Forward(ps, x)) y
    let ps = model.Parameters

    let u =
        ps.WithValues(
            ps.Values
            |> Array.map (fun v -> Tensor.ofArrayShape (Array.init v.Numel (fun _ -> rng.NextDouble() - 0.5)) v.Shape)
        )

    loss, ps, u

let private close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))
let private allClose tol (a: float seq) (b: float seq) = Seq.forall2 (close tol) a b
let private cells (h: float[,]) = Seq.cast<float> h |> Array.ofSeq

/// H̄ is filled from one triangle: exactly symmetric. The full third-order tensor agrees
/// under all permutations to 1e-10 (its entries come from different nestings).
let ``H̄ is exactly symmetric and the full D̄ is symmetric under permutations`` =
    Run.property "H̄ is exactly symmetric and the full D̄ is symmetric under permutations" 15 [ typeof<NetGenerators> ] (fun (n: Net) ->
        let loss, ps, u = problem n
        let part = Partition.perLayer ps
        let s = Summary.compute loss ps part u
        let S = part.Count
        let full = Summary.tensor 3 loss ps part u
        let at i j k = full.[(i * S + j) * S + k]

        Seq.forall
            (fun (i, j) -> s.Hessian.[i, j] = s.Hessian.[j, i])
            (seq {
                for i in 0 .. S - 1 do
                    for j in 0 .. S - 1 -> i, j
            })
        && Seq.forall
            (fun (i, j, k) -> close 1e-10 (at i j k) (at j k i) && close 1e-10 (at i j k) (at k j i))
            (seq {
                for i in 0 .. S - 1 do
                    for j in 0 .. S - 1 do
                        for k in 0 .. S - 1 -> i, j, k
            }))

/// Orders 1, 2, 3 scale by c, c², c³ (tolerance 1e-10: rounding only).
let ``the summaries are homogeneous in u`` =
    Run.property "the summaries are homogeneous in u" 20 [ typeof<NetGenerators> ] (fun (n: Net) ->
        let loss, ps, u = problem n
        let c = -1.7 + 0.37 * float (n.Seed % 9)
        let part = Partition.canonical ps
        let s = Summary.compute loss ps part u
        let sc = Summary.compute loss ps part (Parameters.map (fun v -> c * v) u)

        allClose 1e-10 (s.Gradient |> Array.map (fun v -> c * v)) sc.Gradient
        && allClose 1e-10 (cells s.Hessian |> Array.map (fun v -> c * c * v)) (cells sc.Hessian)
        && allClose 1e-10 (s.ThirdDiagonal |> Array.map (fun v -> c * c * c * v)) sc.ThirdDiagonal)

/// Merging subsets sums their blocks; the trivial partition gives DᵈL[u, …, u]
/// (tolerance 1e-10: sums of differently nested computations).
let ``coarsening sums blocks`` =
    Run.property "coarsening sums blocks" 15 [ typeof<NetGenerators> ] (fun (n: Net) ->
        let loss, ps, u = problem n
        let canon = Summary.compute loss ps (Partition.canonical ps) u
        let layers = Summary.compute loss ps (Partition.perLayer ps) u
        let triv = Summary.compute loss ps (Partition.trivial ps) u
        let third = Summary.tensor 3 loss ps (Partition.canonical ps) u |> Array.sum
        // canonical tensors come in (weight, bias) pairs, one pair per layer
        let L = layers.Gradient.Length
        let merged = Array.init L (fun l -> canon.Gradient.[2 * l] + canon.Gradient.[2 * l + 1])

        let mergedH =
            Array2D.init L L (fun a b ->
                Seq.sum (
                    seq {
                        for i in 2 * a .. 2 * a + 1 do
                            for j in 2 * b .. 2 * b + 1 -> canon.Hessian.[i, j]
                    }
                ))

        allClose 1e-10 merged layers.Gradient
        && allClose 1e-10 (cells mergedH) (cells layers.Hessian)
        && close 1e-10 (Array.sum canon.Gradient) triv.Gradient.[0]
        && close 1e-10 (cells canon.Hessian |> Array.sum) triv.Hessian.[0, 0]
        && close 1e-9 third triv.ThirdDiagonal.[0])

/// Listing the subsets in another order permutes the results (tolerance 1e-12).
let ``the order in which subsets are listed does not matter`` =
    Run.property "the order in which subsets are listed does not matter" 15 [ typeof<NetGenerators> ] (fun (n: Net) ->
        let loss, ps, u = problem n
        let names = ps.Names
        let rng = Random n.Seed
        let perm = Array.init names.Length id |> Array.sortBy (fun _ -> rng.Next())
        let a = Summary.compute loss ps (Partition.byNames ps [ for nm in names -> nm, [ nm ] ]) u
        let b = Summary.compute loss ps (Partition.byNames ps [ for i in perm -> names.[i], [ names.[i] ] ]) u
        // b's subset k is a's subset perm.[k]
        Seq.forall
            (fun k ->
                close 1e-12 a.Gradient.[perm.[k]] b.Gradient.[k]
                && close 1e-12 a.ThirdDiagonal.[perm.[k]] b.ThirdDiagonal.[k])
            (seq { 0 .. perm.Length - 1 })
        && Seq.forall
            (fun (k, l) -> close 1e-12 a.Hessian.[perm.[k], perm.[l]] b.Hessian.[k, l])
            (seq {
                for k in 0 .. perm.Length - 1 do
                    for l in 0 .. perm.Length - 1 -> k, l
            }))

/// A random orthogonal matrix (product of Householder reflections) of size m.
let private orthogonal (rng: Random) (m: int) =
    let q = Array2D.init m m (fun i j -> if i = j then 1.0 else 0.0)

    for _ in 1..m do
        let v = Array.init m (fun _ -> rng.NextDouble() - 0.5)
        let nv = v |> Array.sumBy (fun x -> x * x)

        if nv > 1e-12 then
            // q ← q (I − 2vvᵀ/vᵀv)
            for i in 0 .. m - 1 do
                let qv = Array.fold2 (fun acc a b -> acc + a * b) 0.0 (Array.init m (fun j -> q.[i, j])) v

                for j in 0 .. m - 1 do
                    q.[i, j] <- q.[i, j] - 2.0 * qv * v.[j] / nv

    q

/// θ_s = Q_s θ̃_s with Q_s orthogonal per tensor leaves ḡ, H̄, D̄ and hence η unchanged.
/// Tolerance 1e-9 on the summaries (the maps add rounding to every parameter). The solve
/// amplifies the summaries' measured normwise difference δ by up to the condition number κ of M(r):
/// η agrees normwise to 1e-5 + 1e3·κ·δ (off the boundary, where η is not unique to rounding).
let ``per-subset orthogonal maps leave the summaries and the rates unchanged`` =
    Run.property "per-subset orthogonal maps leave the summaries and the rates unchanged" 15 [ typeof<NetGenerators> ] (fun (n: Net) ->
        let loss, ps, u = problem n
        let rng = Random(n.Seed + 1)
        let qs = ps.Values |> Array.map (fun v -> Tensor.ofArray2D (orthogonal rng v.Numel))
        let apply (q: Tensor) (v: Tensor) = Tensor.matmul q (Tensor.view [| -1; 1 |] v) |> Tensor.view v.Shape
        let applyT (q: Tensor) (v: Tensor) = Tensor.matmulT true false q (Tensor.view [| -1; 1 |] v) |> Tensor.view v.Shape
        let tilde = Parameters.ofSeq (Array.init ps.Count (fun i -> ps.Names.[i], applyT qs.[i] ps.Values.[i]))
        let tildeLoss (t: Parameters) = loss (ps.WithValues(Array.init ps.Count (fun i -> apply qs.[i] t.Values.[i])))
        let ut = tilde.WithValues(Array.init ps.Count (fun i -> applyT qs.[i] u.Values.[i]))
        let part, partT = Partition.canonical ps, Partition.canonical tilde
        let s = Summary.compute loss ps part u
        let st = Summary.compute tildeLoss tilde partT ut
        let d (x: PartitionSummary) = x.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))
        let e1 = CubicRegularization.solve s.Hessian s.Gradient (d s) 1.0
        let e2 = CubicRegularization.solve st.Hessian st.Gradient (d st) 1.0

        // normwise relative differences of the three summaries
        let relative (a: float[]) (b: float[]) = DenseAlgebra.norm (Array.map2 (-) a b) / max 1e-300 (DenseAlgebra.norm a)

        let delta =
            List.max [
                1e-16
                relative s.Gradient st.Gradient
                relative (cells s.Hessian) (cells st.Hessian)
                relative s.ThirdDiagonal st.ThirdDiagonal
            ]

        let kappa =
            if not e1.Converged then
                infinity
            else
                let ds = d s

                let mr =
                    Array2D.init ds.Length ds.Length (fun a b ->
                        s.Hessian.[a, b] + (if a = b then 0.5 * e1.Radius * ds.[a] * ds.[a] else 0.0))

                let w, _ = DenseAlgebra.symmetricEigen mr
                abs w.[w.Length - 1] / max (abs w.[0]) 1e-300

        let etaTolerance = 1e-5 + 1e3 * kappa * delta

        let checks = [
            "ḡ", allClose 1e-9 s.Gradient st.Gradient
            "H̄", allClose 1e-9 (cells s.Hessian) (cells st.Hessian)
            "D̄", allClose 1e-9 s.ThirdDiagonal st.ThirdDiagonal
            "η",
            (not e1.Converged
             || e1.Path = SolverPath.HardCase
             || (e2.Converged
                 && DenseAlgebra.norm (Array.map2 (-) e1.Eta e2.Eta)
                    <= etaTolerance * max 1.0 (DenseAlgebra.norm e1.Eta)))
        ]

        for name, ok in checks do
            if not ok then
                printfn "orthogonal maps: %s differs for %A (η %A vs %A, %A; κ = %g, δ = %g)" name n e1.Eta e2.Eta e1.Path kappa delta

        checks |> List.forall snd)

[<Tests>]
let tests =
    testList "SummaryLaws" [
        ``H̄ is exactly symmetric and the full D̄ is symmetric under permutations``
        ``the summaries are homogeneous in u``
        ``coarsening sums blocks``
        ``the order in which subsets are listed does not matter``
        ``per-subset orthogonal maps leave the summaries and the rates unchanged``
    ]
