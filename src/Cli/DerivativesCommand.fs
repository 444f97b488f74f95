/// `derivatives`: the exact derivatives the library is built on, shown on a small tanh
/// MLP with a synthetic batch (no dataset needed): the loss, its gradient, a Hessian-vector
/// product and third-order directional derivatives by several nestings of forward and
/// reverse mode, each next to its finite-difference estimate.
module GroupedNewton.Cli.DerivativesCommand

open System
open System.Diagnostics
open GroupedNewton

let private sizes = [| 20; 16; 8; 4 |]

let private model (x: Tensor) (ps: Tensor[]) =
    let mutable h = x
    let n = ps.Length / 2

    for i in 0 .. n - 1 do
        h <- Tensor.matmulT false true h ps.[2 * i] + ps.[2 * i + 1]

        if i < n - 1 then
            h <- Tensor.tanh h

    h

let run (seed: int) =
    let sw = Stopwatch.StartNew()

    let ps = [|
        for i in 0 .. sizes.Length - 2 do
            yield Tensor.randn (seed + i) [| sizes.[i + 1]; sizes.[i] |] / Math.Sqrt(float sizes.[i])
            yield Tensor.zeros [| sizes.[i + 1] |]
    |]

    let x = Tensor.randn (seed + 100) [| 32; sizes.[0] |]
    let rng = Random(seed)
    let y = Tensor.ofInts (Array.init 32 (fun _ -> rng.Next sizes.[sizes.Length - 1]))
    // all parameters as one flat vector so that every derivative is a function of one tensor
    let shapes = ps |> Array.map (fun p -> p.Shape)
    let theta = ps |> Array.map Tensor.flatten |> Tensor.cat 0

    let unflatten (t: Tensor) =
        let parts = Tensor.split 0 (shapes |> Array.map Shape.numel) t
        Array.map2 (fun (p: Tensor) s -> Tensor.view s p) parts shapes

    let loss (t: Tensor) = Tensor.crossEntropy (model x (unflatten t)) y
    let u = Tensor.randn (seed + 200) theta.Shape
    let d1 (t: Tensor) = snd (Ad.jvp loss t u)
    let d2 (t: Tensor) = snd (Ad.jvp d1 t u)
    let row name (ad: float) (fd: float) = printfn "  %-44s %16.10g %16.10g %9.1e" name ad fd (abs (ad - fd) / max 1.0 (abs fd))
    printfn "tanh MLP %s, batch 32, %d parameters, float64, seed %d" (String.Join("-", sizes)) theta.Numel seed
    printfn "cross-entropy loss L = %.10g along a random direction u" (Tensor.toScalar (loss theta))
    printfn "  %-44s %16s %16s %9s" "quantity" "exact (AD)" "finite diff." "rel.err"
    let g = Ad.grad loss theta
    row "gradient · u (reverse)" (Tensor.toScalar (Tensor.dot g u)) (Numerical.directional 1 loss theta u)

    row
        "D²L[u,u] = uᵀHu (reverse∘forward hvp)"
        (Tensor.toScalar (Tensor.dot (Ad.hvp loss theta u) u))
        (Numerical.directional 2 loss theta u)

    let h = 1e-5
    let fd3 = (Tensor.toScalar (d2 (theta + h * u)) - Tensor.toScalar (d2 (theta - h * u))) / (2.0 * h)
    row "D³L[u,u,u] (forward∘forward∘forward)" (Tensor.toScalar (snd (Ad.jvp d2 theta u))) fd3
    row "D³L[u,u,u] (reverse∘forward∘forward)" (Tensor.toScalar (Tensor.dot (Ad.grad d2 theta) u)) fd3
    let g1 (t: Tensor) = Tensor.dot (Ad.grad loss t) u
    let g2 (t: Tensor) = Tensor.dot (Ad.grad g1 t) u
    row "D³L[u,u,u] (reverse∘reverse∘reverse)" (Tensor.toScalar (Tensor.dot (Ad.grad g2 theta) u)) fd3

    printfn
        "done in %.2f s (backend: %s, GEMM: %s, threads: %d)"
        sw.Elapsed.TotalSeconds
        (BackendRegistry.defaultBackend ()).Name
        (Backends.GemmProvider.active ())
        (BackendRegistry.threads ())

    0
