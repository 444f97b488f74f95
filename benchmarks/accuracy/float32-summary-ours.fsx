// Our side of float32-summary-reference.py: the same inputs through Summary.compute in
// float64 and float32, each compared with the reference's float64 truth (largest absolute
// error over the largest magnitude). Build the core first (dotnet build src/Core.FSharp -c Release).
#r "../../src/Core.FSharp/bin/Release/net10.0/GroupedNewton.Core.dll"

open System
open System.IO
open GroupedNewton

let dir = fsi.CommandLineArgs.[1]

let readF (name: string) =
    let b = File.ReadAllBytes(Path.Combine(dir, name)) in Array.init (b.Length / 8) (fun i -> BitConverter.ToDouble(b, 8 * i))

let readI (name: string) =
    let b = File.ReadAllBytes(Path.Combine(dir, name)) in Array.init (b.Length / 4) (fun i -> BitConverter.ToInt32(b, 4 * i))

let sizes = [| 784; 1024; 200; 100; 10 |]

let shapes = [|
    for i in 0..3 do
        yield [| sizes.[i]; sizes.[i + 1] |]
        yield [| sizes.[i + 1] |]
|]

let split (flat: float[]) =
    let mutable o = 0

    shapes
    |> Array.map (fun s ->
        let n = Array.fold (*) 1 s in
        let a = flat.[o .. o + n - 1] in
        o <- o + n
        a, s)

let p = split (readF "params.bin")
let uu = split (readF "u.bin")
let x = readF "x.bin"
let y = readI "y.bin"
let truth = readF "truth.bin"
let S = 8
let tg, tH, tD = truth.[0 .. S - 1], truth.[S .. S + S * S - 1], truth.[S + S * S ..]

let run (dtype: Dtype) =
    let mk (a: float[], s: int[]) = Tensor.cast dtype (Tensor.ofArrayShape a s)
    let ps = Parameters.ofSeq (p |> Array.mapi (fun i t -> sprintf "p%d" i, mk t))
    let u = ps.WithValues(uu |> Array.map mk)
    let xt = Tensor.cast dtype (Tensor.ofArrayShape x [| 100; 784 |])
    let yt = Tensor.ofInts y

    let loss (q: Parameters) =
        let mutable h = xt

        for i in 0..3 do
            h <- Tensor.matmul h q.Values.[2 * i] + q.Values.[2 * i + 1]

            if i < 3 then
                h <- Tensor.tanh h

        Tensor.crossEntropy h yt

    Summary.compute loss ps (Partition.canonical ps) u

let rel (a: float[]) (b: float[]) = (Array.map2 (fun p q -> abs (p - q)) a b |> Array.max) / (b |> Array.map abs |> Array.max)
let s64 = run Dtype.Float64
let s32 = run Dtype.Float32
let flat (h: float[,]) = Array.init (S * S) (fun k -> h.[k / S, k % S])

printfn
    "{\"ours64_g\": %g, \"ours64_H\": %g, \"ours64_D\": %g, \"ours_g\": %g, \"ours_H\": %g, \"ours_D\": %g}"
    (rel s64.Gradient tg)
    (rel (flat s64.Hessian) tH)
    (rel s64.ThirdDiagonal tD)
    (rel s32.Gradient tg)
    (rel (flat s32.Hessian) tH)
    (rel s32.ThirdDiagonal tD)
