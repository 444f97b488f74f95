/// The property suite's entry point: every `[<Tests>]` list of the assembly, run by
/// Expecto (`dotnet test` runs this executable through the project's VSTest target).
module GroupedNewton.PropertyTests.Main

open Expecto
open GroupedNewton.PropertyTests.Generators

[<EntryPoint>]
let main argv =
    let mode = if Run.long then "long mode" else "default mode"

    match Run.replay with
    | Some(seed, gamma, size) ->
        let replay =
            match size with
            | Some n -> sprintf "%d,%d,%d" seed gamma n
            | None -> sprintf "%d,%d" seed gamma

        printfn "property suite: %s, GROUPEDNEWTON_PROPERTY_SEED=\"%s\" (fixed: this run replays)" mode replay
    | None -> printfn "property suite: %s, fresh random seeds (a failure prints the seed that replays it)" mode

    runTestsInAssemblyWithCLIArgs [] argv
