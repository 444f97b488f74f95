/// Laws of the cubic-regularisation solver on random instances (docs/derivatives.md, "The solver").
module GroupedNewton.PropertyTests.SolverLaws

open System
open FsCheck
open FsCheck.FSharp
open Expecto
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

/// A random instance: H = BBᵀ − shift·I (indefinite for a large shift), g, d > 0, λ.
type Instance = {
    H: float[,]
    G: float[]
    D: float[]
    Lambda: float
} with

    override i.ToString() = sprintf "H = %A, g = %A, d = %A, λ = %g" i.H i.G i.D i.Lambda

type InstanceGenerators =
    static member Instance() : Arbitrary<Instance> =
        let gen =
            gen {
                let! n = Gen.choose (1, 6)
                let! seed = Gen.choose (0, 100000)
                let! shift = Gen.elements [ -0.5; 0.0; 0.2; 1.0 ]
                let! lambda = Gen.elements [ 0.1; 1.0; 10.0 ]
                let rng = Random seed
                let b = Array2D.init n n (fun _ _ -> rng.NextDouble() - 0.5)

                let h =
                    Array2D.init n n (fun i j -> Array.sum (Array.init n (fun k -> b.[i, k] * b.[j, k])) - (if i = j then shift else 0.0))

                return {
                    H = h
                    G = Array.init n (fun _ -> rng.NextDouble() * 2.0 - 1.0)
                    D = Array.init n (fun _ -> 0.1 + rng.NextDouble())
                    Lambda = lambda
                }
            }

        Arb.fromGen gen

let private m (i: Instance) (r: float) =
    let n = i.G.Length
    Array2D.init n n (fun a b -> i.H.[a, b] + (if a = b then 0.5 * i.Lambda * r * i.D.[a] * i.D.[a] else 0.0))

/// Stationarity M(r)η = ḡ (residual below 1e-8 of ‖ḡ‖ + 1: float64 root finding) with
/// M(r) ⪰ 0 (smallest eigenvalue above −1e-8 of its scale) and r = ‖Dη‖.
let ``the solution is stationary, M(r) is positive semidefinite and r = ‖Dη‖`` =
    Run.property
        "the solution is stationary, M(r) is positive semidefinite and r = ‖Dη‖"
        200
        [ typeof<InstanceGenerators> ]
        (fun (i: Instance) ->
            let s = CubicRegularization.solve i.H i.G i.D i.Lambda

            s.Converged
            && (let mr = m i s.Radius
                let res = DenseAlgebra.norm (Array.map2 (-) (DenseAlgebra.matVec mr s.Eta) i.G)
                let scale = 1.0 + (Seq.cast<float> mr |> Seq.map abs |> Seq.max)

                res <= 1e-8 * (1.0 + DenseAlgebra.norm i.G)
                && DenseAlgebra.minEigenvalue mr >= -1e-8 * scale
                && abs (sqrt (Array.fold2 (fun acc d e -> acc + d * d * e * e) 0.0 i.D s.Eta) - s.Radius)
                   <= 1e-9 * (1.0 + s.Radius)))

/// solve(AHA, Ag, A·d) = solve(H, g, d)/A with r unchanged, for A = diag(a²), a from
/// 10⁻² to 10² (tolerance 1e-7: both solves run at the same canonical scale).
let ``scale equivariance`` =
    Run.property "scale equivariance" 200 [ typeof<InstanceGenerators> ] (fun (i: Instance) ->
        let n = i.G.Length
        let rng = Random(n * 7919 + int (i.G.[0] * 1e6))

        let a =
            Array.init n (fun _ -> let l = rng.NextDouble() * 4.0 - 2.0 in 10.0 ** l)
            |> Array.map (fun v -> v * v)

        let s = CubicRegularization.solve i.H i.G i.D i.Lambda

        let st =
            CubicRegularization.solve
                (Array2D.init n n (fun p q -> a.[p] * i.H.[p, q] * a.[q]))
                (Array.map2 (*) a i.G)
                (Array.map2 (*) a i.D)
                i.Lambda

        let close (x: float) (y: float) = abs (x - y) <= 1e-7 * max 1.0 (abs y)

        s.Converged
        && st.Converged
        && close st.Radius s.Radius
        && Array.forall2 close (Array.map2 (*) a st.Eta) s.Eta)

/// As λ → 0 the step tends to H⁻¹g for SPD H (λ = 1e-9, tolerance 1e-6).
let ``a vanishing cubic weight recovers the Newton step for SPD H`` =
    Run.property "a vanishing cubic weight recovers the Newton step for SPD H" 100 [ typeof<InstanceGenerators> ] (fun (i: Instance) ->
        let n = i.G.Length
        let h = Array2D.init n n (fun a b -> i.H.[a, b] + (if a = b then 2.0 else 0.0)) // shift to SPD, smallest eigenvalue ≥ 1
        let s = CubicRegularization.solve h i.G i.D 1e-9
        let newton = (DenseAlgebra.tryCholeskySolve h i.G).Value
        s.Converged && Array.forall2 (fun x y -> abs (x - y) <= 1e-6 * max 1.0 (abs y)) s.Eta newton)

/// Rescaling u per subset (u_s → c_s u_s) rescales ḡ by c, H̄ by cc, d by |c|: the
/// step c_s η̃_s u_s equals η_s u_s (tolerance 1e-7).
let ``the step does not depend on per-subset rescaling of u`` =
    Run.property "the step does not depend on per-subset rescaling of u" 200 [ typeof<InstanceGenerators> ] (fun (i: Instance) ->
        let n = i.G.Length
        let c = Array.init n (fun k -> (if k % 2 = 0 then 1.0 else -1.0) * (0.01 + float ((k * 37) % 97)))
        let s = CubicRegularization.solve i.H i.G i.D i.Lambda

        let st =
            CubicRegularization.solve
                (Array2D.init n n (fun p q -> c.[p] * i.H.[p, q] * c.[q]))
                (Array.map2 (*) c i.G)
                (Array.map2 (fun x d -> abs x * d) c i.D)
                i.Lambda

        s.Converged
        && st.Converged
        && Array.forall2 (fun x y -> abs (x - y) <= 1e-7 * max 1.0 (abs y)) (Array.map2 (*) c st.Eta) s.Eta)

[<Tests>]
let tests =
    testList "SolverLaws" [
        ``the solution is stationary, M(r) is positive semidefinite and r = ‖Dη‖``
        ``scale equivariance``
        ``a vanishing cubic weight recovers the Newton step for SPD H``
        ``the step does not depend on per-subset rescaling of u``
    ]
