/// Temporary folders for a test run, all removed when the run ends.
namespace GroupedNewton.TestSupport

open System
open System.IO

module TempFolders =
    let private created = Collections.Concurrent.ConcurrentBag<string>()

    /// A fresh folder `<temp>/<prefix>-<guid>`, removed when the test run ends.
    let create (prefix: string) =
        let d = Path.Combine(Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N"))
        Directory.CreateDirectory d |> ignore
        created.Add d
        d

    /// Removes the folders made by `create` (what cannot be removed is left).
    let removeAll () =
        for d in created do
            try
                Directory.Delete(d, true)
            with _ ->
                ()

namespace GroupedNewton

/// Removes the temporary folders after all tests of the assembly. It stands in the namespace
/// every test module lies below, so NUnit runs it once around the whole assembly.
[<NUnit.Framework.SetUpFixture>]
type TempFoldersCleanup() =
    [<NUnit.Framework.OneTimeTearDown>]
    member _.RemoveFolders() = GroupedNewton.TestSupport.TempFolders.removeAll ()
