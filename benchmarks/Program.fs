module GroupedNewton.Benchmarks.Program

[<EntryPoint>]
let main argv =
    match argv |> Array.tryHead with
    | Some "gemm" -> Gemm.run argv.[1..]
    | _ ->
        eprintfn "usage: dotnet run -c Release --project benchmarks -- gemm"
        2
