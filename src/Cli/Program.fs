module GroupedNewton.Cli.Program

open System

let private usage () =
    printfn "groupednewton <command>"
    printfn ""
    printfn "commands:"
    printfn "  derivatives [--seed N]   exact 1st-3rd order derivatives of a small MLP loss by every"
    printfn "                           nesting of forward and reverse mode, next to finite differences"
    printfn ""
    printfn "Training, comparison and summaries arrive with the optimizers."

[<EntryPoint>]
let main argv =
    try
        match List.ofArray argv with
        | [] | [ "derivatives" ] -> DerivativesCommand.run 0
        | [ "derivatives"; "--seed"; s ] ->
            match Int32.TryParse s with
            | true, seed -> DerivativesCommand.run seed
            | _ -> eprintfn "--seed needs an integer, got '%s'" s; 2
        | [ "--help" ] | [ "-h" ] | [ "help" ] -> usage (); 0
        | _ -> eprintfn "unknown arguments: %s" (String.Join(" ", argv)); usage (); 2
    with :? GroupedNewton.TensorException as e ->
        eprintfn "error: %s" e.Message
        1
