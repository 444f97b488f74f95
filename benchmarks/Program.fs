module GroupedNewton.Benchmarks.Program

let private usage () =
    eprintfn "usage: dotnet run -c Release --project benchmarks -- <gemm | tanh | hvp [threads,...]>"
    2

[<EntryPoint>]
let main argv =
    match argv |> Array.tryHead with
    | Some "gemm" -> Gemm.run argv.[1..]
    | Some "tanh" -> TanhOp.run argv.[1..]
    | Some "hvp" -> Hvp.run argv.[1..]
    | _ -> usage ()
