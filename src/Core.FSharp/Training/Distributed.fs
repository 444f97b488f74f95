namespace GroupedNewton

open System
open System.Text
open GroupedNewton.Data
open GroupedNewton.Backends.Managed

/// Data-parallel training over MPI (docs/distributed.md). Under `mpiexec -n N` every rank
/// runs the same program; each takes its share of every batch, and the optimizers sum their
/// gradients, summaries and layer statistics over the ranks here, so that every rank makes
/// the same step as one process would on the whole batch. With one rank (a plain start,
/// no launcher) everything here is inert: nothing is loaded, every reduction returns its
/// input. MPI is started on first use when the launcher says there is more than one rank.
[<RequireQualifiedAccess>]
module Distributed =
    let private world =
        lazy
            (let l = Mpi.launch ()

             if l.Size <= 1 then
                 0, 1
             else
                 let rank, size = Mpi.initialise l

                 if size <> l.Size then
                     raise (DistributedException(sprintf "the launcher announced %d ranks (%s) but MPI reports %d" l.Size l.Source size))
                 // ranks sharing a host share its cores unless GROUPEDNEWTON_THREADS says otherwise
                 if
                     String.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable "GROUPEDNEWTON_THREADS")
                     && l.LocalRanks > 1
                 then
                     BackendRegistry.setThreads (max 1 (Environment.ProcessorCount / l.LocalRanks))

                 rank, size)

    /// This process's rank, 0 .. Size − 1.
    let rank () = fst world.Value
    /// The number of ranks (1 without a launcher).
    let size () = snd world.Value
    /// Whether there is more than one rank (only then is MPI loaded and used).
    let isActive () = size () > 1
    /// Whether this is rank 0, the one that writes metrics, reports and checkpoints.
    let isRoot () = rank () = 0

    /// Starts MPI now if the launcher asks for it (otherwise on first use); raises
    /// DistributedException when it cannot.
    let start () = world.Force() |> ignore

    /// Ends MPI (collective: every rank calls it once, at the end). Idempotent; also done at
    /// process exit.
    let finish () =
        if world.IsValueCreated && isActive () then
            Mpi.finalize ()

    /// Ends every rank of the job with `code` after writing `reason` to standard error (for a
    /// failure that only this rank has seen); returns without doing anything with one rank.
    let abort (code: int) (reason: string) =
        if isActive () then
            Mpi.abort code reason

    /// Time and volume of the collectives so far (zeros with one rank).
    let statistics () = Mpi.statistics ()
    let resetStatistics () = Mpi.resetStatistics ()

    /// Seconds a collective waits for the other ranks before the job is ended.
    let timeoutSeconds () = Mpi.timeoutSeconds

    // ---- collectives ----

    /// The element-wise sum over the ranks, in place.
    let allReduceSum (values: float[]) =
        if isActive () && values.Length > 0 then
            Mpi.sumInPlace64 values values.Length

    /// The element-wise sum over the ranks, in place (float32).
    let allReduceSum32 (values: float32[]) =
        if isActive () && values.Length > 0 then
            Mpi.sumInPlace32 values values.Length

    /// Rank `root`'s values, on every rank, in place.
    let broadcast (root: int) (values: float[]) =
        if isActive () then
            if root < 0 || root >= size () then
                invalidArg "root" (sprintf "broadcast: root %d is not a rank (0 .. %d)" root (size () - 1))

            Mpi.broadcast64 values root

    /// Whether any rank passes true (every rank gets the same answer): the agreement on
    /// stopping between steps.
    let anyRank (flag: bool) = if isActive () then Mpi.maxInt (if flag then 1 else 0) = 1 else flag

    /// Waits until every rank has arrived.
    let barrier () =
        if isActive () then
            Mpi.barrier ()

    /// The tensors' values one after the other at the start of this thread's scratch buffer
    /// (reused: a training step sums the same gradient sizes every time, and a fresh buffer of
    /// a few MB per step costs more in page faults than the copy), with `room` more slots after
    /// them; managed storage is read in place (it is flat and immutable), other tensors through
    /// `read`.
    let private pack (tensors: Tensor[]) (read: Tensor -> 'T[]) (room: int) : 'T[] =
        let buf = Buffers<'T>.Get((tensors |> Array.sumBy (fun t -> t.Numel)) + room)
        let mutable o = 0

        for t in tensors do
            let a =
                match t.Raw with
                | :? CpuTensor as c ->
                    match c.Storage.AsArray with
                    | :? ('T[]) as a -> a
                    | _ -> read t
                | _ -> read t

            Array.blit a 0 buf o t.Numel
            o <- o + t.Numel

        buf

    /// Tensors shaped, typed and placed like `tensors`, holding the consecutive parts of `buf`
    /// (in arrays from the storage pool: those of the last step's summed gradients come back).
    let private unpack (tensors: Tensor[]) (buf: 'T[]) (storage: 'T[] -> Storage) : Tensor[] =
        let mutable o = 0

        tensors
        |> Array.map (fun t ->
            let a = StoragePool.rent<'T> t.Numel
            Array.blit buf o a 0 a.Length
            o <- o + a.Length

            let raw =
                match t.Raw with
                | :? CpuTensor as c -> CpuTensor(c.Backend, c.Shape, storage a) :> RawTensor
                | r -> r.Backend.OfArray(a, t.Shape)

            Tensor.cast t.Dtype (Tensor(Autodiff.Const raw)))

    /// Sums tensors over the ranks with one in-place all-reduce of one contiguous buffer
    /// (float32 when every tensor is float32, else float64, with `extras` at its end), plus one
    /// float64 all-reduce for `extras` beside float32 tensors (so a summed loss keeps float64);
    /// returns the summed tensors (same shapes and dtypes) and extras. One collective instead of
    /// one per tensor: each costs a latency that, for a network's dozen tensors, outweighs packing.
    let allReduceTensors (tensors: Tensor[]) (extras: float[]) : Tensor[] * float[] =
        let total = tensors |> Array.sumBy (fun t -> t.Numel)

        if not (isActive ()) then
            tensors, Array.copy extras
        elif tensors.Length > 0 && tensors |> Array.forall (fun t -> t.Dtype = Dtype.Float32) then
            let buf = pack tensors Tensor.toArray32 0

            if total > 0 then
                Mpi.sumInPlace32 buf total

            let ex = Array.copy extras

            if ex.Length > 0 then
                Mpi.sumInPlace64 ex ex.Length

            unpack tensors buf Storage.F32, ex
        else
            let buf = pack tensors Tensor.toArray extras.Length
            Array.blit extras 0 buf total extras.Length

            if total + extras.Length > 0 then
                Mpi.sumInPlace64 buf (total + extras.Length)

            unpack tensors buf Storage.F64, Array.sub buf total extras.Length

    /// Concatenates, along dimension 0, each tensor's parts from every rank (rank order). The
    /// tensors may have different numbers of rows on different ranks; each rank passes the
    /// same number of tensors with the same trailing shapes.
    let allGatherRows (tensors: Tensor[]) : Tensor[] =
        if not (isActive ()) || tensors.Length = 0 then
            tensors
        else
            let rows = tensors.[0].Shape.[0]

            for t in tensors do
                if t.Shape.Length = 0 || t.Shape.[0] <> rows then
                    invalidArg "tensors" (sprintf "allGatherRows: every tensor needs %d rows, got shape %s" rows (Shape.str t.Shape))

            let widths =
                tensors |> Array.map (fun t -> if rows = 0 then Shape.numel t.Shape.[1..] else t.Numel / rows)

            let rowWidth = Array.sum widths
            let allRows = Mpi.allGatherInt64 (int64 rows) (size ()) |> Array.map int
            let counts = allRows |> Array.map (fun r -> r * rowWidth)
            let totalRows = Array.sum allRows
            let f32 = tensors |> Array.forall (fun t -> t.Dtype = Dtype.Float32)

            let pack (conv: Tensor -> Array) (buf: Array) =
                let mutable o = 0

                for t in tensors do
                    let a = conv t
                    Array.Copy(a, 0, buf, o, a.Length)
                    o <- o + a.Length

            let send: Array =
                if f32 then Array.zeroCreate<float32>(rows * rowWidth) else Array.zeroCreate<float>(rows * rowWidth)

            pack (if f32 then (fun t -> Tensor.toArray32 t :> Array) else (fun t -> Tensor.toArray t :> Array)) send

            let recv: Array =
                if f32 then
                    Array.zeroCreate<float32>(totalRows * rowWidth)
                else
                    Array.zeroCreate<float>(totalRows * rowWidth)

            if f32 then
                Mpi.allGatherV MPI.Unsafe.MPI_FLOAT 4 send send.Length recv counts
            else
                Mpi.allGatherV MPI.Unsafe.MPI_DOUBLE 8 send send.Length recv counts

            tensors
            |> Array.mapi (fun i t ->
                let out: Array =
                    if f32 then
                        Array.zeroCreate<float32>(totalRows * widths.[i])
                    else
                        Array.zeroCreate<float>(totalRows * widths.[i])

                let before = Array.sum widths.[.. i - 1]
                let mutable rankStart = 0
                let mutable rowStart = 0

                for r in 0 .. allRows.Length - 1 do
                    Array.Copy(recv, rankStart + allRows.[r] * before, out, rowStart * widths.[i], allRows.[r] * widths.[i])
                    rankStart <- rankStart + counts.[r]
                    rowStart <- rowStart + allRows.[r]

                let shape = Array.append [| totalRows |] t.Shape.[1..]
                let g = Tensor.ofArrayShape out shape
                if f32 || t.Dtype = Dtype.Float64 then g else Tensor.cast t.Dtype g)

    // ---- sharding ----

    /// This rank's part [start, start + count) of n items (balanced; ranks before get no more).
    let shardRange (n: int) =
        let r, s = rank (), size ()
        let start = int (int64 r * int64 n / int64 s)
        start, int (int64 (r + 1) * int64 n / int64 s) - start

    /// This rank's rows of a batch and their share n_r / n of it (the whole batch and 1 with
    /// one rank). A loss that is a mean over the batch, computed on the rows and multiplied by
    /// the share, sums over the ranks to the loss of the whole batch.
    let shardBatch (b: Batch) : Batch * float =
        if not (isActive ()) then
            b, 1.0
        else
            let start, count = shardRange b.Size
            let rows (t: Tensor) = Tensor.narrow 0 start count t

            {
                Inputs = rows b.Inputs
                Labels = b.Labels |> Option.map rows
                Targets = b.Targets |> Option.map rows
                Indices = Array.sub b.Indices start count
            },
            float count / float b.Size

    /// Raises DistributedException unless a batch of `batchSize` rows (and the smaller last
    /// batch of `count` samples) can be split over the ranks: the batch size a multiple of the
    /// number of ranks, and every batch at least one row per rank.
    let checkBatches (what: string) (batchSize: int) (count: int) =
        let n = size ()

        if n > 1 then
            if batchSize % n <> 0 then
                raise (
                    DistributedException(
                        sprintf
                            "%s %d is not divisible by the %d ranks: each rank takes an equal share of every batch; use a multiple of %d"
                            what
                            batchSize
                            n
                            n
                    )
                )

            let last = count % batchSize

            if last <> 0 && last < n then
                raise (
                    DistributedException(
                        sprintf
                            "%s %d leaves a last batch of %d samples (of %d), fewer than the %d ranks: choose another batch size"
                            what
                            batchSize
                            last
                            count
                            n
                    )
                )

    // ---- agreement checks ----

    let private fnv (bytes: ReadOnlySpan<byte>) =
        let mutable h = 14695981039346656037UL

        for b in bytes do
            h <- (h ^^^ uint64 b) * 1099511628211UL

        int64 h

    /// A 64-bit hash of the parameter values' bytes (order, shapes and values).
    let parameterHash (ps: Parameters) =
        let mutable h = 17L

        for v in ps.ValueArray do
            let bytes =
                match v.Dtype with
                | Dtype.Float32 -> Runtime.InteropServices.MemoryMarshal.AsBytes(ReadOnlySpan(Tensor.toArray32 v)).ToArray()
                | _ -> Runtime.InteropServices.MemoryMarshal.AsBytes(ReadOnlySpan(Tensor.toArray v)).ToArray()

            h <- h * 31L + fnv (ReadOnlySpan(bytes)) + int64 (Shape.str v.Shape).Length

        h

    /// Raises DistributedException on every rank unless every rank passes the same
    /// description (compared by hash); `what` names it in the message.
    let checkSame (what: string) (description: string) =
        if isActive () then
            let h = fnv (ReadOnlySpan(Encoding.UTF8.GetBytes description))
            let all = Mpi.allGatherInt64 h (size ())

            let odd = [
                for r in 1 .. all.Length - 1 do
                    if all.[r] <> all.[0] then
                        yield r
            ]

            if not odd.IsEmpty then
                raise (
                    DistributedException(
                        sprintf
                            "the ranks disagree on the %s: rank%s %s differ%s from rank 0 (hash %016x against %016x); start every rank with the same options and data"
                            what
                            (if odd.Length > 1 then "s" else "")
                            (String.Join(", ", odd))
                            (if odd.Length > 1 then "" else "s")
                            all.[odd.Head]
                            all.[0]
                    )
                )

    /// Raises DistributedException on every rank unless the parameters are bit-identical on
    /// all ranks (compared by hash).
    let checkIdenticalParameters (what: string) (ps: Parameters) =
        if isActive () then
            checkSame (sprintf "parameters (%s)" what) (string (parameterHash ps))

    /// Whether GROUPEDNEWTON_MPI_VERIFY=1 asks the trainer to compare the parameters' hashes
    /// after every step.
    let verifyEveryStep () = isActive () && Environment.GetEnvironmentVariable "GROUPEDNEWTON_MPI_VERIFY" = "1"

    // ---- checkpoints ----

    /// The checkpoint entry recording the number of ranks that wrote it.
    let checkpointEntries () = [ "distributed.ranks", StoreValue.Int(size ()) ]

    /// Raises DistributedException when a checkpoint was written by another number of ranks
    /// (a file without the entry was written by one process).
    let checkCheckpoint (path: string) (entries: Collections.Generic.IReadOnlyDictionary<string, StoreValue>) =
        let written =
            match entries.TryGetValue "distributed.ranks" with
            | true, StoreValue.Int n -> n
            | _ -> 1

        if written <> size () then
            raise (
                DistributedException(
                    sprintf
                        "%s was written by a run on %d rank%s; this run has %d: resume with the same number of ranks (mpiexec -n %d)"
                        path
                        written
                        (if written = 1 then "" else "s")
                        (size ())
                        written
                )
            )

    // ---- the optimizers' hooks ----

    /// The loss and gradients summed over the ranks (each rank's loss being its share of the
    /// batch loss, the sums are the whole batch's); one all-reduce. Inert with one rank.
    let reduceLossAndGradient (loss: float) (gradients: Tensor[]) : float * Tensor[] =
        if not (isActive ()) then
            loss, gradients
        else
            let gs, extra = allReduceTensors gradients [| loss |]
            extra.[0], gs

    /// A trace of the whole batch from every rank's trace of its rows: the loss and the
    /// parameter gradients summed, every layer's input, output and output gradient
    /// concatenated over the ranks (the factor statistics of K-FAC and K-BFGS then come out as
    /// on one process). Inert with one rank.
    let gatherTrace (tr: ModelTrace) : ModelTrace =
        if not (isActive ()) then
            tr
        else
            let loss, grads = reduceLossAndGradient tr.Loss tr.Gradient.ValueArray
            let parts = tr.Layers |> Array.collect (fun l -> [| l.Input; l.Output; l.OutputGradient |])
            let whole = allGatherRows parts

            {
                Loss = loss
                Gradient = tr.Gradient.WithValues grads
                Layers =
                    tr.Layers
                    |> Array.mapi (fun i l -> {
                        l with
                            Input = whole.[3 * i]
                            Output = whole.[3 * i + 1]
                            OutputGradient = whole.[3 * i + 2]
                    })
            }

    /// GroupedNewton's summary summed over the ranks (ḡ, H̄, D̄ and the loss are linear in the
    /// loss, so the sums of the shares are the whole curvature batch's): one all-reduce of
    /// S² + 2S + 3 float64. None on every rank when the summary failed on any rank. Inert with
    /// one rank.
    let reduceSummary (subsets: int) (summary: PartitionSummary option) : PartitionSummary option =
        if not (isActive ()) then
            summary
        else
            let s = subsets
            let buf = Array.zeroCreate<float>(3 + s * s + 2 * s)

            match summary with
            | None -> buf.[0] <- 1.0
            | Some r ->
                Array.blit r.Gradient 0 buf 3 s

                for i in 0 .. s - 1 do
                    for j in 0 .. s - 1 do
                        buf.[3 + s + i * s + j] <- r.Hessian.[i, j]

                if r.ThirdDiagonal.Length = s then
                    buf.[1] <- 1.0
                    Array.blit r.ThirdDiagonal 0 buf (3 + s + s * s) s

                buf.[2] <- r.Loss

            Mpi.sumInPlace64 buf buf.Length

            match summary with
            | Some r when buf.[0] = 0.0 ->
                Some {
                    r with
                        Gradient = buf.[3 .. 2 + s]
                        Hessian = Array2D.init s s (fun i j -> buf.[3 + s + i * s + j])
                        ThirdDiagonal = (if buf.[1] = float (size ()) then buf.[3 + s + s * s ..] else [||])
                        Loss = buf.[2]
                }
            | _ -> None
