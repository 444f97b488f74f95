namespace GroupedNewton.Backends.Managed

open System
open System.Threading
open GroupedNewton

/// One parallel loop: parts are claimed with an atomic counter by the caller and the
/// workers, so a slow thread never holds parts back. A fresh job per loop means a worker
/// that wakes late only finds an exhausted counter.
[<Sealed; AllowNullLiteral>]
type internal ParallelJob(parts: int, body: int -> unit) =
    [<DefaultValue>]
    val mutable Next: int

    [<DefaultValue>]
    val mutable Remaining: int

    [<DefaultValue>]
    val mutable Error: exn | null

    member j.Init() = j.Remaining <- parts

    /// Runs parts until none is left.
    member j.Help() =
        let mutable p = Interlocked.Increment(&j.Next) - 1

        while p < parts do
            try
                body p
            with e ->
                Interlocked.CompareExchange(&j.Error, e, null) |> ignore

            Interlocked.Decrement(&j.Remaining) |> ignore
            p <- Interlocked.Increment(&j.Next) - 1

/// A fixed team of background threads that help the calling thread with parallel loops.
/// Between loops a worker spins briefly (kernels come in quick succession in a training
/// step), then sleeps until the next loop. Unlike the shared thread pool, idle workers
/// never outnumber the cores the caller asked for, so they do not compete with it.
[<Sealed>]
type internal WorkerTeam(workers: int) =
    /// How long an idle worker spins before it sleeps.
    static let spinTicks = Diagnostics.Stopwatch.Frequency / 10_000L // 100 µs
    let gate = obj ()
    let mutable generation = 0L
    let mutable current: ParallelJob = null
    let mutable sleepers = 0
    let mutable stopped = false
    let mutable busy = 0

    let work () =
        let mutable seen = 0L

        while not (Volatile.Read &stopped) do
            let start = Diagnostics.Stopwatch.GetTimestamp()
            let mutable spins = 0

            while Volatile.Read &generation = seen
                  && (spins < 64 || Diagnostics.Stopwatch.GetTimestamp() - start < spinTicks)
                  && not (Volatile.Read &stopped) do
                Thread.SpinWait 8
                spins <- spins + 1

            if Volatile.Read &generation = seen then
                lock gate (fun () ->
                    Interlocked.Increment &sleepers |> ignore

                    while Volatile.Read &generation = seen && not (Volatile.Read &stopped) do
                        Monitor.Wait gate |> ignore

                    Interlocked.Decrement &sleepers |> ignore)

            seen <- Volatile.Read &generation

            match Volatile.Read &current with
            | null -> ()
            | job -> job.Help()

    let threads =
        Array.init workers (fun i ->
            let t = Thread(work, IsBackground = true, Name = sprintf "GroupedNewton worker %d" (i + 1))
            t.Start()
            t)

    member _.Workers = workers

    /// Runs body 0 … parts−1 with the team's help; false (nothing run) when the team is
    /// already running a loop (a nested or concurrent call), which the caller then runs alone.
    member _.TryRun(parts: int, body: int -> unit) : bool =
        if Interlocked.CompareExchange(&busy, 1, 0) <> 0 then
            false
        else
            try
                let job = ParallelJob(parts, body)
                job.Init()
                Volatile.Write(&current, job)
                Interlocked.Increment &generation |> ignore

                if Volatile.Read &sleepers > 0 then
                    lock gate (fun () -> Monitor.PulseAll gate)

                job.Help()
                let mutable spin = SpinWait()

                while Volatile.Read &job.Remaining > 0 do
                    spin.SpinOnce -1

                Volatile.Write(&current, null)

                match job.Error with
                | null -> ()
                | e -> Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw()

                true
            finally
                Volatile.Write(&busy, 0)

    /// Lets the workers finish and exit.
    member _.Stop() =
        Volatile.Write(&stopped, true)
        lock gate (fun () -> Monitor.PulseAll gate)

