namespace GroupedNewton

open System
open System.Collections.Concurrent
open GroupedNewton.Backends.Managed
open GroupedNewton.Backends.Torch

/// Explicit backend registration and selection. The managed backend is always present
/// and is the default; GROUPEDNEWTON_BACKEND names another one: `torch` (libtorch on the
/// device in GROUPEDNEWTON_TORCH_DEVICE, default cpu), `torch:cuda:N`, or a registered name.
module BackendRegistry =
    let private registered = ConcurrentDictionary<string, Backend>(StringComparer.OrdinalIgnoreCase)
    do registered.["managed"] <- ManagedBackend.Instance

    /// Registers a backend under its name (replacing one of the same name).
    let register (b: Backend) = registered.[b.Name] <- b

    let private torchFor (name: string) =
        let device =
            if name.Length > "torch".Length then
                name.Substring("torch:".Length)
            else
                match Environment.GetEnvironmentVariable "GROUPEDNEWTON_TORCH_DEVICE" with
                | null
                | "" -> "cpu"
                | d -> d

        let b = TorchBackend.Get device :> Backend
        registered.[name] <- b
        b

    /// The backend registered under this name; `torch`, `torch:cpu` and `torch:cuda:N`
    /// create the libtorch backend on first use (a BackendException says how to build the
    /// shim when it is missing). Fails naming the known backends otherwise.
    let get (name: string) =
        match registered.TryGetValue name with
        | true, b -> b
        | _ when
            String.Equals(name, "torch", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("torch:", StringComparison.OrdinalIgnoreCase)
            ->
            torchFor (name.ToLowerInvariant())
        | _ ->
            Fail.backend (
                sprintf "no backend named '%s' is registered (known: %s, torch, torch:cuda:N)" name (String.Join(", ", registered.Keys))
            )

    let mutable private current: Backend option = None

    /// The backend new tensors are created on.
    let defaultBackend () =
        match current with
        | Some b -> b
        | None ->
            let b =
                match Environment.GetEnvironmentVariable "GROUPEDNEWTON_BACKEND" with
                | null
                | "" -> ManagedBackend.Instance :> Backend
                | name -> get (name.Trim())

            current <- Some b
            b

    /// Makes `b` the backend new tensors are created on.
    let setDefault (b: Backend) = current <- Some b

    /// Makes the backend of this name (see `get`) the one new tensors are created on, e.g.
    /// `select "torch"` or `select "torch:cuda:0"`; returns it.
    let select (name: string) =
        let b = get name
        setDefault b
        b

    /// The managed backend's thread count (also used by OpenBLAS).
    let threads () = Threading.get ()

    /// Runs body 0 … parts − 1 on the managed backend's worker team (the calling thread
    /// helps); nested or concurrent calls run their parts one after another.
    let internal forParts (parts: int) (body: int -> unit) = Threading.forParts parts body

    /// Sets the thread count of the managed kernels, OpenBLAS and, once it is loaded, libtorch.
    let setThreads n =
        Threading.set n

        if TorchNative.isLoaded () then
            TorchBackend.Threads <- n

    /// A copy of a raw tensor on another backend (the same tensor when it is already there).
    let moveRaw (target: Backend) (r: RawTensor) : RawTensor =
        if Object.ReferenceEquals(r.Backend, target) then
            r
        else
            match target with
            | :? TorchBackend as tb -> tb.MoveFrom r
            | _ -> target.OfArray(r.Backend.ToArray r, r.Shape)
