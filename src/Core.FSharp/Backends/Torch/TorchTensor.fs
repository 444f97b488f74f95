namespace GroupedNewton.Backends.Torch

open System
open System.Collections.Generic
open GroupedNewton

/// Where a torch tensor lives.
[<RequireQualifiedAccess>]
type TorchDevice =
    | Cpu
    | Cuda of index: int

    /// "cpu" or "cuda:N".
    override d.ToString() =
        match d with
        | Cpu -> "cpu"
        | Cuda i -> sprintf "cuda:%d" i

    member internal d.Code =
        match d with
        | Cpu -> 0, 0
        | Cuda i -> 1, i

    /// Parses "cpu", "cuda" (device 0) or "cuda:N".
    static member Parse(s: string) =
        match s.Trim().ToLowerInvariant() with
        | "cpu" -> Cpu
        | "cuda" -> Cuda 0
        | d when d.StartsWith "cuda:" ->
            match Int32.TryParse(d.Substring 5) with
            | true, i when i >= 0 -> Cuda i
            | _ -> Fail.backend (sprintf "bad torch device '%s' (expected cpu, cuda or cuda:N)" s)
        | _ -> Fail.backend (sprintf "bad torch device '%s' (expected cpu, cuda or cuda:N)" s)

/// A tensor held by libtorch through the shim. Disposing it frees the native tensor at
/// once; using it afterwards raises ObjectDisposedException.
[<Sealed>]
type TorchTensor internal (backend: Backend, handle: TorchHandle, shape: int[], dtype: Dtype) =
    inherit RawTensor()
    // The host value of a one-element float tensor, once known (created from a host value,
    // cast from a known one, or read once). Raw tensors are never changed in place, so it
    // stays true; reading it needs no device-to-host copy, which on a GPU would wait for
    // every queued kernel (the summaries read their one-element η seeds in every op).
    let mutable known: float voption = ValueNone
    member internal _.Handle = handle

    member internal _.Known
        with get () = known
        and set (v: float voption) = known <- v

    override _.Shape = shape
    override _.Dtype = dtype
    override _.Backend = backend
    /// True once the native tensor has been freed.
    member _.IsDisposed = handle.IsClosed
    member _.Dispose() = handle.Dispose()

    interface IDisposable with
        member _.Dispose() = handle.Dispose()

/// Deterministic release of torch intermediates. Every torch tensor created on this thread
/// while a scope is open belongs to the innermost scope and is freed when it is disposed,
/// except the tensors passed to Keep (they move to the enclosing scope, or to none).
/// Typical use: open a scope around a derivative computation whose results are read back
/// as .NET arrays (a GroupedNewton summary), so nothing it created waits for the GC.
[<Sealed; AllowNullLiteral>]
type TorchScope private (parent: TorchScope) =
    [<ThreadStatic; DefaultValue>]
    static val mutable private current: TorchScope

    let owned = List<TorchHandle>()
    let kept = HashSet<TorchHandle>(HashIdentity.Reference)
    let mutable disposed = false

    /// Opens a scope on the calling thread (scopes nest).
    static member Open() =
        let s = new TorchScope(TorchScope.current)
        TorchScope.current <- s
        s

    /// The innermost open scope of this thread, or null.
    static member internal Current = TorchScope.current

    member internal _.Add(h: TorchHandle) = owned.Add h

    /// Tensors created in this scope so far (kept ones included).
    member _.Count = owned.Count

    /// Keeps a raw tensor (for a differentiable tensor: its .Raw) alive past this scope; it
    /// moves to the enclosing scope, if any.
    member _.Keep(t: RawTensor) =
        match t with
        | :? TorchTensor as tt ->
            if kept.Add tt.Handle && not (isNull parent) then
                parent.Add tt.Handle
        | _ -> ()

    member s.Dispose() =
        if not disposed then
            disposed <- true

            for h in owned do
                if not (kept.Contains h) then
                    h.Dispose()

            owned.Clear()
            // scopes close innermost first; tolerate a scope disposed out of order
            if Object.ReferenceEquals(TorchScope.current, s) then
                TorchScope.current <- parent

    interface IDisposable with
        member s.Dispose() = s.Dispose()
