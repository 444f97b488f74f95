/// Every differentiable op as a case: first, second and third directional derivatives
/// computed by every nesting of forward and reverse mode, checked against each other and
/// against float64 finite differences, on the default backend.
module GroupedNewton.Conformance.DerivativeCases

open System
open GroupedNewton
open GroupedNewton.Conformance.Check

let private vec (values: float[]) = Tensor.ofArray values

type Domain =
    | Any
    /// |x| ≥ 0.2: keeps finite differences away from kinks (relu, abs, elu, max-pool ties)
    | AwayFromZero
    /// x in [0.5, 2]
    | Positive
    /// entries at least 0.1 apart: finite-difference steps never reorder them (max-pool)
    | Distinct

/// An op under test as a function of one flat float64 input of length `Size`.
type Case = {
    Name: string
    Size: int
    Domain: Domain
    F: Tensor -> Tensor
} with

    override c.ToString() = c.Name

let private part (x: Tensor) (start: int) (shape: int[]) = Tensor.narrow 0 start (Shape.numel shape) x |> Tensor.view shape

let private halves (x: Tensor) (shape: int[]) = part x 0 shape, part x (Shape.numel shape) shape

// functions, not values: the backend conformance suite runs these cases on other backends
let private labels () = Tensor.ofInts [| 2; 0; 1; 2 |]
let private convW () = vec (randn 77 (3 * 2 * 3 * 3)) |> Tensor.view [| 3; 2; 3; 3 |]