/// The managed backend's thread count and the one way its kernels split work.
/// Work is cut into contiguous chunks whose boundaries depend only on the size and the
/// thread count, so the same thread count gives bit-identical results (whether the chunks
/// run in parallel or, in a nested or concurrent call, one after another).
module internal Threading =
    let private fromEnv () =
        match Environment.GetEnvironmentVariable "GROUPEDNEWTON_THREADS" with
        | null
        | "" -> Environment.ProcessorCount
        | s ->
            match Int32.TryParse s with
            | true, n when n >= 1 -> n
            | _ ->
                Fail.backend (
                    sprintf
                        "GROUPEDNEWTON_THREADS must be a positive integer, got '%s' (unset it, or set the thread count in code before the first tensor operation)"
                        s
                )

    /// 0 until the count is set or first read (GROUPEDNEWTON_THREADS is read then, so a bad
    /// value is a BackendException at first use, and a count set in code overrides it).
    let mutable private chosen = 0
    let mutable private team: WorkerTeam option = None
    let private teamLock = obj ()

    /// Number of threads the managed kernels (and OpenBLAS) may use.
    let get () =
        match chosen with
        | 0 ->
            chosen <- fromEnv ()
            chosen
        | n -> n

    /// Sets the thread count (>= 1).
    let set (n: int) =
        if n < 1 then
            Fail.backend (sprintf "thread count must be at least 1, got %d" n)

        chosen <- n

    /// Forgets the count, so that the next read takes GROUPEDNEWTON_THREADS again (tests).
    let internal reset () = chosen <- 0

    /// The team for the current thread count (threads − 1 workers), made on first use.
    let private teamFor (t: int) =
        match team with
        | Some w when w.Workers = t - 1 -> w
        | _ ->
            lock teamLock (fun () ->
                match team with
                | Some w when w.Workers = t - 1 -> w
                | previous ->
                    previous |> Option.iter (fun w -> w.Stop())
                    let w = WorkerTeam(t - 1)
                    team <- Some w
                    w)

    /// Below this many scalar operations a kernel runs on the calling thread.
    [<Literal>]
    let MinParallelWork = 32768

    /// Runs body 0 … parts−1, in parallel on up to `threads` threads when parts > 1.
    let forParts (parts: int) (body: int -> unit) =
        let t = get ()

        if parts <= 1 || t <= 1 then
            for p in 0 .. parts - 1 do
                body p
        elif not ((teamFor t).TryRun(parts, body)) then
            for p in 0 .. parts - 1 do
                body p

    /// A sum over n items that is the same for a given thread count: one contiguous part per
    /// thread accumulates into its own zeroed array of `size` (`body acc lo hi`), then the
    /// parts are added in order. Parts run in parallel when `work` is worth splitting.
    let partialSums (n: int) (size: int) (work: int64) (addInto: 'T[] -> 'T[] -> unit) (body: 'T[] -> int -> int -> unit) : 'T[] =
        if n = 0 then
            StoragePool.zeros size
        else
            let t = max 1 (min (get ()) n)
            let chunk = (n + t - 1) / t
            let parts = (n + chunk - 1) / chunk
            let partial: 'T[][] = Array.init parts (fun _ -> StoragePool.zeros size)
            let run p = body partial.[p] (p * chunk) (min n ((p + 1) * chunk))

            if work < int64 MinParallelWork then
                for p in 0 .. parts - 1 do
                    run p
            else
                forParts parts run

            let total = partial.[0]

            for p in 1 .. parts - 1 do
                addInto total partial.[p]
                StoragePool.release partial.[p]

            total

    /// Runs `body lo hi` over contiguous chunks covering [0, n). `work` is the total cost
    /// estimate (in scalar operations) used to decide whether splitting pays off. There are
    /// up to four chunks per thread, claimed as threads come free, so a worker that wakes
    /// late takes fewer chunks instead of holding the caller up.
    let forRanges (n: int) (work: int64) (body: int -> int -> unit) =
        let t = min (get ()) n

        if t <= 1 || work < int64 MinParallelWork then
            body 0 n
        else
            let pieces = int (min (int64 (min n (4 * t))) (max (int64 t) (work / int64 MinParallelWork)))
            let chunk = (n + pieces - 1) / pieces
            let parts = (n + chunk - 1) / chunk

            forParts parts (fun p ->
                let lo = p * chunk
                body lo (min n (lo + chunk)))
