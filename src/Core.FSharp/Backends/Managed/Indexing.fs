namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton

/// One-hot rows, gather and its adjoint scatter-add (which accumulates repeated indices).
module internal Indexing =
    let private checkIndex op (v: int) (size: int) =
        if v < 0 || v >= size then
            Fail.index op (sprintf "index %d out of range [0, %d)" v size)

    let oneHot (idx: int[]) (n: int) (dtype: Dtype) =
        let rows = idx.Length

        // rows × n zeros with `one` at each row's index
        let rowsOf (one: 'T) =
            let r = StoragePool.zeros<'T>(rows * n)

            idx
            |> Array.iteri (fun i v ->
                checkIndex "oneHot" v n
                r.[i * n + v] <- one)

            r

        match dtype with
        | Dtype.Float32 -> F32(rowsOf 1.0f)
        | Dtype.Float64 -> F64(rowsOf 1.0)
        | Dtype.Int32 -> Fail.dtype "oneHot" "the one-hot dtype must be float32 or float64"

    /// For every position p of `idxShape`, calls visit (flat p) (flat offset in `shape`
    /// of p with coordinate dim replaced by idx[p]).
    let private walk op (shape: int[]) (dim: int) (idx: int[]) (idxShape: int[]) (visit: int -> int -> unit) =
        let st = Shape.strides shape
        let r = idxShape.Length
        let pos = Array.zeroCreate r
        let mutable baseOff = 0

        for o in 0 .. idx.Length - 1 do
            let v = idx.[o]
            checkIndex op v shape.[dim]
            visit o (baseOff + v * st.[dim])
            let mutable k = r - 1
            let mutable carry = true

            while carry && k >= 0 do
                pos.[k] <- pos.[k] + 1

                if k <> dim then
                    baseOff <- baseOff + st.[k]

                if pos.[k] = idxShape.[k] then
                    if k <> dim then
                        baseOff <- baseOff - st.[k] * idxShape.[k]

                    pos.[k] <- 0
                    k <- k - 1
                else
                    carry <- false

    let inline private gather1d (a: 'T[]) (idx: int[]) =
        let r: 'T[] = Storage.Uninit idx.Length
        let n = a.Length

        Threading.forRanges idx.Length (int64 idx.Length) (fun lo hi ->
            for o in lo .. hi - 1 do
                let v = idx.[o]

                if uint v >= uint n then
                    checkIndex "gather" v n

                r.[o] <- a.[v])

        r

    /// Each thread owns a range of destinations and visits the sources in order, so repeated
    /// indices accumulate in the same order whatever the split (and never race).
    let inline private scatterAdd1d (a: 'T[]) (idx: int[]) (n: int) =
        let r: 'T[] = StoragePool.zeros n

        for v in idx do
            if uint v >= uint n then
                checkIndex "scatterAdd" v n

        Threading.forRanges n (int64 idx.Length * 2L) (fun lo hi ->
            let lo, hi = uint lo, uint hi

            for o in 0 .. idx.Length - 1 do
                let v = idx.[o]

                if uint v >= lo && uint v < hi then
                    r.[v] <- r.[v] + a.[o])

        r

    let gather (s: Storage) (shape: int[]) (dim: int) (idx: int[]) (idxShape: int[]) =
        match s with
        | F32 a when shape.Length = 1 -> F32(gather1d a idx)
        | F64 a when shape.Length = 1 -> F64(gather1d a idx)
        | F32 a ->
            let r = Storage.Uninit idx.Length in
            walk "gather" shape dim idx idxShape (fun o i -> r.[o] <- a.[i])
            F32 r
        | F64 a ->
            let r = Storage.Uninit idx.Length in
            walk "gather" shape dim idx idxShape (fun o i -> r.[o] <- a.[i])
            F64 r
        | I32 a ->
            let r = Storage.Uninit idx.Length in
            walk "gather" shape dim idx idxShape (fun o i -> r.[o] <- a.[i])
            I32 r

    let scatterAdd (s: Storage) (dim: int) (idx: int[]) (idxShape: int[]) (outShape: int[]) =
        let n = Shape.numel outShape

        match s with
        | F32 a when outShape.Length = 1 -> F32(scatterAdd1d a idx n)
        | F64 a when outShape.Length = 1 -> F64(scatterAdd1d a idx n)
        | F32 a ->
            let r = StoragePool.zeros n in
            walk "scatterAdd" outShape dim idx idxShape (fun o i -> r.[i] <- r.[i] + a.[o])
            F32 r
        | F64 a ->
            let r = StoragePool.zeros n in
            walk "scatterAdd" outShape dim idx idxShape (fun o i -> r.[i] <- r.[i] + a.[o])
            F64 r
        | I32 a ->
            let r = StoragePool.zeros n in
            walk "scatterAdd" outShape dim idx idxShape (fun o i -> r.[i] <- r.[i] + a.[o])
            I32 r
