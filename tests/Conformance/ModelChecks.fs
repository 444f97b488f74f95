/// Whole-model checks on a backend: a GroupedNewton summary of a small MLP against finite
/// differences of the restricted loss, and two GroupedNewton steps against the managed
/// backend's run.
module GroupedNewton.Conformance.ModelChecks

open System
open GroupedNewton
open GroupedNewton.Conformance.Check

/// A small float64 MLP classification loss on the default backend.
let mlpProblem () =
    let model = Models.mlp [ 6; 8; 5; 3 ] Activation.Tanh { Init.reference 3 with Dtype = Dtype.Float64 }
    let x = Tensor.randn 4 [| 10; 6 |]
    let labels = Tensor.ofInts (Array.init 10 (fun i -> (i * 7) % 3))
    let loss (p: Parameters) = Losses.crossEntropy (model.Forward(p, x)) labels
    let ps = model.Parameters
    let u = ps.WithValues(ps.Values |> Array.mapi (fun i v -> Tensor.randnOf v.Dtype (40 + i) v.Shape))
    model, ps, u, loss

let flat (ps: Parameters) = ps.Values |> Array.collect Tensor.toArray

/// On `backend`: ḡ, H̄ and the diagonal of D̄ of the MLP's summary (canonical partition)
/// against central differences of φ(η) = L(θ − Σ η_s u_s).
let summaryMatchesFiniteDifferences (backend: Backend) =
    withDefault backend (fun () ->
        let _, ps, u, loss = mlpProblem ()

        ensure
            (Object.ReferenceEquals(ps.Values.[0].Backend, backend))
            (sprintf "the parameters live on %s, not on %s" ps.Values.[0].Backend.Name backend.Name)

        let partition = Partition.canonical ps
        let s = Summary.compute loss ps partition u
        let S = partition.Count
        let name = backend.Name

        let phi (eta: float[]) =
            Tensor.toScalar (loss (ps.WithValues(Array.init S (fun i -> ps.Values.[i] - eta.[i] * u.Values.[i]))))

        let e (pairs: (int * float) list) =
            let a = Array.zeroCreate S

            for i, v in pairs do
                a.[i] <- a.[i] + v

            a

        for i in 0 .. S - 1 do
            let h = 1e-4
            let g = -(phi (e [ i, h ]) - phi (e [ i, -h ])) / (2.0 * h)
            close 1e-6 (sprintf "%s: gradient %d" name i) g s.Gradient.[i]
            let h3 = 1e-3

            let d3 =
                -(phi (e [ i, 2.0 * h3 ]) - 2.0 * phi (e [ i, h3 ]) + 2.0 * phi (e [ i, -h3 ])
                  - phi (e [ i, -2.0 * h3 ]))
                / (2.0 * h3 ** 3.0)

            close 2e-3 (sprintf "%s: third diagonal %d" name i) d3 s.ThirdDiagonal.[i]

            for j in 0 .. S - 1 do
                let h2 = 1e-4

                let hij =
                    (phi (e [ i, h2; j, h2 ]) - phi (e [ i, h2; j, -h2 ]) - phi (e [ i, -h2; j, h2 ])
                     + phi (e [ i, -h2; j, -h2 ]))
                    / (4.0 * h2 * h2)

                close 1e-5 (sprintf "%s: Hessian %d,%d" name i j) hij s.Hessian.[i, j])

/// Two cubic GroupedNewton steps on the MLP: losses, per-subset learning rates and the
/// parameters after them equal the managed backend's run.
let groupedNewtonStepsMatchManaged (managed: Backend) (backend: Backend) =
    let run (b: Backend) =
        withDefault b (fun () ->
            let _, ps, _, loss = mlpProblem ()
            let options = { GroupedNewtonOptions.Defaults with Cubic = true }
            let opt = GroupedNewtonOptimizer.create options 0.9 (Partition.canonical ps) (fun () -> loss) ps
            let l1 = opt.Step loss
            let l2 = opt.Step loss
            ensure (Object.ReferenceEquals(opt.Parameters.Values.[0].Backend, b)) (sprintf "the parameters left %s" b.Name)
            [| l1; l2 |], flat opt.Parameters, opt.History |> Array.collect (fun h -> Array.map snd h.LearningRates))

    let lossM, thetaM, ratesM = run managed
    let lossT, thetaT, ratesT = run backend
    ensure (ratesM.Length > 0) "the steps computed no learning rates"
    allClose 1e-10 "losses" lossM lossT
    allClose 1e-9 "per-subset learning rates" ratesM ratesT
    allClose 1e-10 "parameters after two steps" thetaM thetaT
