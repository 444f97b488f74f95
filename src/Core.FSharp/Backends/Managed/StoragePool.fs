namespace GroupedNewton.Backends.Managed

open System
open System.Collections.Generic
open System.Runtime.CompilerServices

/// Raw arrays recycled from tensors no one can reach any more. A training step allocates
/// the same shapes every time: without recycling, every op result is fresh memory that the
/// runtime maps, zeroes and later returns to the kernel (hundreds of page faults a step),
/// and under a default GC the arrays above 85 KB live on the large-object heap, reclaimed
/// only by full collections.
///
/// Every managed tensor registers its array here when it is built (arrays below
/// `MinLength` elements are left to the GC). The pool holds each registered array and a
/// weak reference to every storage object that wraps it (views share the storage object;
/// a kernel that returns its input array wraps it again and adds a holder). When no holder
/// is reachable, no tensor can observe the array: it goes to a free list, and the next
/// request for the same element type and length gets it back. Holders are checked after
/// the GC has run (and, when the arrays held since the last check exceed the live ones by
/// half or by a margin, the pool asks the GC for a young-generation collection first), so
/// memory stays within a small factor of what the live tensors need. Free arrays that no
/// request has needed for many checks in a row go back to the GC a few at a time, and free
/// arrays beyond the recent peak at once.
///
/// The contract for kernels: a raw array taken out of a storage object must not be used
/// after its tensor is unreachable. The backend keeps every op's inputs alive until the op
/// has built its result (ManagedBackend's `mk`), so a request made inside a kernel never
/// recycles that kernel's own inputs.
module internal StoragePool =
    /// Arrays shorter than this are left to the GC (its young generation is cheap for them).
    [<Literal>]
    let MinLength = 2048

    /// Checks in a row that must find a free list's arrays unused before some are given back.
    [<Literal>]
    let private IdleChecks = 16

    /// The allowance for arrays held above twice the live ones before a collection is requested.
    let private margin = 32L * 1024L * 1024L

    [<AllowNullLiteral>]
    type private Lease(array: Array, bytes: int64, holder: obj) =
        let holders = ResizeArray<WeakReference>(1)
        do holders.Add(WeakReference holder)
        member _.Array = array
        member _.Bytes = bytes

        member _.Add(h: obj) =
            // a view wraps the same storage object: one weak reference per object suffices
            if not (obj.ReferenceEquals(holders.[holders.Count - 1].Target, h)) then
                holders.Add(WeakReference h)

        /// Drops the holders that were collected; true when none is left.
        member _.Dead() =
            holders.RemoveAll(fun w -> isNull w.Target) |> ignore
            holders.Count = 0

    let private gate = obj ()
    let private leased = Dictionary<Array, Lease>(HashIdentity.Reference)
    let private free = Dictionary<struct (int * int), Stack<Array>>()
    /// Per free list, the fewest arrays it held at any moment since the last check: that many
    /// sat unused through the whole cycle (arrays of one key are interchangeable).
    let private idle = Dictionary<struct (int * int), int>()
    /// Per free list, how many checks in a row found some of its arrays unused.
    let private streak = Dictionary<struct (int * int), int>()
    let mutable private heldBytes = 0L
    let mutable private liveBytes = 0L
    let mutable private freeBytes = 0L
    let mutable private peakHeld = 0L
    let mutable private lastCount = -1
    let mutable private recycled = 0L
    let mutable private fresh = 0L
    let mutable private forced = 0L
    let mutable private forcedTicks = 0L

    let mutable private enabled =
        match Environment.GetEnvironmentVariable "GROUPEDNEWTON_STORAGE_POOL" with
        | "0"
        | "off" -> false
        | _ -> true

    let private bytesOf (a: Array) = int64 (Buffer.ByteLength a)

    /// The free-list key of an array: element kind and length.
    let private keyOf (a: Array) =
        match a with
        | :? (float32[]) -> struct (0, a.Length)
        | :? (float[]) -> struct (1, a.Length)
        | _ -> struct (2, a.Length)

    let private kindOf<'T> =
        if typeof<'T> = typeof<float32> then 0
        elif typeof<'T> = typeof<float> then 1
        else 2

    /// Puts an array no tensor holds on its free list (under the gate).
    let private push (a: Array) =
        let key = keyOf a

        let stack =
            match free.TryGetValue key with
            | true, s -> s
            | _ ->
                let s = Stack<Array>()
                free.[key] <- s
                s

        stack.Push a
        freeBytes <- freeBytes + bytesOf a

    /// Moves the arrays without a reachable holder to the free lists (under the gate).
    let private scan () =
        lastCount <- GC.CollectionCount 0
        // the working set of recent cycles, decaying slowly: a step that needs more (a
        // GroupedNewton summary every few steps) finds its arrays again next time
        peakHeld <- max heldBytes (peakHeld - peakHeld / 64L)
        let dead = ResizeArray<Lease>()

        for KeyValue(_, l: Lease) in leased do
            if l.Dead() then
                dead.Add l

        for l in dead do
            leased.Remove l.Array |> ignore
            heldBytes <- heldBytes - l.Bytes
            push l.Array

        liveBytes <- heldBytes
        // Free arrays that no request needed for IdleChecks checks in a row go back to the GC,
        // a quarter of the unused ones per check: a surplus left by a larger phase decays, while
        // the arrays a step takes every cycle, or every few (a GroupedNewton summary every ten
        // steps), stay, whatever is live when the check runs. Free arrays beyond the recent peak
        // plus the margin go at once.
        for KeyValue(key, s) in free do
            let unused =
                match idle.TryGetValue key with
                | true, n -> min n s.Count
                | _ -> 0

            let run =
                match streak.TryGetValue key with
                | true, r when unused > 0 -> r + 1
                | _ when unused > 0 -> 1
                | _ -> 0

            streak.[key] <- run

            if run >= IdleChecks then
                for _ in 1 .. (unused + 3) / 4 do
                    freeBytes <- freeBytes - bytesOf (s.Pop())

        let cap = peakHeld + margin

        if freeBytes > cap then
            for KeyValue(_, s) in free do
                while freeBytes > cap && s.Count > 0 do
                    let a = s.Pop()
                    freeBytes <- freeBytes - bytesOf a

        for KeyValue(key, s) in free do
            idle.[key] <- s.Count

    let private tryPop (key: struct (int * int)) : Array | null =
        match free.TryGetValue key with
        | true, s when s.Count > 0 ->
            let a = s.Pop()
            freeBytes <- freeBytes - bytesOf a
            recycled <- recycled + 1L

            match idle.TryGetValue key with
            | true, n when s.Count < n -> idle.[key] <- s.Count
            | _ -> ()

            a
        | _ -> null

    /// An array of n elements whose contents are undefined (the caller overwrites them all).
    let rent<'T> (n: int) : 'T[] =
        if n < MinLength || not enabled then
            GC.AllocateUninitializedArray<'T> n
        else
            let key = struct (kindOf<'T>, n)

            let found =
                lock gate (fun () ->
                    let mutable a = tryPop key

                    if isNull a && GC.CollectionCount 0 <> lastCount then
                        scan ()
                        a <- tryPop key

                    if isNull a && heldBytes > liveBytes + max margin (liveBytes / 2L) then
                        let t0 = Diagnostics.Stopwatch.GetTimestamp()
                        GC.Collect(1, GCCollectionMode.Forced, true)
                        forced <- forced + 1L
                        forcedTicks <- forcedTicks + Diagnostics.Stopwatch.GetTimestamp() - t0
                        scan ()
                        a <- tryPop key

                    a)

            match found with
            | :? ('T[]) as a -> a
            | _ ->
                fresh <- fresh + 1L
                // on the pinned heap: never moved, so the collections that find dead
                // tensors do not copy the large arrays that are still alive
                GC.AllocateUninitializedArray<'T>(n, true)

    /// An array of n zeros.
    let zeros<'T> (n: int) : 'T[] =
        if n < MinLength || not enabled then
            Array.zeroCreate n
        else
            let a = rent<'T> n
            Array.Clear a
            a

    /// Hands back an array from `rent` or `zeros` that no tensor wraps and the caller no
    /// longer uses (a kernel's own scratch).
    let release (array: Array) =
        if array.Length >= MinLength && enabled then
            lock gate (fun () ->
                if not (leased.ContainsKey array) then
                    push array)

    /// Registers the array wrapped by a new storage object (called by every managed tensor).
    let track (holder: obj) (array: Array) =
        if array.Length >= MinLength && enabled then
            lock gate (fun () ->
                match leased.TryGetValue array with
                | true, l -> l.Add holder
                | _ ->
                    let l = Lease(array, bytesOf array, holder)
                    leased.[array] <- l
                    heldBytes <- heldBytes + l.Bytes)

    /// What the pool has done so far.
    type Statistics = {
        /// Requests served from a free list.
        Recycled: int64
        /// Requests served by a new array.
        Fresh: int64
        /// Collections the pool asked for, and the milliseconds they took.
        Collections: int64
        CollectionMs: float
        /// Bytes of arrays held by tensors (as of the last check) and on the free lists.
        HeldBytes: int64
        FreeBytes: int64
    }

    let statistics () =
        lock gate (fun () -> {
            Recycled = recycled
            Fresh = fresh
            Collections = forced
            CollectionMs = float forcedTicks * 1000.0 / float Diagnostics.Stopwatch.Frequency
            HeldBytes = heldBytes
            FreeBytes = freeBytes
        })

    /// Turns recycling on or off (off: every request is a fresh array); returns the previous setting.
    let setEnabled (on: bool) =
        lock gate (fun () ->
            let was = enabled
            enabled <- on

            if not on then
                leased.Clear()
                free.Clear()
                idle.Clear()
                streak.Clear()
                heldBytes <- 0L
                liveBytes <- 0L
                freeBytes <- 0L
                peakHeld <- 0L

            was)
