namespace GroupedNewton.Backends.Managed

open System
open System.Threading.Tasks
open GroupedNewton

/// The managed backend's thread count and the one way its kernels split work.
/// Work is cut into contiguous chunks whose boundaries depend only on the size and the
/// thread count, so the same thread count gives bit-identical results.
module Threading =
    let private fromEnv () =
        match Environment.GetEnvironmentVariable "GROUPEDNEWTON_THREADS" with
        | null | "" -> Environment.ProcessorCount
        | s ->
            match Int32.TryParse s with
            | true, n when n >= 1 -> n
            | _ -> Fail.backend (sprintf "GROUPEDNEWTON_THREADS must be a positive integer, got '%s'" s)

    let mutable private threads = fromEnv ()

    /// Number of threads the managed kernels (and OpenBLAS) may use.
    let get () = threads

    /// Sets the thread count (>= 1).
    let set (n: int) =
        if n < 1 then Fail.backend (sprintf "thread count must be at least 1, got %d" n)
        threads <- n

    /// Below this many scalar operations a kernel runs on the calling thread.
    [<Literal>]
    let MinParallelWork = 32768

    /// Runs `body lo hi` over contiguous chunks covering [0, n). `work` is the total cost
    /// estimate (in scalar operations) used to decide whether splitting pays off.
    let forRanges (n: int) (work: int64) (body: int -> int -> unit) =
        let t = min threads n
        if t <= 1 || work < int64 MinParallelWork then body 0 n
        else
            let chunk = (n + t - 1) / t
            let parts = (n + chunk - 1) / chunk
            Parallel.For(0, parts, ParallelOptions(MaxDegreeOfParallelism = t), fun p ->
                let lo = p * chunk
                body lo (min n (lo + chunk))) |> ignore
