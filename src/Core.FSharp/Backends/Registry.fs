namespace GroupedNewton

open System
open System.Collections.Concurrent
open GroupedNewton.Backends.Managed

/// Explicit backend registration and selection. The managed backend is always present
/// and is the default; GROUPEDNEWTON_BACKEND names another registered backend.
module BackendRegistry =
    let private registered = ConcurrentDictionary<string, Backend>(StringComparer.OrdinalIgnoreCase)
    do registered.["managed"] <- ManagedBackend.Instance

    /// Registers a backend under its name (replacing one of the same name).
    let register (b: Backend) = registered.[b.Name] <- b

    /// The backend registered under this name; fails naming the known ones.
    let get (name: string) =
        match registered.TryGetValue name with
        | true, b -> b
        | _ ->
            Fail.backend (sprintf "no backend named '%s' is registered (known: %s)" name (String.Join(", ", registered.Keys)))

    let mutable private current : Backend option = None

    /// The backend new tensors are created on.
    let defaultBackend () =
        match current with
        | Some b -> b
        | None ->
            let b =
                match Environment.GetEnvironmentVariable "GROUPEDNEWTON_BACKEND" with
                | null | "" -> ManagedBackend.Instance :> Backend
                | name -> get name
            current <- Some b
            b

    /// Makes `b` the backend new tensors are created on.
    let setDefault (b: Backend) = current <- Some b

    /// The managed backend's thread count (also used by OpenBLAS).
    let threads () = Threading.get ()

    /// Sets the managed backend's thread count.
    let setThreads n = Threading.set n
