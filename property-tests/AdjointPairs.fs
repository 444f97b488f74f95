/// The linear ops come in adjoint pairs: <A x, y> = <x, Aᵀ y> on random shapes.
module GroupedNewton.PropertyTests.AdjointPairs

open FsCheck
open FsCheck.FSharp
open Expecto
open GroupedNewton
open GroupedNewton.PropertyTests.Generators

let private inner (a: Tensor) (b: Tensor) = Tensor.toScalar (Tensor.dot a b)
let private close (a: float) (b: float) = abs (a - b) <= 1e-10 * max 1.0 (abs a)

let ``unfold and fold are adjoint for any window`` =
    Run.property "unfold and fold are adjoint for any window" 50 [] (fun (seed: int) ->
        let rng = System.Random(seed)
        let n, c = rng.Next(1, 3), rng.Next(1, 3)
        let k = rng.Next(1, 4)
        let s, p = rng.Next(1, 3), rng.Next(0, k / 2 + 1)
        let h, w = k + rng.Next(0, 5), k + rng.Next(0, 5)
        let shape = [| n; c; h; w |]
        let x = Tensor.randn seed shape
        let cols = Tensor.unfold2d (k, k) (s, s) (p, p) x
        let y = Tensor.randn (seed + 1) cols.Shape
        close (inner cols y) (inner x (Tensor.fold2d shape (k, k) (s, s) (p, p) y)))

let ``gather and scatter-add are adjoint, repeated indices included`` =
    Run.property "gather and scatter-add are adjoint, repeated indices included" 50 [] (fun (seed: int) ->
        let rng = System.Random(seed)
        let m, n = rng.Next(1, 5), rng.Next(1, 6)
        let idx = Tensor.ofInts (Array.init (m * 3) (fun _ -> rng.Next(n))) |> Tensor.view [| m; 3 |]
        let x = Tensor.randn seed [| m; n |]
        let y = Tensor.randn (seed + 1) [| m; 3 |]
        close (inner (Tensor.gather 1 idx x) y) (inner x (Tensor.scatterAdd 1 idx [| m; n |] y)))

let ``the gradient of <expand x, y> is the sum of y back to x's shape`` =
    Run.property "the gradient of <expand x, y> is the sum of y back to x's shape" 50 [] (fun (seed: int) ->
        let rng = System.Random(seed)
        let a, b = rng.Next(1, 4), rng.Next(1, 4)
        let x = Tensor.randn seed [| a; 1 |]
        let y = Tensor.randn (seed + 1) [| 3; a; b |]
        let g = Ad.grad (fun z -> Tensor.dot (Tensor.expand [| 3; a; b |] z) y) x
        let expected = y |> Tensor.sumDim 0 false |> Tensor.sumDim 1 true
        Array.forall2 (fun u v -> close u v) (Tensor.toArray expected) (Tensor.toArray g))

[<Tests>]
let tests =
    testList "AdjointPairs" [
        ``unfold and fold are adjoint for any window``
        ``gather and scatter-add are adjoint, repeated indices included``
        ``the gradient of <expand x, y> is the sum of y back to x's shape``
    ]
