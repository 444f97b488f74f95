namespace GroupedNewton

open System
open System.Diagnostics
open System.Runtime.InteropServices
open System.Threading
open Microsoft.FSharp.NativeInterop

#nowarn "9"

/// Raised when data-parallel training cannot start or continue: no MPI library under
/// mpiexec, an unsupported MPI, ranks started with different options, a checkpoint written
/// by another number of ranks, a batch that cannot be split over the ranks.
type DistributedException(message: string) =
    inherit Exception(message)

/// How this process was started, read from the launcher's environment.
type internal Launch = {
    Size: int
    Rank: int
    /// Ranks on this host (0 when the launcher does not say).
    LocalRanks: int
    /// The variable the size was read from, for messages.
    Source: string
}

/// Time and volume of the collective calls made so far by this rank.
type CommunicationStatistics = {
    Calls: int64
    /// Bytes this rank contributed (its send buffers).
    Bytes: int64
    Seconds: float
}

/// The MPI binding underneath Distributed: MPI.NET's raw entry points (built against MS-MPI's
/// msmpi.dll) bound to the platform's MPI library of the same ABI (MPICH, Intel MPI), a
/// watchdog around every collective, and the counters of the communication benchmark.
module internal Mpi =
    let private env (name: string) =
        match Environment.GetEnvironmentVariable name with
        | null -> None
        | v when v.Trim() = "" -> None
        | v -> Some(v.Trim())

    let private intEnv (name: string) =
        env name
        |> Option.bind (fun v ->
            match Int32.TryParse v with
            | true, n -> Some n
            | _ -> None)

    /// The launcher's view of this process: MPICH's Hydra and MS-MPI set PMI_RANK/PMI_SIZE
    /// (Hydra also MPI_LOCALNRANKS); Open MPI sets OMPI_COMM_WORLD_SIZE, refused (other ABI).
    let launch () : Launch =
        match intEnv "OMPI_COMM_WORLD_SIZE" with
        | Some n when n > 1 ->
            raise (
                DistributedException(
                    sprintf
                        "started by Open MPI's mpiexec with %d ranks (OMPI_COMM_WORLD_SIZE): Open MPI has another binary interface and is not supported; install MPICH (Debian/Ubuntu: apt-get install mpich libmpich-dev) and start with mpiexec.mpich"
                        n
                )
            )
        | _ -> ()

        let size, source =
            match intEnv "PMI_SIZE" with
            | Some n -> n, "PMI_SIZE"
            | None ->
                match intEnv "MPI_LOCALNRANKS", env "PMI_RANK" with
                | Some n, Some _ -> n, "MPI_LOCALNRANKS"
                | _ -> 1, "(no launcher)"

        {
            Size = max 1 size
            Rank = defaultArg (intEnv "PMI_RANK") 0
            LocalRanks = defaultArg (intEnv "MPI_LOCALNRANKS") 0
            Source = source
        }

    let private candidates () =
        match env "GROUPEDNEWTON_MPI_LIBRARY" with
        | Some p -> [ p ]
        | None when OperatingSystem.IsWindows() -> [ "msmpi.dll" ]
        | None -> [ "libmpich.so.12"; "libmpi.so.12"; "libmpich.so" ]

    let private comm = MPI.Unsafe.MPI_COMM_WORLD
    let mutable private multiple = false
    let mutable private finished = false

    /// Seconds a collective may wait for the other ranks before this rank ends the job
    /// (GROUPEDNEWTON_MPI_TIMEOUT, default 120).
    let timeoutSeconds =
        match env "GROUPEDNEWTON_MPI_TIMEOUT" with
        | Some v ->
            match Double.TryParse(v, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, t when t > 0.0 -> t
            | _ -> raise (DistributedException(sprintf "GROUPEDNEWTON_MPI_TIMEOUT must be a positive number of seconds, got '%s'" v))
        | None -> 120.0

    /// Ends every rank of the job (MPI_Abort) after writing the reason to standard error.
    let abort (code: int) (reason: string) =
        eprintfn "%s" reason
        Console.Error.Flush()

        if multiple then
            MPI.Unsafe.MPI_Abort(comm, code) |> ignore
        // without MPI_THREAD_MULTIPLE another thread may not call MPI: end this process, and
        // the launcher ends the others
        Process.GetCurrentProcess().Kill()

    /// The collective in progress (its name and start), watched by a background thread.
    type private Watch() =
        [<VolatileField>]
        let mutable started = 0L

        [<VolatileField>]
        let mutable what = ""

        member _.Enter(name: string) =
            what <- name
            started <- Stopwatch.GetTimestamp()

        member _.Leave() = started <- 0L

        member _.Check(rank: int) =
            let s = started

            if s <> 0L then
                let waited = float (Stopwatch.GetTimestamp() - s) / float Stopwatch.Frequency

                if waited > timeoutSeconds then
                    abort
                        75
                        (sprintf
                            "error: rank %d waited %.0f s in %s for the other ranks (GROUPEDNEWTON_MPI_TIMEOUT is %g s): a rank has hung or died; ending the job"
                            rank
                            waited
                            what
                            timeoutSeconds)

    let private watch = Watch()
    let mutable private calls = 0L
    let mutable private bytes = 0L
    let mutable private ticks = 0L

    let statistics () = { Calls = calls; Bytes = bytes; Seconds = float ticks / float Stopwatch.Frequency }

    let resetStatistics () =
        calls <- 0L
        bytes <- 0L
        ticks <- 0L

    let private check (what: string) (rc: int) =
        if rc <> 0 then
            raise (DistributedException(sprintf "MPI %s failed with error code %d" what rc))

    /// Runs one collective under the watchdog and counts it.
    let collective (what: string) (sent: int64) (f: unit -> int) =
        watch.Enter what
        let t0 = Stopwatch.GetTimestamp()

        let rc =
            try
                f ()
            finally
                watch.Leave()

        ticks <- ticks + (Stopwatch.GetTimestamp() - t0)
        calls <- calls + 1L
        bytes <- bytes + sent
        check what rc

    let finalize () =
        if not finished then
            finished <- true
            let mutable fin = 0
            MPI.Unsafe.MPI_Finalized(&fin) |> ignore

            if fin = 0 then
                MPI.Unsafe.MPI_Finalize() |> ignore

    /// Loads the MPI library, initialises MPI and starts the watchdog; returns (rank, size)
    /// as MPI reports them.
    let initialise (l: Launch) : int * int =
        let tried = candidates ()

        let handle =
            tried
            |> List.tryPick (fun name ->
                match NativeLibrary.TryLoad name with
                | true, h -> Some h
                | _ -> None)

        match handle with
        | None ->
            raise (
                DistributedException(
                    sprintf
                        "started under mpiexec with %d ranks (%s), but no MPI library could be loaded (tried %s): install MPICH (Debian/Ubuntu: apt-get install mpich libmpich-dev; other systems: MPICH, Intel MPI or, on Windows, MS-MPI), or name the library in GROUPEDNEWTON_MPI_LIBRARY"
                        l.Size
                        l.Source
                        (String.Join(", ", tried))
                )
            )
        | Some h ->
            let asm = typeof<MPI.Unsafe>.Assembly

            try
                NativeLibrary.SetDllImportResolver(
                    asm,
                    DllImportResolver(fun name _ _ ->
                        if name.StartsWith("msmpi", StringComparison.OrdinalIgnoreCase) then h else IntPtr.Zero)
                )
            with :? InvalidOperationException ->
                () // a resolver is already set (initialised before)

            let mutable argc = 0
            let mutable argv = NativePtr.nullPtr<nativeptr<byte>>
            let mutable provided = 0
            check "MPI_Init_thread" (MPI.Unsafe.MPI_Init_thread(&argc, &argv, MPI.Unsafe.MPI_THREAD_MULTIPLE, &provided))
            multiple <- provided >= MPI.Unsafe.MPI_THREAD_MULTIPLE
            let mutable rank = 0
            let mutable size = 0
            check "MPI_Comm_rank" (MPI.Unsafe.MPI_Comm_rank(comm, &rank))
            check "MPI_Comm_size" (MPI.Unsafe.MPI_Comm_size(comm, &size))
            AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> finalize ())

            let t =
                Thread(
                    (fun () ->
                        while not finished do
                            Thread.Sleep 250
                            watch.Check rank),
                    IsBackground = true,
                    Name = "mpi-watchdog"
                )

            t.Start()
            rank, size

    let private pin (a: Array) = GCHandle.Alloc(a, GCHandleType.Pinned)

    /// MPI_IN_PLACE as MPICH and MS-MPI define it (the address -1): the send buffer is the receive buffer.
    let private inPlace = nativeint -1

    /// The reduction of the first `count` elements of `a` over the ranks, written back into `a`.
    let private allReduceInPlace (what: string) (datatype: int) (op: int) (elementBytes: int) (a: Array) (count: int) =
        let h = pin a

        try
            collective what (int64 count * int64 elementBytes) (fun () ->
                MPI.Unsafe.MPI_Allreduce(inPlace, h.AddrOfPinnedObject(), count, datatype, op, comm))
        finally
            h.Free()

    /// Element-wise sum over the ranks of the first `count` elements, in place (MPI's built-in
    /// sum on a contiguous buffer; no second buffer).
    let sumInPlace64 (a: float[]) (count: int) =
        allReduceInPlace "all-reduce (sum of float64)" MPI.Unsafe.MPI_DOUBLE MPI.Unsafe.MPI_SUM 8 a count

    let sumInPlace32 (a: float32[]) (count: int) =
        allReduceInPlace "all-reduce (sum of float32)" MPI.Unsafe.MPI_FLOAT MPI.Unsafe.MPI_SUM 4 a count

    let maxInt (v: int) =
        let a = [| v |]
        allReduceInPlace "all-reduce (max of int)" MPI.Unsafe.MPI_INT MPI.Unsafe.MPI_MAX 4 a 1
        a.[0]

    let allGatherInt64 (v: int64) (size: int) =
        let send = [| v |]
        let recv = Array.zeroCreate<int64> size
        let hs = pin send
        let hr = pin recv

        try
            collective "all-gather (int64)" 8L (fun () ->
                MPI.Unsafe.MPI_Allgather(
                    hs.AddrOfPinnedObject(),
                    1,
                    MPI.Unsafe.MPI_LONG_LONG,
                    hr.AddrOfPinnedObject(),
                    1,
                    MPI.Unsafe.MPI_LONG_LONG,
                    comm
                ))
        finally
            hs.Free()
            hr.Free()

        recv

    /// Concatenation of every rank's buffer (rank order); counts.[r] elements from rank r.
    let allGatherV (datatype: int) (elementBytes: int) (send: Array) (sendCount: int) (recv: Array) (counts: int[]) =
        let displs = Array.zeroCreate<int> counts.Length

        for r in 1 .. counts.Length - 1 do
            displs.[r] <- displs.[r - 1] + counts.[r - 1]

        let hs = pin send
        let hr = pin recv

        try
            collective "all-gather of layer statistics" (int64 sendCount * int64 elementBytes) (fun () ->
                MPI.Unsafe.MPI_Allgatherv(
                    hs.AddrOfPinnedObject(),
                    sendCount,
                    datatype,
                    hr.AddrOfPinnedObject(),
                    counts,
                    displs,
                    datatype,
                    comm
                ))
        finally
            hs.Free()
            hr.Free()

    let broadcast64 (a: float[]) (root: int) =
        let h = pin a

        try
            collective "broadcast (float64)" (int64 a.Length * 8L) (fun () ->
                MPI.Unsafe.MPI_Bcast(h.AddrOfPinnedObject(), a.Length, MPI.Unsafe.MPI_DOUBLE, root, comm))
        finally
            h.Free()

    let barrier () = collective "barrier" 0L (fun () -> MPI.Unsafe.MPI_Barrier comm)
