/// The property suite's entry point: every `[<Tests>]` list of the assembly, run by
/// Expecto (`dotnet test` runs this executable through the project's VSTest target).
module GroupedNewton.PropertyTests.Main

open Expecto
open GroupedNewton.PropertyTests.Generators

[<EntryPoint>]
let main argv =
    if Run.long then
        printfn "property suite: long mode, fresh random seeds"
    else
        match Run.replay with
        | Some(seed, gamma, _) ->
            printfn "property suite: seed %d, gamma %d (GROUPEDNEWTON_PROPERTY_SEED=\"%d,%d\" replays it)" seed gamma seed gamma
        | None -> ()

    runTestsInAssemblyWithCLIArgs [] argv