let cases: Case list =
    let s23 = [| 2; 3 |]

    [
        { Name = "add"; Size = 12; Domain = Any; F = fun x -> let a, b = halves x s23 in a + b }
        {
            Name = "add-broadcast"
            Size = 9
            Domain = Any
            F = fun x -> part x 0 [| 2; 3 |] + part x 6 [| 3 |]
        }
        { Name = "sub"; Size = 12; Domain = Any; F = fun x -> let a, b = halves x s23 in a - b }
        { Name = "mul"; Size = 12; Domain = Any; F = fun x -> let a, b = halves x s23 in a * b }
        {
            Name = "mul-broadcast"
            Size = 8
            Domain = Any
            F = fun x -> part x 0 [| 2; 3 |] * part x 6 [| 2; 1 |]
        }
        { Name = "div"; Size = 12; Domain = Positive; F = fun x -> let a, b = halves x s23 in a / b }
        { Name = "neg"; Size = 6; Domain = Any; F = fun x -> -x }
        {
            Name = "scalar-ops"
            Size = 6
            Domain = Positive
            F = fun x -> x * x * x / 3.0 + x - 2.0 * x + (1.0 / x) + (3.0 - x)
        }
        {
            Name = "powScalar"
            Size = 6
            Domain = Positive
            F = fun x -> Tensor.powScalar 2.5 x + Tensor.powScalar -1.5 x + x ** 3.0
        }
        {
            Name = "pow-tensor"
            Size = 12
            Domain = Positive
            F = fun x -> let a, b = halves x s23 in Tensor.pow a b
        }
        { Name = "exp"; Size = 6; Domain = Any; F = Tensor.exp }
        { Name = "log"; Size = 6; Domain = Positive; F = Tensor.log }
        { Name = "tanh"; Size = 6; Domain = Any; F = Tensor.tanh }
        { Name = "sigmoid"; Size = 6; Domain = Any; F = Tensor.sigmoid }
        { Name = "softplus"; Size = 6; Domain = Any; F = fun x -> Tensor.softplus (3.0 * x) }
        { Name = "relu"; Size = 6; Domain = AwayFromZero; F = fun x -> Tensor.relu x * x * x }
        { Name = "elu"; Size = 6; Domain = AwayFromZero; F = fun x -> Tensor.elu 1.0 x * x }
        { Name = "sqrt"; Size = 6; Domain = Positive; F = Tensor.sqrt }
        { Name = "abs"; Size = 6; Domain = AwayFromZero; F = fun x -> Tensor.abs x * x * x }
        { Name = "sum"; Size = 6; Domain = Any; F = fun x -> Tensor.sum (x * x) * Tensor.sum x }
        {
            Name = "sumDim"
            Size = 12
            Domain = Any
            F = fun x -> let y = Tensor.view [| 2; 3; 2 |] x in Tensor.sum (Tensor.sumDim 1 false (y * y)) * Tensor.sumDim 0 false y
        }
        {
            Name = "mean-meanDim"
            Size = 12
            Domain = Any
            F = fun x -> let y = Tensor.view [| 3; 4 |] x in Tensor.meanDim 1 true (y * y) * Tensor.mean y
        }
        {
            Name = "view-permute"
            Size = 24
            Domain = Any
            F = fun x -> let y = x |> Tensor.view [| 2; 3; 4 |] |> Tensor.permute [| 2; 0; 1 |] in y * Tensor.tanh y
        }
        {
            Name = "expand"
            Size = 3
            Domain = Any
            F = fun x -> Tensor.expand [| 4; 3 |] x * Tensor.expand [| 4; 3 |] (Tensor.tanh x)
        }
        {
            Name = "slice-pad"
            Size = 12
            Domain = Any
            F =
                fun x ->
                    let y = Tensor.view [| 3; 4 |] x
                    let s = Tensor.slice [| 1; 1 |] [| 2; 2 |] y
                    Tensor.pad [| 0; 1 |] [| 2; 4 |] (s * s)
        }
        {
            Name = "cat-stack-split"
            Size = 12
            Domain = Any
            F =
                fun x ->
                    let a, b = halves x s23
                    let c = Tensor.cat 1 [ a * b; Tensor.tanh a ]
                    let parts = Tensor.split 1 [| 4; 2 |] c
                    Tensor.stack 0 [ parts.[1] * parts.[1]; parts.[1] ]
        }
        {
            Name = "matmul"
            Size = 20
            Domain = Any
            F = fun x -> Tensor.tanh (Tensor.matmul (part x 0 [| 2; 4 |]) (part x 8 [| 4; 3 |]))
        }
        {
            Name = "matmulT-a"
            Size = 20
            Domain = Any
            F = fun x -> Tensor.tanh (Tensor.matmulT true false (part x 0 [| 4; 2 |]) (part x 8 [| 4; 3 |]))
        }
        {
            Name = "matmulT-b"
            Size = 20
            Domain = Any
            F = fun x -> Tensor.tanh (Tensor.matmulT false true (part x 0 [| 2; 4 |]) (part x 8 [| 3; 4 |]))
        }
        {
            Name = "matmulT-ab"
            Size = 20
            Domain = Any
            F = fun x -> Tensor.tanh (Tensor.matmulT true true (part x 0 [| 4; 2 |]) (part x 8 [| 3; 4 |]))
        }
        {
            Name = "conv2d"
            Size = 2 * 2 * 5 * 5 + 3
            Domain = Any
            F = fun x -> Tensor.tanh (Tensor.conv2d (2, 2) (1, 1) (part x 0 [| 2; 2; 5; 5 |]) (convW ()) (Some(part x 100 [| 3 |])))
        }
        {
            Name = "conv2d-weight"
            Size = 3 * 2 * 3 * 3
            Domain = Any
            F =
                fun x ->
                    let input = vec (randn 5 (2 * 2 * 5 * 5)) |> Tensor.view [| 2; 2; 5; 5 |]
                    Tensor.tanh (Tensor.conv2d (1, 1) (0, 0) input (Tensor.view [| 3; 2; 3; 3 |] x) None)
        }
        {
            Name = "maxPool2d"
            Size = 2 * 2 * 4 * 4
            Domain = Distinct
            F = fun x -> let y = Tensor.maxPool2d 2 2 0 (Tensor.view [| 2; 2; 4; 4 |] x) in y * y * y
        }
        {
            Name = "maxPool2d-overlap-pad"
            Size = 1 * 2 * 5 * 5
            Domain = Distinct
            F = fun x -> let y = Tensor.maxPool2d 3 1 1 (Tensor.view [| 1; 2; 5; 5 |] x) in y * y * y
        }
        {
            Name = "avgPool2d"
            Size = 2 * 2 * 4 * 4
            Domain = Any
            F = fun x -> let y = Tensor.avgPool2d 3 1 1 (Tensor.view [| 2; 2; 4; 4 |] x) in y * y * y
        }
        {
            Name = "gather"
            Size = 6
            Domain = Any
            F =
                fun x ->
                    let g =
                        Tensor.gather 1 (Tensor.ofArrayShape [| 0; 0; 2; 1; 1; 1 |] [| 2; 3 |]) (Tensor.view [| 2; 3 |] x) in

                    g * g * g
        }
        {
            Name = "scatterAdd"
            Size = 6
            Domain = Any
            F = fun x -> let s = Tensor.scatterAdd 0 (Tensor.ofInts [| 1; 1; 0; 3; 1; 0 |]) [| 4 |] x in s * s * s
        }
        {
            Name = "logsumexp"
            Size = 12
            Domain = Any
            F = fun x -> Tensor.logsumexp 1 false (Tensor.view [| 3; 4 |] (3.0 * x))
        }
        {
            Name = "logSoftmax"
            Size = 12
            Domain = Any
            F = fun x -> Tensor.logSoftmax 1 (Tensor.view [| 4; 3 |] x)
        }
        {
            Name = "crossEntropy"
            Size = 12
            Domain = Any
            F = fun x -> Tensor.crossEntropy (Tensor.view [| 4; 3 |] (2.0 * x)) (labels ())
        }
        {
            Name = "nll"
            Size = 12
            Domain = Any
            F = fun x -> Tensor.nll (Tensor.logSoftmax 1 (Tensor.view [| 4; 3 |] x)) (labels ())
        }
        {
            Name = "mse"
            Size = 12
            Domain = Any
            F = fun x -> let a, b = halves x s23 in Tensor.mse (Tensor.tanh a) b
        }
    ]

let inputFor (c: Case) (seed: int) =
    let r = randn seed c.Size
    let rng = Random(seed + 1000)

    let vals =
        match c.Domain with
        | Any -> r
        | AwayFromZero -> r |> Array.map (fun v -> (if v >= 0.0 then 1.0 else -1.0) * (0.2 + abs v))
        | Positive -> Array.init c.Size (fun _ -> 0.5 + 1.5 * rng.NextDouble())
        | Distinct ->
            let perm = Array.init c.Size id |> Array.sortBy (fun _ -> rng.Next())
            perm |> Array.map (fun k -> 0.1 * float k - 0.05 * float c.Size + 0.05)

    vec vals

/// The op made scalar with fixed weights, so every output element counts differently.
let scalarize (c: Case) =
    let probe = c.F(inputFor c 1)
    let w = Tensor.ofArrayShape (randn 99 probe.Numel) probe.Shape
    fun (x: Tensor) -> Tensor.sum (c.F x * w)


/// D^k s(x)[v, …, v] by a named nesting; F = forward, R = reverse, outermost first.
let nestings (s: Tensor -> Tensor) (v: Tensor) =
    let d1F (z: Tensor) = snd (Ad.jvp s z v)
    let d1R (z: Tensor) = Tensor.dot (Ad.grad s z) v
    let d2FF (z: Tensor) = snd (Ad.jvp d1F z v)
    let d2RF (z: Tensor) = Tensor.dot (Ad.grad d1F z) v
    let d2FR (z: Tensor) = snd (Ad.jvp d1R z v)
    let d2RR (z: Tensor) = Tensor.dot (Ad.grad d1R z) v

    [
        1, [ "F", d1F; "R", d1R ]
        2, [ "F∘F", d2FF; "R∘F", d2RF; "F∘R", d2FR; "R∘R", d2RR ]
        3,
        [
            "F∘F∘F", (fun z -> snd (Ad.jvp d2FF z v))
            "R∘F∘F", (fun z -> Tensor.dot (Ad.grad d2FF z) v)
            "F∘F∘R", (fun z -> snd (Ad.jvp d2FR z v))
            "R∘R∘R", (fun z -> Tensor.dot (Ad.grad d2RR z) v)
            "R∘F∘R", (fun z -> Tensor.dot (Ad.grad d2FR z) v)
            "F∘R∘F", (fun z -> snd (Ad.jvp d2RF z v))
        ]
    ]

let orders = [| 1; 2; 3 |]

/// Every nesting of order `order` computes the same number, which matches a central
/// difference of the order below (computed by AD) and a pure finite-difference stencil.
let check (c: Case) (order: int) =
    let x = inputFor c 11
    let v = vec (randn 23 c.Size)
    let s = scalarize c
    let table = nestings s v |> List.find (fun (k, _) -> k = order) |> snd
    let values = table |> List.map (fun (name, f) -> name, Tensor.toScalar (f x))
    // every nesting computes the same number
    let reference = snd values.Head

    for name, value in values.Tail do
        close 1e-9 (sprintf "%s: %s vs %s" c.Name name (fst values.Head)) reference value
    // finite differences of the order below (computed by AD) along v
    let lower =
        if order = 1 then
            fun (z: Tensor) -> Tensor.toScalar (s z)
        else
            let f = nestings s v |> List.find (fun (k, _) -> k = order - 1) |> snd |> List.head |> snd
            fun (z: Tensor) -> Tensor.toScalar (f z)

    let h = 1e-5
    let fd = (lower (x + h * v) - lower (x - h * v)) / (2.0 * h)
    close 2e-6 (sprintf "%s: order %d against a central difference of order %d" c.Name order (order - 1)) fd reference
    // and a pure finite-difference stencil of the op itself (a coarser oracle: its
    // truncation error grows with the order)
    let stencil = Numerical.directional order s x v

    close
        (match order with
         | 1 -> 1e-6
         | 2 -> 1e-4
         | _ -> 1e-2)
        (sprintf "%s: order %d against a pure stencil" c.Name order)
        stencil
        reference
